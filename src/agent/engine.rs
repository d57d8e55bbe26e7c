//! The VRRP engine: every instance's state machine, its timers, the receive sockets and the
//! advertisements, on a thread of its own with its own runtime. Nothing else runs there, and
//! it never awaits anything but its own channels, sockets and timers: configuration work
//! (sockets opened, DAD waited for, macvlans made), address changes (netlink), announcements
//! (AF_PACKET bursts), the API and logging all happen elsewhere and report back.
//!
//! ```text
//!  receiver task per (interface, family) ── decoded adverts ──▶ ┐
//!        (malformed: counted there, flushed once a second)     │
//!  EngineCmd (start / stop / update / link / tracker / …) ───▶ ├─▶ Instance::handle(now, input)
//!  timer wheel (BTreeSet of deadlines) ────────────────────▶   ┘        │ actions
//!                                                                        ▼
//!   adverts: sent here (non-blocking raw socket) · addresses + announcements: DataplaneCmd
//!   transitions: logged (non-blocking writer) and AgentEvent::Changed
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use super::AgentEvent;
use super::dataplane::DataplaneCmd;
use super::status::{AgentStatus, GlobalCounters, InstanceStatus, TransitionStatus};
use crate::health::notify::{NotifyMsg, Transition};
use crate::model::spec::{ResolvedInstance, family_label};
use crate::net::announce::Mac;
use crate::net::socket::{VrrpReceiver, VrrpSender};
use crate::vrrp::priority::{Effective, Tracker, Trackers};
use crate::vrrp::{
    Action, Advertisement, DecodeError, Family, Input, Instance, State, VirtualAddress,
};

/// A foreign router on our VRID is reported until it has been silent this long.
const CONFLICT_HOLD: Duration = Duration::from_secs(10);
/// Malformed packets are summed up in the log at most this often.
const LOG_SUMMARY: Duration = Duration::from_secs(10);
/// Receivers hand their malformed-packet counts over this often.
const MALFORMED_FLUSH: Duration = Duration::from_secs(1);
/// How long a master that handed over keeps its addresses after its successor's first
/// advertisement: time for the successor's bind and gratuitous ARP / NA to reach clients.
const HANDOVER_GRACE: Duration = Duration::from_millis(50);
/// The tracker name of the interface an instance runs on.
pub const INTERFACE_TRACKER: &str = "interface";

pub type SocketKey = (u32, Family);

/// Everything an instance needs to run, made ready off the engine.
pub struct Prepared {
    pub resolved: ResolvedInstance,
    pub sender: Arc<VrrpSender>,
    /// Receive sockets this instance needs (the engine keeps one per key and drops duplicates).
    pub receivers: Vec<(SocketKey, socket2::Socket)>,
    /// Where the VIPs are bound: the base interface or the virtual-MAC macvlan.
    pub addr_ifindex: u32,
    pub announce_mac: Mac,
    pub vmac_link: Option<u32>,
    pub base_up: bool,
}

pub enum EngineCmd {
    Start(Box<Prepared>),
    /// Hand over (priority 0) and stop; a master keeps its addresses until the new master is
    /// heard, at most three intervals (make before break).
    Stop(String),
    /// Same instance, new priority and/or announcement settings: applied in place.
    Update(ResolvedInstance),
    /// An interface went up or down.
    Link {
        ifindex: u32,
        up: bool,
    },
    /// An interface is gone: its instances are in FAULT until they are restarted on the new
    /// one, and its receive sockets are closed.
    LinkGone(u32),
    /// A tracker of one instance changed (interface, address conflict, health checks).
    Tracker {
        key: String,
        name: String,
        weight: i16,
        failing: bool,
        reason: String,
    },
    /// A tracker of every instance of a VirtualIP (health checks, tracked interfaces, the
    /// node's own condition) changed; `None`: it is gone. Kept for instances started later.
    VipTracker {
        vip: String,
        name: String,
        tracker: Option<Tracker>,
    },
    /// The data plane put back an address someone else removed.
    Restored {
        key: String,
        address: IpAddr,
    },
    Snapshot(oneshot::Sender<AgentStatus>),
    /// Hands every instance over; answers once every address release has been asked for.
    StopAll(oneshot::Sender<()>),
}

impl EngineCmd {
    fn kind(&self) -> &'static str {
        match self {
            EngineCmd::Start(_) => "start",
            EngineCmd::Stop(_) => "stop",
            EngineCmd::Update(_) => "update",
            EngineCmd::Link { .. } => "link",
            EngineCmd::LinkGone(_) => "link-gone",
            EngineCmd::Tracker { .. } => "tracker",
            EngineCmd::VipTracker { .. } => "vip-tracker",
            EngineCmd::Restored { .. } => "restored",
            EngineCmd::Snapshot(_) => "snapshot",
            EngineCmd::StopAll(_) => "stop-all",
        }
    }
}

/// What a receiver task hands the engine.
enum FromReceiver {
    Advert {
        socket: SocketKey,
        src: IpAddr,
        ttl: u8,
        advertisement: Advertisement,
    },
    /// Undecodable packets since the last flush: (VRID octet, error) → count.
    Malformed {
        socket: SocketKey,
        counts: Vec<(Option<u8>, DecodeError, u64)>,
    },
}

struct Slot {
    id: u64,
    resolved: ResolvedInstance,
    instance: Instance,
    sender: Arc<VrrpSender>,
    addr_ifindex: u32,
    announce_mac: Mac,
    vmac_link: Option<u32>,
    trackers: Trackers,
    armed: Option<Duration>,
    last_transition_time: Option<SystemTime>,
    conflict: Option<(Duration, String)>,
    restored: u64,
    /// A master that went to FAULT for a check (not for its link) keeps its addresses until
    /// the new master is heard, at most until the deadline: the handover loses nothing.
    held: Option<(Vec<crate::vrrp::VirtualAddress>, Duration)>,
}

impl Slot {
    fn socket_keys(&self) -> Vec<SocketKey> {
        let family = self.resolved.config.family();
        let mut keys = vec![(self.resolved.ifindex, family)];
        if let Some(vmac) = self.vmac_link {
            keys.push((vmac, family));
        }
        keys
    }
}

/// A master that handed over and waits for its successor before releasing its addresses.
struct Leaving {
    slot: Slot,
    addresses: Vec<crate::vrrp::VirtualAddress>,
    until: Duration,
}

pub struct Engine {
    start: Instant,
    next_id: u64,
    slots: HashMap<u64, Slot>,
    by_key: BTreeMap<String, u64>,
    demux: HashMap<(SocketKey, u8), u64>,
    leaving: Vec<Leaving>,
    timers: BTreeSet<(Duration, u64)>,
    receivers: HashMap<SocketKey, tokio::task::JoinHandle<()>>,
    from_receivers: mpsc::Sender<FromReceiver>,
    global: GlobalCounters,
    dataplane: mpsc::UnboundedSender<DataplaneCmd>,
    agent: mpsc::UnboundedSender<AgentEvent>,
    /// A change the status shows is waiting to be picked up by a snapshot.
    changed: bool,
    malformed_since_log: BTreeMap<String, u64>,
    /// Trackers per VirtualIP name, for its instances now and later.
    vip_trackers: HashMap<String, BTreeMap<String, Tracker>>,
    /// Deadlines of held addresses (see `Slot::held`).
    held: BTreeSet<(Duration, u64)>,
    notify: mpsc::UnboundedSender<NotifyMsg>,
}

/// Starts the engine on its own thread. Commands in; the data plane and the agent hear back.
pub fn spawn(
    dataplane: mpsc::UnboundedSender<DataplaneCmd>,
    agent: mpsc::UnboundedSender<AgentEvent>,
    notify: mpsc::UnboundedSender<NotifyMsg>,
) -> std::io::Result<mpsc::UnboundedSender<EngineCmd>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("vrrp-engine".into())
        .spawn(move || {
            realtime();
            rt.block_on(async move {
                let (ftx, frx) = mpsc::channel(4096);
                let engine = Engine {
                    start: Instant::now(),
                    next_id: 1,
                    slots: HashMap::new(),
                    by_key: BTreeMap::new(),
                    demux: HashMap::new(),
                    leaving: Vec::new(),
                    timers: BTreeSet::new(),
                    receivers: HashMap::new(),
                    from_receivers: ftx,
                    global: GlobalCounters::default(),
                    dataplane,
                    agent,
                    changed: false,
                    malformed_since_log: BTreeMap::new(),
                    vip_trackers: HashMap::new(),
                    held: BTreeSet::new(),
                    notify,
                };
                engine.run(rx, frx).await;
            })
        })?;
    Ok(tx)
}

/// Asks for real-time scheduling (SCHED_FIFO, low priority) for this thread: on a busy node
/// (a reload resolving hundreds of VirtualIPs, a flood, other pods) the engine still wakes on
/// time. The work here is short and event-driven, and the kernel's RT throttling bounds it.
/// Without CAP_SYS_NICE it runs at normal priority and says so.
fn realtime() {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: plain syscall on the calling thread (pid 0), with a valid parameter.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if r != 0 {
        info!(
            error = %std::io::Error::last_os_error(),
            "VRRP engine runs without real-time priority (needs CAP_SYS_NICE)"
        );
    }
}

impl Engine {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<EngineCmd>,
        mut packets: mpsc::Receiver<FromReceiver>,
    ) {
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        let mut last_summary = self.now();
        loop {
            let deadline = self.next_deadline();
            let busy_from;
            let mut kind = "timers";
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(deadline) => {
                    busy_from = Instant::now();
                    self.on_timers()
                }
                Some(p) = packets.recv() => {
                    busy_from = Instant::now();
                    kind = "packet";
                    self.on_packet(p)
                }
                cmd = cmds.recv() => match cmd {
                    Some(EngineCmd::StopAll(done)) => {
                        self.stop_all(&mut packets).await;
                        let _ = done.send(());
                        // Snapshots may still be asked for while the agent winds down.
                        while let Some(cmd) = cmds.recv().await {
                            if let EngineCmd::Snapshot(reply) = cmd {
                                let _ = reply.send(self.snapshot());
                            }
                        }
                        return;
                    }
                    Some(cmd) => {
                        busy_from = Instant::now();
                        kind = cmd.kind();
                        self.on_command(cmd)
                    }
                    None => return,
                },
                _ = housekeeping.tick() => {
                    busy_from = Instant::now();
                    kind = "housekeeping";
                    self.expire_conflicts();
                    if self.now() - last_summary >= LOG_SUMMARY {
                        last_summary = self.now();
                        self.log_malformed_summary();
                    }
                }
            }
            let busy = busy_from.elapsed().as_micros() as u64;
            if busy > self.global.max_engine_busy_us {
                self.global.max_engine_busy_us = busy;
                if busy > 2_000 {
                    warn!(
                        busy_us = busy,
                        event = kind,
                        "the VRRP engine was slow on one event"
                    );
                }
            }
        }
    }

    fn mark_changed(&mut self) {
        if !self.changed {
            self.changed = true;
            let _ = self.agent.send(AgentEvent::Changed);
        }
    }

    fn on_command(&mut self, cmd: EngineCmd) {
        match cmd {
            EngineCmd::Start(p) => self.start_instance(*p),
            EngineCmd::Stop(key) => self.stop_instance(&key),
            EngineCmd::Update(resolved) => self.update(resolved),
            EngineCmd::Link { ifindex, up } => self.link_changed(ifindex, up),
            EngineCmd::LinkGone(ifindex) => {
                self.link_changed(ifindex, false);
                self.receivers.retain(|(i, _), task| {
                    if *i == ifindex {
                        task.abort();
                    }
                    *i != ifindex
                });
            }
            EngineCmd::Tracker {
                key,
                name,
                weight,
                failing,
                reason,
            } => {
                if let Some(&id) = self.by_key.get(&key) {
                    let slot = self.slots.get_mut(&id).expect("slot");
                    if slot.trackers.set(&name, weight, failing, &reason) {
                        self.apply_trackers(id);
                    }
                }
            }
            EngineCmd::VipTracker { vip, name, tracker } => {
                let known = self.vip_trackers.entry(vip.clone()).or_default();
                match &tracker {
                    Some(t) => {
                        known.insert(name.clone(), t.clone());
                    }
                    None => {
                        known.remove(&name);
                    }
                }
                if known.is_empty() {
                    self.vip_trackers.remove(&vip);
                }
                let prefix = format!("{vip}/");
                let ids: Vec<u64> = self
                    .by_key
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(_, id)| *id)
                    .collect();
                for id in ids {
                    let slot = self.slots.get_mut(&id).expect("slot");
                    let changed = match &tracker {
                        Some(t) => slot.trackers.put(&name, t.clone()),
                        None => slot.trackers.remove(&name),
                    };
                    if changed {
                        self.apply_trackers(id);
                        self.mark_changed();
                    }
                }
            }
            EngineCmd::Restored { key, address } => {
                if let Some(&id) = self.by_key.get(&key) {
                    let slot = self.slots.get_mut(&id).expect("slot");
                    slot.restored += 1;
                    warn!(instance = %key, %address, "virtual address removed by someone else: put back");
                    self.mark_changed();
                }
            }
            EngineCmd::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
            EngineCmd::StopAll(_) => unreachable!("handled in run"),
        }
    }

    fn start_instance(&mut self, p: Prepared) {
        let key = p.resolved.key.clone();
        if self.by_key.contains_key(&key) {
            // A restart: the old one hands over first.
            self.stop_instance(&key);
        }
        for (socket_key, socket) in p.receivers {
            self.ensure_receiver(socket_key, socket);
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut trackers = Trackers::default();
        trackers.set(
            INTERFACE_TRACKER,
            0,
            !p.base_up,
            &format!("interface {} down", p.resolved.interface),
        );
        for (name, t) in self
            .vip_trackers
            .get(&p.resolved.name)
            .into_iter()
            .flatten()
        {
            trackers.put(name, t.clone());
        }
        let slot = Slot {
            id,
            instance: Instance::new(p.resolved.config.clone()),
            resolved: p.resolved,
            sender: p.sender,
            addr_ifindex: p.addr_ifindex,
            announce_mac: p.announce_mac,
            vmac_link: p.vmac_link,
            trackers,
            armed: None,
            last_transition_time: None,
            conflict: None,
            restored: 0,
            held: None,
        };
        for sk in slot.socket_keys() {
            self.demux.insert((sk, slot.resolved.config.vrid), id);
        }
        if slot.vmac_link.is_none() {
            // Bound ahead while backup, before anything can make this instance master (the
            // data plane keeps each instance's commands in order).
            let staged = super::dataplane::standby_addresses(&slot.resolved.config);
            if !staged.is_empty() {
                let _ = self.dataplane.send(DataplaneCmd::Stage {
                    id,
                    key: key.clone(),
                    ifindex: slot.addr_ifindex,
                    addresses: staged,
                });
            }
        }
        info!(instance = %key, interface = %slot.resolved.interface, vrid = slot.resolved.config.vrid,
              priority = slot.resolved.config.priority, version = %slot.resolved.config.version, "starting");
        self.slots.insert(id, slot);
        self.by_key.insert(key, id);
        self.apply_trackers(id);
        let now = self.now();
        self.handle(id, now, Input::Startup);
        self.mark_changed();
    }

    /// Feeds the trackers' outcome to the state machine: priority in place, or FAULT.
    fn apply_trackers(&mut self, id: u64) {
        let now = self.now();
        let slot = self.slots.get_mut(&id).expect("slot");
        let outcome = slot.trackers.effective(slot.resolved.config.priority);
        match outcome {
            Effective::Priority(p) => {
                if p != slot.instance.priority() {
                    // Advertised from the next advertisement on, no state change.
                    slot.instance.handle(now, Input::SetPriority(p));
                    self.mark_changed();
                }
                self.handle(id, now, Input::TrackedFault(None));
            }
            Effective::Fault(reason) => {
                // Make before break: a master leaving for a check (its link and addresses
                // being fine) hands over with priority 0 and keeps the addresses until the
                // new master is heard.
                let graceful = slot.instance.state() == State::Master
                    && [INTERFACE_TRACKER, super::dataplane::CONFLICT_TRACKER]
                        .iter()
                        .all(|t| slot.trackers.get(t).is_none_or(|t| !t.fault()));
                let mut actions = slot.instance.handle(now, Input::TrackedFault(Some(reason)));
                if graceful {
                    let until = now + 3 * slot.instance.config().advert_interval;
                    actions.retain(|a| match a {
                        Action::RemoveAddresses(addrs) => {
                            slot.held = Some((addrs.clone(), until));
                            false
                        }
                        _ => true,
                    });
                    if slot.held.is_some() {
                        self.held.insert((until, id));
                    }
                }
                self.after_handle(id, actions);
            }
        }
    }

    /// Lets held addresses go (the new master was heard, or the deadline passed).
    fn release_held(&mut self, id: u64) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        if let Some((addresses, until)) = slot.held.take() {
            self.held.remove(&(until, id));
            let _ = self.dataplane.send(DataplaneCmd::Unbind {
                id,
                ifindex: slot.addr_ifindex,
                addresses,
            });
            self.mark_changed();
        }
    }

    fn stop_instance(&mut self, key: &str) {
        let Some(id) = self.by_key.remove(key) else {
            return;
        };
        let now = self.now();
        let mut slot = self.slots.remove(&id).expect("slot");
        if let Some(at) = slot.armed.take() {
            self.timers.remove(&(at, id));
        }
        for sk in slot.socket_keys() {
            if self.demux.get(&(sk, slot.resolved.config.vrid)) == Some(&id) {
                self.demux.remove(&(sk, slot.resolved.config.vrid));
            }
        }
        let was_master = slot.instance.state() == State::Master;
        let mut actions = slot.instance.handle(now, Input::Shutdown);
        let mut held = None;
        if let Some((addresses, until)) = slot.held.take() {
            // Handing over already (a check failed): the new master may still be unheard.
            self.held.remove(&(until, id));
            held = Some(addresses);
        }
        if was_master {
            actions.retain(|a| match a {
                Action::RemoveAddresses(addrs) => {
                    held = Some(addrs.clone());
                    false
                }
                _ => true,
            });
        }
        self.execute(&mut slot, actions);
        info!(instance = %key, "stopping");
        match held {
            Some(addresses) => {
                let until = now + 3 * slot.instance.config().advert_interval;
                self.leaving.push(Leaving {
                    slot,
                    addresses,
                    until,
                });
            }
            None => self.retire(slot),
        }
        self.mark_changed();
    }

    /// Excluded addresses changed in place: a master binds the new ones and releases the
    /// old, the standby link follows, advertisements stay as they are.
    fn readdress(&mut self, id: u64, resolved: &ResolvedInstance) {
        let slot = self.slots.get_mut(&id).expect("slot");
        let old: HashSet<IpAddr> = slot
            .resolved
            .config
            .addresses
            .iter()
            .map(|a| a.address)
            .collect();
        let new: HashSet<IpAddr> = resolved
            .config
            .addresses
            .iter()
            .map(|a| a.address)
            .collect();
        let added: Vec<VirtualAddress> = resolved
            .config
            .addresses
            .iter()
            .filter(|a| !old.contains(&a.address))
            .copied()
            .collect();
        let removed: Vec<VirtualAddress> = slot
            .resolved
            .config
            .addresses
            .iter()
            .filter(|a| !new.contains(&a.address))
            .copied()
            .collect();
        info!(instance = %resolved.key, added = added.len(), removed = removed.len(), "excluded addresses changed in place");
        slot.instance
            .reconfigure_excluded(resolved.config.addresses.clone());
        let master = slot.instance.state() == State::Master;
        if slot.vmac_link.is_none() {
            let _ = self.dataplane.send(DataplaneCmd::Restage {
                id,
                key: resolved.key.clone(),
                ifindex: slot.addr_ifindex,
                addresses: super::dataplane::excluded_ipv6(&resolved.config),
                master,
            });
        }
        if !master {
            return;
        }
        if !removed.is_empty() {
            let _ = self.dataplane.send(DataplaneCmd::Unbind {
                id,
                ifindex: slot.addr_ifindex,
                addresses: removed,
            });
        }
        if !added.is_empty() {
            let _ = self.dataplane.send(DataplaneCmd::Bind {
                id,
                key: resolved.key.clone(),
                ifindex: slot.addr_ifindex,
                addresses: added.clone(),
            });
            // The new ones now, then the whole list on the usual schedule.
            let _ = self.dataplane.send(DataplaneCmd::Announce {
                id,
                key: resolved.key.clone(),
                ifindex: slot.addr_ifindex,
                mac: slot.announce_mac,
                addresses: added,
                garp: resolved.garp,
                burst: true,
            });
        }
        let _ = self.dataplane.send(DataplaneCmd::Announce {
            id,
            key: resolved.key.clone(),
            ifindex: slot.addr_ifindex,
            mac: slot.announce_mac,
            addresses: resolved.config.addresses.clone(),
            garp: resolved.garp,
            burst: false,
        });
    }

    fn retire(&mut self, slot: Slot) {
        let _ = self.dataplane.send(DataplaneCmd::Forget { id: slot.id });
        let _ = self.agent.send(AgentEvent::Retired {
            key: slot.resolved.key.clone(),
            vmac: slot.vmac_link.map(|i| {
                let c = &slot.resolved.config;
                (i, super::instances::vmac_name(c.family(), c.vrid))
            }),
        });
        // The sender (shared, closed with its last user) and the rest go with the slot.
        info!(instance = %slot.resolved.key, "stopped");
        self.mark_changed();
    }

    fn update(&mut self, resolved: ResolvedInstance) {
        let Some(&id) = self.by_key.get(&resolved.key) else {
            return;
        };
        let slot = self.slots.get_mut(&id).expect("slot");
        let (old, new) = (slot.resolved.config.priority, resolved.config.priority);
        if old != new {
            info!(instance = %resolved.key, from = old, to = new, "priority changed in place");
            slot.instance.reconfigure_priority(new);
        }
        if slot.resolved.config.addresses != resolved.config.addresses {
            self.readdress(id, &resolved);
        }
        let slot = self.slots.get_mut(&id).expect("slot");
        if slot.resolved.garp != resolved.garp && slot.instance.state() == State::Master {
            // The announcer takes the new timing from the next burst on.
            let _ = self.dataplane.send(DataplaneCmd::Announce {
                id,
                key: resolved.key.clone(),
                ifindex: slot.addr_ifindex,
                mac: slot.announce_mac,
                addresses: resolved.config.addresses.clone(),
                garp: resolved.garp,
                burst: false,
            });
        }
        slot.resolved = resolved;
        self.apply_trackers(id);
        self.mark_changed();
    }

    fn link_changed(&mut self, ifindex: u32, up: bool) {
        let ids: Vec<u64> = self
            .slots
            .values()
            .filter(|s| s.resolved.ifindex == ifindex)
            .map(|s| s.id)
            .collect();
        for id in ids {
            let slot = self.slots.get_mut(&id).expect("slot");
            let reason = format!("interface {} down", slot.resolved.interface);
            if slot.trackers.set(INTERFACE_TRACKER, 0, !up, &reason) {
                info!(instance = %slot.resolved.key, interface = %slot.resolved.interface, up, "interface state changed");
                self.apply_trackers(id);
            }
        }
    }

    /// One receiver task per (interface, family), shared by every instance there.
    fn ensure_receiver(&mut self, key: SocketKey, socket: socket2::Socket) {
        if self.receivers.contains_key(&key) {
            return; // a duplicate from a concurrent setup: closing a raw IP socket is cheap
        }
        let rx = match VrrpReceiver::from_socket(key.1, socket) {
            Ok(rx) => rx,
            Err(e) => {
                warn!(error = %e, "cannot register a VRRP receive socket");
                return;
            }
        };
        let tx = self.from_receivers.clone();
        let task = tokio::spawn(async move {
            let mut counts: HashMap<(Option<u8>, String), (DecodeError, u64)> = HashMap::new();
            let mut flush = tokio::time::interval(MALFORMED_FLUSH);
            flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    r = rx.recv() => match r {
                        Ok(p) => match Advertisement::decode(&p.payload, p.src, p.dst) {
                            Ok(advertisement) => {
                                let msg = FromReceiver::Advert {
                                    socket: key,
                                    src: p.src,
                                    ttl: p.ttl,
                                    advertisement,
                                };
                                if tx.send(msg).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                // Counted here and handed over in bulk: a flood costs the
                                // engine one message a second, and the log one line per ten.
                                let vrid = p.payload.get(1).copied();
                                counts
                                    .entry((vrid, e.kind().to_string()))
                                    .or_insert((e, 0))
                                    .1 += 1;
                            }
                        },
                        Err(e) => {
                            warn!(error = %e, "VRRP receive failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                    _ = flush.tick(), if !counts.is_empty() => {
                        let counts = counts
                            .drain()
                            .map(|((vrid, _), (e, n))| (vrid, e, n))
                            .collect();
                        if tx
                            .send(FromReceiver::Malformed { socket: key, counts })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        self.receivers.insert(key, task);
    }

    fn next_deadline(&self) -> Instant {
        let far = self.now() + Duration::from_secs(3600);
        let timer = self.timers.first().map(|(at, _)| *at).unwrap_or(far);
        let leaving = self.leaving.iter().map(|l| l.until).min().unwrap_or(far);
        let held = self.held.first().map(|(at, _)| *at).unwrap_or(far);
        self.start + timer.min(leaving).min(held)
    }

    fn on_timers(&mut self) {
        // When many timers are due together (instances that became master at one moment keep
        // that phase), the shortest intervals go first, a few at a time, so a burst of 100 ms
        // advertisements never makes a 20 ms one late: sending is a system call, and on a
        // busy host it is not free.
        const BATCH: usize = 16;
        loop {
            let now = self.now();
            let mut due: Vec<(Duration, Duration, u64)> = self
                .timers
                .range(..=(now, u64::MAX))
                .map(|&(at, id)| {
                    let interval = self
                        .slots
                        .get(&id)
                        .map(|s| s.instance.master_adver_interval())
                        .unwrap_or_default();
                    (interval, at, id)
                })
                .collect();
            if due.is_empty() {
                break;
            }
            due.sort_unstable();
            for (_, at, id) in due.into_iter().take(BATCH) {
                self.timers.remove(&(at, id));
                let Some(slot) = self.slots.get_mut(&id) else {
                    continue;
                };
                slot.armed = None;
                if let Some((kind, due)) = slot.instance.timer()
                    && due <= now
                {
                    let late = (now - due).as_micros() as u64;
                    self.global.max_timer_lateness_us = self.global.max_timer_lateness_us.max(late);
                    self.handle(id, now, Input::TimerExpired(kind));
                } else {
                    // Not due after all (re-armed): keep it armed.
                    self.after_handle(id, Vec::new());
                }
            }
        }
        let now = self.now();
        let (done, waiting): (Vec<Leaving>, Vec<Leaving>) = std::mem::take(&mut self.leaving)
            .into_iter()
            .partition(|l| l.until <= now);
        self.leaving = waiting;
        for l in done {
            self.release(l);
        }
        let expired: Vec<u64> = self
            .held
            .range(..=(now, u64::MAX))
            .map(|(_, id)| *id)
            .collect();
        for id in expired {
            info!(instance = %self.slots[&id].resolved.key, "no new master heard; releasing addresses");
            self.release_held(id);
        }
    }

    /// A leaving master lets its addresses go.
    fn release(&mut self, mut l: Leaving) {
        self.execute(&mut l.slot, vec![Action::RemoveAddresses(l.addresses)]);
        self.retire(l.slot);
    }

    fn on_packet(&mut self, p: FromReceiver) {
        match p {
            FromReceiver::Advert {
                socket,
                src,
                ttl,
                advertisement,
            } => self.on_advert(socket, src, ttl, advertisement),
            FromReceiver::Malformed { socket, counts } => {
                for (vrid, e, n) in counts {
                    *self
                        .malformed_since_log
                        .entry(e.kind().to_string())
                        .or_default() += n;
                    match vrid.and_then(|v| self.demux.get(&(socket, v)).copied()) {
                        Some(id) => {
                            let now = self.now();
                            let slot = self.slots.get_mut(&id).expect("slot");
                            for _ in 0..n {
                                slot.instance.handle(now, Input::Malformed(e.clone()));
                            }
                        }
                        None => {
                            *self
                                .global
                                .malformed
                                .entry(e.kind().to_string())
                                .or_default() += n
                        }
                    }
                }
            }
        }
    }

    fn log_malformed_summary(&mut self) {
        if self.malformed_since_log.is_empty() {
            return;
        }
        let total: u64 = self.malformed_since_log.values().sum();
        let kinds = std::mem::take(&mut self.malformed_since_log)
            .into_iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        warn!(total, %kinds, "malformed VRRP packets dropped in the last {}s", LOG_SUMMARY.as_secs());
    }

    fn on_advert(&mut self, socket: SocketKey, src: IpAddr, ttl: u8, adv: Advertisement) {
        let now = self.now();
        // A leaving master waits for its successor's first advertisement, then a short grace:
        // the successor binds the addresses and sends its gratuitous ARP / NA beside its
        // advertisement, and clients follow only once that has landed.
        if adv.priority > 0 && !self.leaving.is_empty() {
            for l in self.leaving.iter_mut().filter(|l| {
                l.slot.socket_keys().contains(&socket)
                    && l.slot.resolved.config.vrid == adv.vrid
                    && src != l.slot.resolved.config.primary_address
                    && l.until > now + HANDOVER_GRACE
            }) {
                info!(instance = %l.slot.resolved.key, new_master = %src, "new master heard; releasing addresses");
                l.until = now + HANDOVER_GRACE;
            }
        }
        let Some(&id) = self.demux.get(&(socket, adv.vrid)) else {
            self.global.unknown_vrid += 1;
            return;
        };
        let slot = self.slots.get_mut(&id).expect("slot");
        if src == slot.resolved.config.primary_address {
            return; // our own advertisement, looped back by a misbehaving driver
        }
        if let Some((_, until)) = slot.held.as_mut()
            && adv.priority > 0
            && *until > now + HANDOVER_GRACE
        {
            info!(instance = %slot.resolved.key, new_master = %src, "new master heard; releasing addresses");
            self.held.remove(&(*until, id));
            *until = now + HANDOVER_GRACE;
            self.held.insert((*until, id));
        }
        let slot = self.slots.get_mut(&id).expect("slot");
        let before = foreign_signs(slot.instance.counters());
        let vrid = adv.vrid;
        let actions = slot.instance.handle(
            now,
            Input::Advertisement {
                src,
                ttl,
                advertisement: adv,
            },
        );
        let after = foreign_signs(slot.instance.counters());
        if after != before {
            let what = if after.0 != before.0 {
                "other addresses"
            } else if after.1 != before.1 {
                "another password"
            } else {
                "another advertisement interval"
            };
            let text = format!("{src} advertises virtual router {vrid} with {what}");
            let new = slot.conflict.as_ref().is_none_or(|(_, t)| *t != text);
            if new {
                warn!(instance = %slot.resolved.key, conflict = %text, "another VRRP router uses this virtual router ID");
            }
            slot.conflict = Some((now, text));
            if new {
                self.mark_changed();
            }
        }
        self.after_handle(id, actions);
    }

    fn handle(&mut self, id: u64, now: Duration, input: Input) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let actions = slot.instance.handle(now, input);
        self.after_handle(id, actions);
    }

    fn after_handle(&mut self, id: u64, actions: Vec<Action>) {
        let mut slot = self.slots.remove(&id).expect("slot");
        self.execute(&mut slot, actions);
        let timer = slot.instance.timer().map(|(_, at)| at);
        if timer != slot.armed {
            if let Some(old) = slot.armed {
                self.timers.remove(&(old, id));
            }
            if let Some(at) = timer {
                self.timers.insert((at, id));
            }
            slot.armed = timer;
        }
        self.slots.insert(id, slot);
    }

    /// Carries out one instance's actions, in order. Adverts leave here; everything that
    /// may take time goes to the data plane.
    fn execute(&mut self, slot: &mut Slot, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::SendAdvertisement(adv) => {
                    self.global.send_errors += send_advertisement(slot, &adv);
                }
                Action::AddAddresses { addresses, .. } => {
                    // Master again before the handover finished: the addresses stay.
                    if let Some((_, until)) = slot.held.take() {
                        self.held.remove(&(until, slot.id));
                    }
                    let _ = self.dataplane.send(DataplaneCmd::Bind {
                        id: slot.id,
                        key: slot.resolved.key.clone(),
                        ifindex: slot.addr_ifindex,
                        addresses,
                    });
                }
                Action::RemoveAddresses(addresses) => {
                    let _ = self.dataplane.send(DataplaneCmd::Unbind {
                        id: slot.id,
                        ifindex: slot.addr_ifindex,
                        addresses,
                    });
                }
                Action::Announce(addresses) => {
                    let _ = self.dataplane.send(DataplaneCmd::Announce {
                        id: slot.id,
                        key: slot.resolved.key.clone(),
                        ifindex: slot.addr_ifindex,
                        mac: slot.announce_mac,
                        addresses,
                        garp: slot.resolved.garp,
                        burst: true,
                    });
                }
                Action::ArmTimer { .. } | Action::CancelTimer => {}
                Action::StateChanged(t) => {
                    info!(instance = %slot.resolved.key, from = %t.from, to = %t.to, reason = %t.reason, "transition");
                    slot.last_transition_time = Some(SystemTime::now());
                    let c = slot.instance.config();
                    let _ = self.notify.send(NotifyMsg::Transition(Transition {
                        vip: slot.resolved.name.clone(),
                        family: family_label(c.family()),
                        to: (t.to != State::Initialize).then_some(t.to),
                        priority: slot.instance.priority(),
                    }));
                    self.mark_changed();
                }
            }
        }
    }

    fn expire_conflicts(&mut self) {
        let now = self.now();
        let mut changed = false;
        for s in self.slots.values_mut() {
            if s.conflict
                .as_ref()
                .is_some_and(|(t, _)| now.saturating_sub(*t) > CONFLICT_HOLD)
            {
                s.conflict = None;
                changed = true;
            }
        }
        if changed {
            self.mark_changed();
        }
    }

    /// Hands every instance over, waits (at most three intervals) for the successors, and
    /// asks the data plane to release everything.
    async fn stop_all(&mut self, packets: &mut mpsc::Receiver<FromReceiver>) {
        let keys: Vec<String> = self.by_key.keys().cloned().collect();
        for key in keys {
            self.stop_instance(&key);
        }
        while !self.leaving.is_empty() {
            let deadline = self.next_deadline();
            tokio::select! {
                Some(p) = packets.recv() => self.on_packet(p),
                _ = tokio::time::sleep_until(deadline) => self.on_timers(),
            }
        }
        for (_, task) in self.receivers.drain() {
            task.abort();
        }
    }

    /// The status `/status`, `/metrics` and the cluster report are made of.
    fn snapshot(&mut self) -> AgentStatus {
        self.changed = false;
        // A leaving master still holds its addresses: it is reported until it has released
        // them (a deleted VirtualIP's entry goes only once nothing is bound). A new instance
        // under the same key is what is reported, though.
        let instances = self
            .leaving
            .iter()
            .map(|l| &l.slot)
            .chain(self.slots.values())
            .map(|s| (s.resolved.key.clone(), instance_status(s)))
            .collect();
        AgentStatus {
            node: String::new(),
            instances,
            errors: BTreeMap::new(),
            global: self.global.clone(),
            config_error: None,
            checks: BTreeMap::new(),
        }
    }
}

fn instance_status(s: &Slot) -> InstanceStatus {
    let c = s.instance.config();
    let (master, master_priority) = match s.instance.state() {
        State::Master => (Some(c.primary_address), Some(s.instance.priority())),
        State::Backup => s
            .instance
            .master()
            .map(|m| (Some(m.address), Some(m.priority)))
            .unwrap_or_default(),
        _ => (None, None),
    };
    InstanceStatus {
        name: s.resolved.name.clone(),
        family: family_label(c.family()).to_string(),
        interface: s.resolved.interface.clone(),
        source: Some(c.primary_address),
        virtual_router_id: c.vrid,
        version: u8::from(c.version),
        state: s.instance.state(),
        priority: s.resolved.config.priority,
        effective_priority: s.instance.priority(),
        addresses: c.addresses.iter().map(|a| a.to_string()).collect(),
        master,
        master_priority,
        last_transition: s.instance.last_transition().map(|t| TransitionStatus {
            from: t.from,
            to: t.to,
            time: s
                .last_transition_time
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
            reason: t.reason.to_string(),
        }),
        conflict: s.conflict.as_ref().map(|(_, t)| t.clone()),
        trackers: s
            .trackers
            .iter()
            .map(|(name, t)| super::status::TrackerStatus {
                name: name.clone(),
                weight: t.weight,
                failing: t.failing || t.fault() || t.contribution() < 0,
                contribution: if t.fault() { 0 } else { t.contribution() },
                fault: t.fault(),
                reason: (t.failing || t.fault() || t.contribution() < 0).then(|| t.reason.clone()),
            })
            .collect(),
        addresses_restored: s.restored,
        counters: s.instance.counters().clone(),
    }
}

/// Sends one advertisement to the group or every unicast peer; returns the failures.
fn send_advertisement(s: &Slot, adv: &Advertisement) -> u64 {
    let c = s.instance.config();
    let src = c.primary_address;
    let multicast = [c.family().multicast_group()];
    let dsts: &[IpAddr] = if c.unicast_peers.is_empty() {
        &multicast
    } else {
        &c.unicast_peers
    };
    let mut errors = 0;
    for &dst in dsts {
        let sent = adv
            .encode(src, dst)
            .map_err(|e| e.to_string())
            .and_then(|bytes| s.sender.send(dst, &bytes).map_err(|e| e.to_string()));
        if let Err(e) = sent {
            if errors == 0 {
                warn!(instance = %s.resolved.key, %dst, error = %e, "advertisement not sent");
            }
            errors += 1;
        }
    }
    errors
}

/// Counters that move when an advertisement for our VRID is not from one of ours: address
/// list, authentication, interval.
fn foreign_signs(c: &crate::vrrp::Counters) -> (u64, u64, u64) {
    (
        c.address_list_errors,
        c.auth_failures + c.auth_type_mismatch + c.invalid_auth_type,
        c.advert_interval_errors,
    )
}
