//! The data plane: binds and releases virtual addresses beside the VRRP engine, never in its
//! way, and watches the kernel so that what the agent reports is what is there.
//!
//! * One worker per instance keeps that instance's changes in order (bind, announce, release);
//!   workers run side by side, and each batch goes out as concurrent netlink requests. The
//!   task and its workers live here.
//! * [`ledger`]: every address this agent bound, and for which instance. Only those are ever
//!   released: an address that was there before and is not ours is never adopted (the
//!   instance goes to FAULT with the conflict as its reason) and never deleted.
//! * [`watch`]: kernel address events (put back what someone removed, remove strays of ours,
//!   clear a conflict).
//! * [`standby`]: standby links for instances with many IPv6 excluded addresses.
//! * [`kernel`]: the kernel requests, behind a trait with a recording fake for tests.

mod kernel;
mod ledger;
mod renew;
mod standby;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tracing::{error, info};

use super::messages::{AnnounceCmd, DataplaneCmd, EngineCmd, ScheduleId};
use crate::ids::{InstanceId, InstanceKey};
use crate::model::spec::GarpConfig;
use crate::net::announce::Mac;
use crate::net::netlink::Address;
use crate::vrrp::VirtualAddress;
pub(crate) use kernel::Kernel;
use ledger::{Outcome, SharedLedger, add_all, delete_all};
#[cfg(test)]
use standby::STANDBY_MIN;
#[cfg(test)]
pub(crate) use standby::standby_name;
use standby::{Restage, Standby, drop_standby, lower, raise, restage, restage_decision, stage};
pub(crate) use standby::{excluded_ipv6, is_standby_name, standby_addresses};

/// The tracker an address conflict sets (weight 0: FAULT while it stands).
pub(crate) const CONFLICT_TRACKER: &str = crate::ids::TrackerName::ADDRESS_CONFLICT;
/// A bind that failed for another reason than a foreign address is tried again after this.
const BIND_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

impl DataplaneCmd {
    /// The instance whose worker carries the command out (`None`: the data plane's own).
    fn instance(&self) -> Option<InstanceId> {
        match self {
            DataplaneCmd::Stage { id, .. }
            | DataplaneCmd::Restage { id, .. }
            | DataplaneCmd::Bind { id, .. }
            | DataplaneCmd::Unbind { id, .. }
            | DataplaneCmd::Disown { id, .. }
            | DataplaneCmd::Announce { id, .. }
            | DataplaneCmd::Forget { id } => Some(*id),
            DataplaneCmd::Event(_) | DataplaneCmd::ReleaseAll(_) => None,
        }
    }
}

/// What the data plane's task and its workers share.
pub(crate) struct Ctx<K> {
    kernel: K,
    ledger: SharedLedger,
    engine: mpsc::UnboundedSender<EngineCmd>,
    announcer: mpsc::UnboundedSender<AnnounceCmd>,
    /// Kernel requests that failed (status `netlinkErrors`).
    netlink_errors: Arc<AtomicU64>,
}

impl<K> Ctx<K> {
    fn count_netlink_errors(&self, n: usize) {
        if n > 0 {
            self.netlink_errors.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

/// Runs the data plane until its command channel closes. `netlink_errors` counts the kernel
/// requests that failed.
pub(crate) async fn run<K: Kernel>(
    kernel: K,
    mut cmds: mpsc::UnboundedReceiver<DataplaneCmd>,
    engine: mpsc::UnboundedSender<EngineCmd>,
    announcer: mpsc::UnboundedSender<AnnounceCmd>,
    netlink_errors: Arc<AtomicU64>,
    inherited: Vec<Address>,
) {
    let ledger = SharedLedger::default();
    {
        let mut l = ledger.lock().expect("ledger");
        for a in &inherited {
            l.inherit(
                a.index,
                VirtualAddress {
                    address: a.address,
                    prefix_len: a.prefix_len,
                },
            );
        }
    }
    let ctx = Arc::new(Ctx {
        kernel,
        ledger,
        engine,
        announcer,
        netlink_errors,
    });
    let renewer = tokio::spawn(renew::run(ctx.clone()));
    let mut workers: HashMap<InstanceId, mpsc::UnboundedSender<DataplaneCmd>> = HashMap::new();
    let mut handles: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    while let Some(cmd) = cmds.recv().await {
        let Some(id) = cmd.instance() else {
            match cmd {
                DataplaneCmd::Event(e) => watch::on_event(&ctx, &e),
                DataplaneCmd::ReleaseAll(done) => {
                    workers.clear();
                    for h in handles.drain(..) {
                        let _ = h.await;
                    }
                    release_all(&ctx).await;
                    let _ = done.send(());
                }
                _ => unreachable!("an instance's command"),
            }
            continue;
        };
        let forget = matches!(cmd, DataplaneCmd::Forget { .. });
        let tx = workers.entry(id).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            handles.retain(|h| !h.is_finished());
            let worker = Worker {
                ctx: ctx.clone(),
                id,
                standby: None,
                pending: None,
            };
            handles.push(tokio::spawn(worker.run(rx)));
            tx
        });
        let _ = tx.send(cmd);
        if forget {
            workers.remove(&id);
        }
    }
    renewer.abort();
}

/// A standby link to make once the instance leaves master.
struct PendingStandby {
    parent: u32,
    key: InstanceKey,
    addresses: Vec<VirtualAddress>,
}

/// One instance's worker: its commands, in order.
struct Worker<K> {
    ctx: Arc<Ctx<K>>,
    id: InstanceId,
    standby: Option<Standby>,
    pending: Option<PendingStandby>,
}

impl<K: Kernel> Worker<K> {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<DataplaneCmd>) {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                DataplaneCmd::Stage {
                    key,
                    ifindex,
                    addresses,
                    ..
                } => {
                    if let Some(old) = self.standby.take() {
                        drop_standby(&self.ctx, self.id, old).await;
                    }
                    self.standby = stage(&self.ctx, self.id, &key, ifindex, &addresses).await;
                }
                DataplaneCmd::Restage {
                    key,
                    ifindex,
                    addresses,
                    master,
                    ..
                } => self.restage(key, ifindex, addresses, master).await,
                DataplaneCmd::Bind {
                    key,
                    ifindex,
                    addresses,
                    ..
                } => self.bind(&key, ifindex, addresses).await,
                DataplaneCmd::Unbind {
                    ifindex, addresses, ..
                } => self.unbind(ifindex, addresses).await,
                DataplaneCmd::Announce {
                    key,
                    ifindex,
                    mac,
                    addresses,
                    garp,
                    burst,
                    ..
                } => self.announce(key, ifindex, mac, addresses, garp, burst),
                DataplaneCmd::Disown {
                    ifindex, addresses, ..
                } => {
                    let left = self
                        .ctx
                        .ledger
                        .lock()
                        .expect("ledger")
                        .disown(ifindex, addresses.iter().map(|a| a.address));
                    let failed = delete_all(&self.ctx.kernel, left).await;
                    self.ctx.count_netlink_errors(failed);
                }
                DataplaneCmd::Forget { .. } => {
                    let _ = self
                        .ctx
                        .announcer
                        .send(AnnounceCmd::StopInstance { instance: self.id });
                    if let Some(old) = self.standby.take() {
                        drop_standby(&self.ctx, self.id, old).await;
                    }
                    // Whatever it still holds that nobody else does goes with it.
                    let left = self
                        .ctx
                        .ledger
                        .lock()
                        .expect("ledger")
                        .forget_instance(self.id);
                    if !left.is_empty() {
                        info!(
                            addresses = left.len(),
                            "releasing what a removed instance still held"
                        );
                        let failed = delete_all(&self.ctx.kernel, left).await;
                        self.ctx.count_netlink_errors(failed);
                    }
                    break;
                }
                DataplaneCmd::Event(_) | DataplaneCmd::ReleaseAll(_) => {}
            }
        }
        // Forgotten, or the agent is stopping (its queue closed): the standby link goes.
        if let Some(old) = self.standby.take() {
            drop_standby(&self.ctx, self.id, old).await;
        }
    }

    async fn restage(
        &mut self,
        key: InstanceKey,
        parent: u32,
        addresses: Vec<VirtualAddress>,
        master: bool,
    ) {
        match restage_decision(self.standby.is_some(), addresses.len(), master) {
            Restage::Follow => {
                let s = self.standby.as_mut().expect("a standby link");
                restage(&self.ctx, self.id, &key, s, &addresses).await;
            }
            Restage::StageNow => {
                self.standby = stage(&self.ctx, self.id, &key, parent, &addresses).await;
            }
            Restage::StageOnLeavingMaster => {
                self.pending = Some(PendingStandby {
                    parent,
                    key,
                    addresses,
                })
            }
            Restage::Nothing => self.pending = None,
        }
    }

    /// Becoming master: the standby link up, everything else bound.
    async fn bind(&mut self, key: &InstanceKey, ifindex: u32, addresses: Vec<VirtualAddress>) {
        let (staged, rest) = Standby::split(&self.standby, addresses);
        if let Some(s) = self.standby.as_mut().filter(|_| !staged.is_empty())
            && !raise(&self.ctx, key, s, staged.len()).await
            && let Some(old) = self.standby.take()
        {
            drop_standby(&self.ctx, self.id, old).await;
            bind(&self.ctx, self.id, key, ifindex, &staged).await;
        }
        bind(&self.ctx, self.id, key, ifindex, &rest).await
    }

    /// Leaving master (or fewer addresses): announcements stop, the standby link goes down,
    /// what is ours of the rest is released.
    async fn unbind(&mut self, ifindex: u32, addresses: Vec<VirtualAddress>) {
        let ctx = &self.ctx;
        let _ = ctx.announcer.send(AnnounceCmd::Stop {
            id: ScheduleId::Instance(self.id, ifindex),
        });
        let (staged, rest) = Standby::split(&self.standby, addresses);
        if let Some(s) = self.standby.as_mut().filter(|_| !staged.is_empty()) {
            let _ = ctx.announcer.send(AnnounceCmd::Stop {
                id: ScheduleId::StandbyLink(self.id),
            });
            ctx.ledger
                .lock()
                .expect("ledger")
                .set_mac(s.link, &staged, None);
            if !lower(ctx, s).await
                && let Some(old) = self.standby.take()
            {
                drop_standby(ctx, self.id, old).await;
            }
        }
        let mine = ctx.ledger.lock().expect("ledger").release(
            ifindex,
            self.id,
            rest.iter().map(|a| a.address),
        );
        let failed = delete_all(&ctx.kernel, mine).await;
        ctx.count_netlink_errors(failed);
        if let Some(p) = self.pending.take()
            && self.standby.is_none()
        {
            self.standby = stage(ctx, self.id, &p.key, p.parent, &p.addresses).await;
        }
    }

    /// Starts (or retimes) the announcements of what is bound now: the standby link's
    /// addresses with its MAC, the others with the instance's.
    fn announce(
        &mut self,
        key: InstanceKey,
        ifindex: u32,
        mac: Mac,
        addresses: Vec<VirtualAddress>,
        garp: GarpConfig,
        burst: bool,
    ) {
        let ctx = &self.ctx;
        let (staged, rest) = Standby::split(&self.standby, addresses);
        let mut ledger = ctx.ledger.lock().expect("ledger");
        if let Some(s) = self.standby.as_ref().filter(|s| s.up && !staged.is_empty()) {
            let bound = ledger.set_mac(s.link, &staged, Some(s.mac));
            let _ = ctx.announcer.send(AnnounceCmd::Start {
                id: ScheduleId::StandbyLink(self.id),
                key: key.clone(),
                ifindex: s.link,
                mac: s.mac,
                addresses: bound,
                garp,
                burst,
            });
        }
        // Only what is bound now is announced (a conflict may have stopped some).
        let bound = ledger.set_mac(ifindex, &rest, Some(mac));
        let _ = ctx.announcer.send(AnnounceCmd::Start {
            id: ScheduleId::Instance(self.id, ifindex),
            key,
            ifindex,
            mac,
            addresses: bound,
            garp,
            burst,
        });
    }
}

/// Binds `addresses` on `ifindex` for instance `id`. One already there and not ours is a
/// conflict; any failure is a fault (never Master: hand over).
async fn bind<K: Kernel>(
    ctx: &Ctx<K>,
    id: InstanceId,
    key: &InstanceKey,
    ifindex: u32,
    addresses: &[VirtualAddress],
) {
    ctx.ledger
        .lock()
        .expect("ledger")
        .hold(ifindex, id, key, addresses, None);
    let started = std::time::Instant::now();
    let results = add_all(&ctx.kernel, ifindex, addresses).await;
    if addresses.len() >= 100 {
        info!(
            instance = %key,
            addresses = addresses.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "addresses bound"
        );
    }
    let (existed, mut failed) = split_outcomes(results);
    ctx.count_netlink_errors(failed.len());
    // Errors that are not a foreign address: nothing will announce that they cleared.
    let retry = !failed.is_empty();
    if !existed.is_empty() {
        // There already: ours (our mark) is fine; anything else belongs to someone else.
        let present = ctx
            .kernel
            .addresses(Some(ifindex))
            .await
            .unwrap_or_default();
        let theirs = foreign(&existed, &present);
        // Ours already (a predecessor's, or our own racing event): a fresh lifetime now.
        let ours: Vec<(u32, VirtualAddress)> = existed
            .iter()
            .filter(|a| !theirs.contains(a))
            .map(|a| (ifindex, *a))
            .collect();
        ctx.count_netlink_errors(renew::renew_all(&ctx.kernel, ours).await);
        let mut l = ctx.ledger.lock().expect("ledger");
        for a in theirs {
            failed.push((
                a,
                format!(
                    "{} is already on the interface and was not added by kube-vrrp",
                    a.address
                ),
            ));
            l.conflict(ifindex, a.address, key);
        }
    }
    let Some(reason) = failure_reason(&failed) else {
        return;
    };
    {
        let mut l = ctx.ledger.lock().expect("ledger");
        for (a, _) in &failed {
            l.unhold(ifindex, id, a.address);
        }
    }
    error!(instance = %key, failed = failed.len(), %reason, "cannot bind virtual addresses");
    // A conflict clears when the other address goes (see `watch`); any other error is tried
    // again after a while.
    set_bind_fault(&ctx.engine, key, Some(format!("cannot bind: {reason}")));
    if retry {
        let (engine, key) = (ctx.engine.clone(), key.clone());
        tokio::spawn(async move {
            tokio::time::sleep(BIND_RETRY).await;
            set_bind_fault(&engine, &key, None);
        });
    }
}

/// Splits a bind batch's outcomes into the addresses that were there already and those that
/// failed, with why.
fn split_outcomes(
    results: Vec<Outcome<bool>>,
) -> (Vec<VirtualAddress>, Vec<(VirtualAddress, String)>) {
    let mut existed = Vec::new();
    let mut failed = Vec::new();
    for (a, r) in results {
        match r {
            Ok(true) => {}
            Ok(false) => existed.push(a),
            Err(e) => failed.push((a, e.to_string())),
        }
    }
    (existed, failed)
}

/// Those of `existed` that are on the interface without our mark: someone else's.
fn foreign(existed: &[VirtualAddress], present: &[Address]) -> Vec<VirtualAddress> {
    existed
        .iter()
        .filter(|a| {
            !present
                .iter()
                .any(|p| p.address == a.address && p.is_ours())
        })
        .copied()
        .collect()
}

/// The fault reason of a bind: the first failure, and how many more.
fn failure_reason(failed: &[(VirtualAddress, String)]) -> Option<String> {
    match failed {
        [] => None,
        [(_, r)] => Some(r.clone()),
        [(_, r), rest @ ..] => Some(format!("{r} (and {} more)", rest.len())),
    }
}

/// Sets (`Some(reason)`) or clears the instance's conflict tracker.
fn set_bind_fault(
    engine: &mpsc::UnboundedSender<EngineCmd>,
    key: &InstanceKey,
    reason: Option<String>,
) {
    let _ = engine.send(EngineCmd::Tracker {
        key: key.clone(),
        name: CONFLICT_TRACKER.into(),
        weight: 0,
        failing: reason.is_some(),
        reason: reason.unwrap_or_default(),
    });
}

/// Releases every address still in the ledger (the agent stops).
async fn release_all<K: Kernel>(ctx: &Ctx<K>) {
    let all = ctx.ledger.lock().expect("ledger").release_all();
    let failed = delete_all(&ctx.kernel, all).await;
    ctx.count_netlink_errors(failed);
}

#[cfg(test)]
mod tests;
