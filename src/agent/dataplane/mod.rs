//! The data plane: binds and releases virtual addresses beside the VRRP engine, never in its
//! way, and watches the kernel so that what the agent reports is what is there.
//!
//! * One worker per instance keeps that instance's changes in order (bind, announce, release);
//!   workers run side by side, and each batch goes out as concurrent netlink requests.
//! * A ledger records every address this agent bound, and for which instance. Only those are
//!   ever released: an address that was there before and is not ours is never adopted (the
//!   instance goes to FAULT with the conflict as its reason) and never deleted.
//! * Address events: one of ours removed by someone else while its instance holds it is put
//!   back (and announced) at once; one carrying our mark that nothing of ours holds is removed;
//!   a conflict clears when the other address goes away.
//! * Standby links: Linux binds IPv6 addresses in quadratic time (each add walks every
//!   address of the namespace: 1,000 take 0.4-0.8 s, 2,000 take 2.4 s), far beyond VRRP time.
//!   An instance with at least [`STANDBY_MIN`] IPv6 excluded addresses therefore binds them
//!   ahead, while it is backup, on a macvlan of its own that stays down (`kvs-<id>`: a down
//!   link neither answers neighbour solicitations nor accepts traffic for them), and becoming
//!   master sets that one link up. Leaving master sets it down again. Its MAC is announced
//!   for those addresses by unsolicited NA.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::announcer::AnnounceCmd;
use super::engine::EngineCmd;
use crate::model::address::is_link_local;
use crate::model::spec::GarpConfig;
use crate::net::announce::Mac;
use crate::net::netlink::{Address, NetEvent, Netlink};
use crate::vrrp::{InstanceConfig, VirtualAddress};

/// The tracker an address conflict sets (weight 0: FAULT while it stands).
pub const CONFLICT_TRACKER: &str = "address-conflict";
/// Netlink requests in flight per batch.
const PARALLEL: usize = 64;
/// A bind that failed for another reason than a foreign address is tried again after this.
const BIND_RETRY: std::time::Duration = std::time::Duration::from_secs(5);
/// An instance with at least this many IPv6 excluded addresses binds them ahead on a standby
/// link (see the module documentation). Fewer bind in well under 100 ms the usual way.
pub const STANDBY_MIN: usize = 64;
/// Announcer schedules of standby-link addresses: the instance's id with this bit set.
const STANDBY_ANNOUNCE: u64 = 1 << 63;

/// The addresses an instance binds ahead on a standby link: its IPv6 excluded addresses when
/// there are at least [`STANDBY_MIN`], else none.
pub fn standby_addresses(config: &InstanceConfig) -> Vec<VirtualAddress> {
    let excluded = excluded_ipv6(config);
    if excluded.len() >= STANDBY_MIN {
        excluded
    } else {
        Vec::new()
    }
}

/// An instance's IPv6 excluded addresses (what a standby link would hold).
pub fn excluded_ipv6(config: &InstanceConfig) -> Vec<VirtualAddress> {
    config
        .addresses
        .iter()
        .skip(config.advertised)
        .filter(|a| a.address.is_ipv6() && !is_link_local(&a.address))
        .copied()
        .collect()
}

/// The standby link of instance `id`.
pub fn standby_name(id: u64) -> String {
    format!("kvs-{id:x}")
}

/// Whether a link is a standby link of ours (by name: a previous run's is removed at start).
pub fn is_standby_name(name: &str) -> bool {
    name.strip_prefix("kvs-")
        .is_some_and(|h| !h.is_empty() && h.len() <= 11 && u64::from_str_radix(h, 16).is_ok())
}

pub enum DataplaneCmd {
    /// Bind `addresses` ahead on a standby link that stays down until the instance is master.
    Stage {
        id: u64,
        key: String,
        /// The interface the instance runs on (the standby link's parent).
        ifindex: u32,
        addresses: Vec<VirtualAddress>,
    },
    /// The instance's IPv6 excluded addresses changed in place: the standby link follows
    /// them. An instance without one gets one once it has [`STANDBY_MIN`] of them: at once
    /// when backup, when it next leaves master otherwise.
    Restage {
        id: u64,
        key: String,
        ifindex: u32,
        addresses: Vec<VirtualAddress>,
        master: bool,
    },
    Bind {
        id: u64,
        key: String,
        ifindex: u32,
        addresses: Vec<VirtualAddress>,
    },
    Unbind {
        id: u64,
        ifindex: u32,
        addresses: Vec<VirtualAddress>,
    },
    Announce {
        id: u64,
        key: String,
        ifindex: u32,
        mac: Mac,
        addresses: Vec<VirtualAddress>,
        garp: GarpConfig,
        /// Send a burst now (a new master), or only take the new timing.
        burst: bool,
    },
    /// The instance is gone: its worker ends once its queue is done.
    Forget { id: u64 },
    /// A kernel address event.
    Event(NetEvent),
    /// Releases everything still bound (the agent is stopping) and answers.
    ReleaseAll(oneshot::Sender<()>),
}

#[derive(Debug, Clone)]
struct Held {
    id: u64,
    key: String,
    prefix_len: u8,
    mac: Option<Mac>,
}

/// What this agent bound: (interface, address) → holder.
#[derive(Default)]
struct Ledger {
    held: HashMap<(u32, IpAddr), Held>,
    /// Addresses that were there and not ours, blocking an instance: (ifindex, address) → key.
    conflicts: HashMap<(u32, IpAddr), String>,
}

type Shared = Arc<Mutex<Ledger>>;

struct Ctx {
    nl: Netlink,
    ledger: Shared,
    engine: mpsc::UnboundedSender<EngineCmd>,
    announcer: mpsc::UnboundedSender<AnnounceCmd>,
}

/// Runs the data plane until its command channel closes.
pub async fn run(
    nl: Netlink,
    mut cmds: mpsc::UnboundedReceiver<DataplaneCmd>,
    engine: mpsc::UnboundedSender<EngineCmd>,
    announcer: mpsc::UnboundedSender<AnnounceCmd>,
) {
    let ctx = Arc::new(Ctx {
        nl,
        ledger: Shared::default(),
        engine,
        announcer,
    });
    let mut workers: HashMap<u64, mpsc::UnboundedSender<DataplaneCmd>> = HashMap::new();
    let mut handles: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    while let Some(cmd) = cmds.recv().await {
        let cmd = match cmd {
            DataplaneCmd::Event(e) => {
                on_event(&ctx, &e);
                continue;
            }
            DataplaneCmd::ReleaseAll(done) => {
                workers.clear();
                for h in handles.drain(..) {
                    let _ = h.await;
                }
                release_all(&ctx).await;
                let _ = done.send(());
                continue;
            }
            other => other,
        };
        let id = match &cmd {
            DataplaneCmd::Stage { id, .. }
            | DataplaneCmd::Restage { id, .. }
            | DataplaneCmd::Bind { id, .. }
            | DataplaneCmd::Unbind { id, .. }
            | DataplaneCmd::Announce { id, .. }
            | DataplaneCmd::Forget { id } => *id,
            DataplaneCmd::Event(_) | DataplaneCmd::ReleaseAll(_) => unreachable!("handled above"),
        };
        let forget = matches!(cmd, DataplaneCmd::Forget { .. });
        let tx = workers.entry(id).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            handles.retain(|h| !h.is_finished());
            handles.push(tokio::spawn(worker(ctx.clone(), rx)));
            tx
        });
        let _ = tx.send(cmd);
        if forget {
            workers.remove(&id);
        }
    }
}

/// An instance's standby link and what is bound on it.
struct Standby {
    link: u32,
    mac: Mac,
    addresses: HashSet<IpAddr>,
    up: bool,
}

impl Standby {
    /// Splits `addresses` into those on the standby link and the others.
    fn split(
        this: &Option<Standby>,
        addresses: Vec<VirtualAddress>,
    ) -> (Vec<VirtualAddress>, Vec<VirtualAddress>) {
        match this {
            Some(s) => addresses
                .into_iter()
                .partition(|a| s.addresses.contains(&a.address)),
            None => (Vec::new(), addresses),
        }
    }
}

async fn worker(ctx: Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<DataplaneCmd>) {
    let mut standby: Option<Standby> = None;
    // A standby link to make once this instance leaves master: (interface, addresses).
    let mut pending: Option<(u32, Vec<VirtualAddress>)> = None;
    while let Some(cmd) = rx.recv().await {
        match cmd {
            DataplaneCmd::Stage {
                id,
                key,
                ifindex,
                addresses,
            } => {
                if let Some(old) = standby.take() {
                    drop_standby(&ctx, id, old).await;
                }
                standby = stage(&ctx, id, &key, ifindex, &addresses).await;
            }
            DataplaneCmd::Restage {
                id,
                key,
                ifindex,
                addresses,
                master,
            } => match standby.as_mut() {
                Some(s) => restage(&ctx, id, &key, s, &addresses).await,
                None if addresses.len() >= STANDBY_MIN && !master => {
                    standby = stage(&ctx, id, &key, ifindex, &addresses).await;
                }
                None if addresses.len() >= STANDBY_MIN => pending = Some((ifindex, addresses)),
                None => pending = None,
            },
            DataplaneCmd::Bind {
                id,
                key,
                ifindex,
                addresses,
            } => {
                let (staged, rest) = Standby::split(&standby, addresses);
                let mut fallback = false;
                if let Some(s) = standby.as_mut().filter(|_| !staged.is_empty()) {
                    if !s.up {
                        let started = std::time::Instant::now();
                        match ctx.nl.set_up(s.link).await {
                            Ok(()) => {
                                s.up = true;
                                info!(
                                    instance = key,
                                    addresses = staged.len(),
                                    elapsed_ms = started.elapsed().as_millis() as u64,
                                    "standby link up"
                                );
                            }
                            Err(e) => {
                                error!(instance = key, error = %e, "cannot set the standby link up: binding its addresses the usual way");
                                fallback = true;
                            }
                        }
                    }
                }
                if fallback && let Some(old) = standby.take() {
                    drop_standby(&ctx, id, old).await;
                    bind(&ctx, id, &key, ifindex, &staged).await;
                }
                bind(&ctx, id, &key, ifindex, &rest).await
            }
            DataplaneCmd::Unbind {
                id,
                ifindex,
                addresses,
            } => {
                let _ = ctx.announcer.send(AnnounceCmd::Stop { id });
                let (staged, rest) = Standby::split(&standby, addresses);
                let mut broken = false;
                if let Some(s) = standby.as_mut().filter(|_| !staged.is_empty()) {
                    let _ = ctx.announcer.send(AnnounceCmd::Stop {
                        id: id | STANDBY_ANNOUNCE,
                    });
                    set_mac(&ctx, s.link, &staged, None);
                    if s.up {
                        match ctx.nl.set_down(s.link).await {
                            Ok(()) => s.up = false,
                            Err(e) => {
                                error!(error = %e, "cannot set a standby link down: removing it");
                                broken = true;
                            }
                        }
                    }
                }
                if broken && let Some(old) = standby.take() {
                    drop_standby(&ctx, id, old).await;
                }
                unbind(&ctx, id, ifindex, &rest).await;
                if let Some((parent, addresses)) = pending.take()
                    && standby.is_none()
                {
                    let key = ctx
                        .ledger
                        .lock()
                        .expect("ledger")
                        .held
                        .values()
                        .find(|h| h.id == id)
                        .map(|h| h.key.clone())
                        .unwrap_or_default();
                    standby = stage(&ctx, id, &key, parent, &addresses).await;
                }
            }
            DataplaneCmd::Announce {
                id,
                key,
                ifindex,
                mac,
                addresses,
                garp,
                burst,
            } => {
                let (staged, rest) = Standby::split(&standby, addresses);
                if let Some(s) = standby.as_ref().filter(|s| s.up && !staged.is_empty()) {
                    let bound = set_mac(&ctx, s.link, &staged, Some(s.mac));
                    let _ = ctx.announcer.send(AnnounceCmd::Start {
                        id: id | STANDBY_ANNOUNCE,
                        key: key.clone(),
                        ifindex: s.link,
                        mac: s.mac,
                        addresses: bound,
                        garp,
                        burst,
                    });
                }
                // Only what is bound now is announced (a conflict may have stopped some).
                let bound = set_mac(&ctx, ifindex, &rest, Some(mac));
                let _ = ctx.announcer.send(AnnounceCmd::Start {
                    id,
                    key,
                    ifindex,
                    mac,
                    addresses: bound,
                    garp,
                    burst,
                });
            }
            DataplaneCmd::Forget { id } => {
                let _ = ctx.announcer.send(AnnounceCmd::Stop { id });
                if let Some(old) = standby.take() {
                    drop_standby(&ctx, id, old).await;
                }
                return;
            }
            DataplaneCmd::Event(_) | DataplaneCmd::ReleaseAll(_) => {}
        }
    }
    // The agent is stopping (its queue closed): the standby link goes with it.
    if let Some(old) = standby.take() {
        let id = ctx
            .ledger
            .lock()
            .expect("ledger")
            .held
            .iter()
            .find(|((link, _), _)| *link == old.link)
            .map(|(_, h)| h.id);
        if let Some(id) = id {
            drop_standby(&ctx, id, old).await;
        } else {
            let _ = ctx.nl.delete_link(old.link).await;
        }
    }
}

/// Records `mac` as the announcing MAC of those of `addresses` that this agent holds on
/// `ifindex`; returns them.
fn set_mac(ctx: &Ctx, ifindex: u32, addresses: &[VirtualAddress], mac: Option<Mac>) -> Vec<IpAddr> {
    let mut l = ctx.ledger.lock().expect("ledger");
    addresses
        .iter()
        .filter_map(|a| {
            let h = l.held.get_mut(&(ifindex, a.address))?;
            h.mac = mac;
            Some(a.address)
        })
        .collect()
}

/// Creates instance `id`'s standby link (down) on `parent` and binds `addresses` on it.
/// `None` when the link cannot be made: the addresses then bind the usual way on master.
/// An address already on the node and not ours is a conflict, as for a bind.
async fn stage(
    ctx: &Ctx,
    id: u64,
    key: &str,
    parent: u32,
    addresses: &[VirtualAddress],
) -> Option<Standby> {
    let started = std::time::Instant::now();
    let present = match ctx.nl.addresses(None).await {
        Ok(p) => p,
        Err(e) => {
            warn!(instance = key, error = %e, "cannot read addresses: no standby link");
            return None;
        }
    };
    let foreign: HashMap<IpAddr, u32> = present
        .iter()
        .filter(|p| !p.is_ours())
        .map(|p| (p.address, p.index))
        .collect();
    let name = standby_name(id);
    let (link, mac) = match ctx.nl.create_macvlan(parent, &name).await {
        Ok(l) => l,
        Err(e) => {
            warn!(instance = key, link = %name, error = %e, "cannot create a standby link: its addresses bind when master");
            return None;
        }
    };
    // It must never speak for the node: no ARP replies for the node's own IPv4 addresses, no
    // link-local address, no router or duplicate address traffic; and it keeps its addresses
    // while down.
    for (path, value) in [
        (format!("net/ipv4/conf/{name}/arp_ignore"), "8"),
        (format!("net/ipv6/conf/{name}/keep_addr_on_down"), "1"),
        (format!("net/ipv6/conf/{name}/addr_gen_mode"), "1"),
        (format!("net/ipv6/conf/{name}/accept_ra"), "0"),
        (format!("net/ipv6/conf/{name}/accept_dad"), "0"),
    ] {
        super::instances::set_sysctl(&path, value);
    }
    let mut conflicts = Vec::new();
    let wanted: Vec<VirtualAddress> = addresses
        .iter()
        .filter(|a| match foreign.get(&a.address) {
            Some(index) => {
                conflicts.push((*index, a.address));
                false
            }
            None => true,
        })
        .copied()
        .collect();
    {
        let mut l = ctx.ledger.lock().expect("ledger");
        for a in &wanted {
            l.held.insert(
                (link, a.address),
                Held {
                    id,
                    key: key.to_string(),
                    prefix_len: a.prefix_len,
                    mac: None,
                },
            );
        }
        for c in &conflicts {
            l.conflicts.insert(*c, key.to_string());
        }
    }
    let results: Vec<(VirtualAddress, _)> = futures::stream::iter(wanted.iter().copied())
        .map(|a| async move { (a, ctx.nl.add_address(link, &a).await) })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut staged = HashSet::new();
    let mut failed = 0usize;
    {
        let mut l = ctx.ledger.lock().expect("ledger");
        for (a, r) in results {
            if r.is_ok() {
                staged.insert(a.address);
            } else {
                // Not on the standby link: it binds the usual way when master.
                failed += 1;
                l.held.remove(&(link, a.address));
            }
        }
    }
    info!(
        instance = key,
        link = %name,
        addresses = staged.len(),
        failed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "addresses bound ahead on a standby link (down)"
    );
    if let Some((_, address)) = conflicts.first() {
        let reason = format!(
            "cannot bind: {address} is already on the node and was not added by kube-vrrp{}",
            match conflicts.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            }
        );
        error!(instance = key, conflicts = conflicts.len(), %reason, "cannot bind virtual addresses");
        set_bind_fault(&ctx.engine, key, Some(reason));
    }
    Some(Standby {
        link,
        mac,
        addresses: staged,
        up: false,
    })
}

/// Brings a standby link to `addresses`: binds the new ones on it (announced when it is up),
/// removes the ones no longer wanted.
async fn restage(ctx: &Ctx, id: u64, key: &str, s: &mut Standby, addresses: &[VirtualAddress]) {
    let wanted: HashSet<IpAddr> = addresses.iter().map(|a| a.address).collect();
    let add: Vec<VirtualAddress> = addresses
        .iter()
        .filter(|a| !s.addresses.contains(&a.address))
        .copied()
        .collect();
    let remove: Vec<(u32, VirtualAddress)> = {
        let mut l = ctx.ledger.lock().expect("ledger");
        let gone: Vec<IpAddr> = s
            .addresses
            .iter()
            .filter(|a| !wanted.contains(a))
            .copied()
            .collect();
        let mut out = Vec::new();
        for a in gone {
            s.addresses.remove(&a);
            // Out of the ledger first: our own delete event is not a loss.
            if let Some(h) = l.held.remove(&(s.link, a)) {
                out.push((
                    s.link,
                    VirtualAddress {
                        address: a,
                        prefix_len: h.prefix_len,
                    },
                ));
            }
        }
        for a in &add {
            l.held.insert(
                (s.link, a.address),
                Held {
                    id,
                    key: key.to_string(),
                    prefix_len: a.prefix_len,
                    mac: s.up.then_some(s.mac),
                },
            );
        }
        out
    };
    delete_all(ctx, remove).await;
    let link = s.link;
    let results: Vec<(VirtualAddress, _)> = futures::stream::iter(add.iter().copied())
        .map(|a| async move { (a, ctx.nl.add_address(link, &a).await) })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut l = ctx.ledger.lock().expect("ledger");
    for (a, r) in results {
        if r.is_ok() {
            s.addresses.insert(a.address);
        } else {
            // Not on the standby link: it binds the usual way when master.
            l.held.remove(&(link, a.address));
        }
    }
}

/// Removes a standby link and its addresses (one request for all of them).
async fn drop_standby(ctx: &Ctx, id: u64, s: Standby) {
    let _ = ctx.announcer.send(AnnounceCmd::Stop {
        id: id | STANDBY_ANNOUNCE,
    });
    {
        // Out of the ledger first: their removal events are not losses.
        let mut l = ctx.ledger.lock().expect("ledger");
        l.held.retain(|(link, _), _| *link != s.link);
    }
    if let Err(e) = ctx.nl.delete_link(s.link).await {
        error!(error = %e, "cannot remove a standby link");
    }
}

async fn bind(ctx: &Ctx, id: u64, key: &str, ifindex: u32, addresses: &[VirtualAddress]) {
    {
        // Recorded before the request, so our own address event finds it ours.
        let mut l = ctx.ledger.lock().expect("ledger");
        for a in addresses {
            l.held.insert(
                (ifindex, a.address),
                Held {
                    id,
                    key: key.to_string(),
                    prefix_len: a.prefix_len,
                    mac: None,
                },
            );
        }
    }
    let started = std::time::Instant::now();
    let results: Vec<(VirtualAddress, _)> = futures::stream::iter(addresses.iter().copied())
        .map(|a| async move { (a, ctx.nl.add_address(ifindex, &a).await) })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    if addresses.len() >= 100 {
        info!(
            instance = key,
            addresses = addresses.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "addresses bound"
        );
    }
    let mut existed = Vec::new();
    let mut failed = Vec::new();
    for (a, r) in results {
        match r {
            Ok(true) => {}
            Ok(false) => existed.push(a),
            Err(e) => failed.push((a, e.to_string())),
        }
    }
    // Errors that are not a foreign address: nothing will announce that they cleared.
    let retry = !failed.is_empty();
    if !existed.is_empty() {
        // There already: ours (our mark) is fine; anything else belongs to someone else.
        let present = ctx.nl.addresses(Some(ifindex)).await.unwrap_or_default();
        for a in existed {
            let ours = present
                .iter()
                .any(|p| p.address == a.address && p.is_ours());
            if !ours {
                failed.push((
                    a,
                    format!(
                        "{} is already on the interface and was not added by kube-vrrp",
                        a.address
                    ),
                ));
                ctx.ledger
                    .lock()
                    .expect("ledger")
                    .conflicts
                    .insert((ifindex, a.address), key.to_string());
            }
        }
    }
    if failed.is_empty() {
        return;
    }
    {
        let mut l = ctx.ledger.lock().expect("ledger");
        for (a, _) in &failed {
            if l.held
                .get(&(ifindex, a.address))
                .is_some_and(|h| h.id == id)
            {
                l.held.remove(&(ifindex, a.address));
            }
        }
    }
    let reason = match failed.as_slice() {
        [(_, r)] => r.clone(),
        [(_, r), rest @ ..] => format!("{r} (and {} more)", rest.len()),
        [] => unreachable!(),
    };
    error!(instance = key, failed = failed.len(), %reason, "cannot bind virtual addresses");
    // A bind that fails is a fault, never Master: hand over. A conflict clears when the
    // other address goes (see `on_event`); any other error is tried again after a while.
    set_bind_fault(&ctx.engine, key, Some(format!("cannot bind: {reason}")));
    if retry {
        let (engine, key) = (ctx.engine.clone(), key.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(BIND_RETRY).await;
            set_bind_fault(&engine, &key, None);
        });
    }
}

fn set_bind_fault(engine: &mpsc::UnboundedSender<EngineCmd>, key: &str, reason: Option<String>) {
    let _ = engine.send(EngineCmd::Tracker {
        key: key.to_string(),
        name: CONFLICT_TRACKER.into(),
        weight: 0,
        failing: reason.is_some(),
        reason: reason.unwrap_or_default(),
    });
}

/// Deletes addresses, concurrently; logs what failed.
async fn delete_all(ctx: &Ctx, addresses: Vec<(u32, VirtualAddress)>) {
    let errors: Vec<String> = futures::stream::iter(addresses)
        .map(|(ifindex, a)| async move {
            ctx.nl
                .del_address(ifindex, a.address, a.prefix_len)
                .await
                .err()
                .map(|e| format!("{a}: {e}"))
        })
        .buffer_unordered(PARALLEL)
        .filter_map(|e| async move { e })
        .collect()
        .await;
    if let Some(e) = errors.first() {
        error!(failed = errors.len(), error = %e, "cannot release virtual addresses");
    }
}

async fn unbind(ctx: &Ctx, id: u64, ifindex: u32, addresses: &[VirtualAddress]) {
    let mine: Vec<(u32, VirtualAddress)> = {
        let mut l = ctx.ledger.lock().expect("ledger");
        addresses
            .iter()
            .filter(|a| match l.held.get(&(ifindex, a.address)) {
                // Removed from the ledger first: our own delete event is not a loss.
                Some(h) if h.id == id => {
                    l.held.remove(&(ifindex, a.address));
                    true
                }
                _ => false,
            })
            .map(|a| (ifindex, *a))
            .collect()
    };
    delete_all(ctx, mine).await;
}

fn on_event(ctx: &Arc<Ctx>, e: &NetEvent) {
    match e {
        NetEvent::AddressRemoved(a) => {
            let key = (a.index, a.address);
            let (held, conflict) = {
                let mut l = ctx.ledger.lock().expect("ledger");
                (l.held.get(&key).cloned(), l.conflicts.remove(&key))
            };
            if let Some(h) = held {
                // Ours, held by a master, and gone: someone removed it. Put it back.
                let ctx = ctx.clone();
                let vip = VirtualAddress {
                    address: a.address,
                    prefix_len: h.prefix_len,
                };
                tokio::spawn(async move {
                    match ctx.nl.add_address(key.0, &vip).await {
                        // Already there: the removal was our own unbind racing a new bind
                        // of the same address, not someone else's. Nothing to count.
                        Ok(false) => {}
                        Ok(true) => {
                            if let Some(mac) = h.mac {
                                let _ = ctx.announcer.send(AnnounceCmd::Once {
                                    ifindex: key.0,
                                    mac,
                                    address: vip.address,
                                });
                            }
                            let _ = ctx.engine.send(EngineCmd::Restored {
                                key: h.key,
                                address: vip.address,
                            });
                        }
                        Err(e) => {
                            warn!(address = %vip, error = %e, "cannot put back a removed virtual address")
                        }
                    }
                });
            }
            if let Some(key) = conflict {
                info!(instance = %key, address = %a.address, "the conflicting address is gone");
                let _ = ctx.engine.send(EngineCmd::Tracker {
                    key,
                    name: CONFLICT_TRACKER.into(),
                    weight: 0,
                    failing: false,
                    reason: String::new(),
                });
            }
        }
        // Link-local ones are the virtual-MAC interface's own source address, not VIPs.
        NetEvent::AddressAdded(a) if a.is_ours() && !is_link_local(&a.address) => {
            let held = ctx
                .ledger
                .lock()
                .expect("ledger")
                .held
                .contains_key(&(a.index, a.address));
            if !held {
                // Marked ours, but no instance of ours holds it here (a backup): remove it.
                warn!(address = %a.address, "a virtual address of ours appeared where we hold none: removing it");
                let ctx = ctx.clone();
                let a: Address = a.clone();
                tokio::spawn(async move {
                    let _ = ctx.nl.del_address(a.index, a.address, a.prefix_len).await;
                });
            }
        }
        _ => {}
    }
}

/// Releases every address still in the ledger (the agent stops).
async fn release_all(ctx: &Ctx) {
    let all: Vec<(u32, VirtualAddress)> = ctx
        .ledger
        .lock()
        .expect("ledger")
        .held
        .drain()
        .map(|((ifindex, address), h)| {
            let prefix_len = h.prefix_len;
            (
                ifindex,
                VirtualAddress {
                    address,
                    prefix_len,
                },
            )
        })
        .collect();
    delete_all(ctx, all).await;
}
