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
//!  timer wheel (deadlines of the armed timers) ────────────▶   ┘        │ actions
//!                                                                        ▼
//!   adverts: sent here (non-blocking raw socket) · addresses + announcements: DataplaneCmd
//!   transitions: logged (non-blocking writer) and AgentEvent::Changed
//! ```
//!
//! This file is the loop and the command dispatch; each decision lives in a room of its own
//! with its tests: [`handover`] (make before break), [`receiver`] (sockets → inputs),
//! [`timers`], [`trackers`] (priority or FAULT), [`conflict`] (a foreign router on our VRID), [`readdress`] (changes in place),
//! [`snapshot`] (status). The core is driven as [`crate::vrrp::driver`] says, like the
//! simulator.

mod conflict;
mod handover;
mod links;
mod readdress;
mod receiver;
mod snapshot;
mod timers;
mod trackers;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use super::messages::{AgentEvent, DataplaneCmd, EngineCmd, FromReceiver, Prepared, SocketKey};
use super::status::GlobalCounters;
use super::will::{Farewell, Will};
use crate::hooks::{HookEvent, NotifyMsg};
use crate::ids::{InstanceId, InstanceKey};
use crate::model::resolved::ResolvedInstance;
use crate::net::announce::Mac;
use crate::net::socket::VrrpSender;
use crate::vrrp::driver::{ArmedTimer, INTERFACE_TRACKER};
use crate::vrrp::priority::{Tracker, Trackers};
use crate::vrrp::{Action, Advertisement, Input, Instance, State};
use conflict::ConflictReport;
use handover::{HandoverHold, Leaving, defer_release};
use readdress::Placement;
use receiver::LOG_SUMMARY;
use timers::TimerWheel;
use trackers::interface_down;

/// A running instance and what the engine keeps beside it.
struct RunningInstance {
    id: InstanceId,
    resolved: ResolvedInstance,
    instance: Instance,
    /// The instance's protocol timer, as its actions armed it.
    timer: ArmedTimer,
    sender: Arc<VrrpSender>,
    addr_ifindex: u32,
    announce_mac: Mac,
    vmac_link: Option<u32>,
    trackers: Trackers,
    last_transition_time: Option<SystemTime>,
    conflict: ConflictReport,
    restored: u64,
    /// A master that went to FAULT for a check (not for its link) keeps its addresses until
    /// the new master is heard, at most until the deadline: the handover loses nothing.
    handover: Option<HandoverHold>,
    /// Whether the election has spoken since the instance started: it became master (its
    /// addresses are bound), or it heard another master (a previous run's copies of its
    /// addresses, kept at start, were disowned).
    settled: bool,
    /// Another master heard while master (a split brain once it goes on).
    other_master: conflict::OtherMaster,
}

impl RunningInstance {
    fn socket_keys(&self) -> Vec<SocketKey> {
        let family = self.resolved.config.family();
        let mut keys = vec![(self.resolved.ifindex, family)];
        if let Some(vmac) = self.vmac_link {
            keys.push((vmac, family));
        }
        keys
    }

    fn placement(&self) -> Placement {
        Placement {
            id: self.id,
            ifindex: self.addr_ifindex,
            mac: self.announce_mac,
            vmac: self.vmac_link.is_some(),
        }
    }
}

pub(crate) struct Engine {
    start: Instant,
    next_id: InstanceId,
    slots: HashMap<InstanceId, RunningInstance>,
    by_key: BTreeMap<InstanceKey, InstanceId>,
    demux: HashMap<(SocketKey, u8), InstanceId>,
    leaving: Vec<Leaving>,
    timers: TimerWheel,
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
    /// Deadlines of the running instances' handover holds (see `RunningInstance::handover`).
    handover_deadlines: BTreeSet<(Duration, InstanceId)>,
    notify: mpsc::UnboundedSender<NotifyMsg>,
    /// Where the agent's last will goes (under a warden), and whether it needs redoing.
    will: Option<watch::Sender<Will>>,
    will_stale: bool,
}

/// Starts the engine on its own thread. Commands in; the data plane and the agent hear back.
pub(crate) fn spawn(
    dataplane: mpsc::UnboundedSender<DataplaneCmd>,
    agent: mpsc::UnboundedSender<AgentEvent>,
    notify: mpsc::UnboundedSender<NotifyMsg>,
    will: Option<watch::Sender<Will>>,
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
                    next_id: InstanceId::FIRST,
                    slots: HashMap::new(),
                    by_key: BTreeMap::new(),
                    demux: HashMap::new(),
                    leaving: Vec::new(),
                    timers: TimerWheel::default(),
                    receivers: HashMap::new(),
                    from_receivers: ftx,
                    global: GlobalCounters::default(),
                    dataplane,
                    agent,
                    changed: false,
                    malformed_since_log: BTreeMap::new(),
                    vip_trackers: HashMap::new(),
                    handover_deadlines: BTreeSet::new(),
                    notify,
                    will,
                    will_stale: false,
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
                        // A new configuration may change what a master's farewell says (a
                        // change of state marks it too); a snapshot or a tracker does not.
                        if matches!(cmd, EngineCmd::Start(_) | EngineCmd::Stop(_) | EngineCmd::Update(_)) {
                            self.will_stale = true;
                        }
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
            if self.will_stale {
                self.publish_will();
            }
            self.record_busy(busy_from, kind);
        }
    }

    /// The priority-0 advertisement of every instance that is master, for the warden to send
    /// if the agent dies (`agent::will`). Built only after a change of state or configuration;
    /// handed over without waiting (a watch channel keeps only the newest).
    fn publish_will(&mut self) {
        self.will_stale = false;
        let Some(will) = &self.will else {
            return;
        };
        let mut farewells = Vec::new();
        let mut masters: Vec<&RunningInstance> = self
            .slots
            .values()
            .filter(|s| s.instance.state() == State::Master)
            .collect();
        masters.sort_by_key(|s| s.id);
        for s in masters {
            let c = s.instance.config();
            let adv = s.instance.advertisement(0);
            for destination in destinations(c) {
                if let Ok(packet) = adv.encode(c.primary_address, destination) {
                    farewells.push(Farewell {
                        ifindex: s.sender.ifindex(),
                        source: c.primary_address,
                        destination,
                        packet,
                    });
                }
            }
        }
        will.send_if_modified(|w| {
            let changed = w.farewells != farewells;
            w.farewells = farewells;
            changed
        });
    }

    /// Keeps the longest time one event took, and warns about a slow one.
    fn record_busy(&mut self, busy_from: Instant, kind: &str) {
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
                self.close_receivers(ifindex);
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
            EngineCmd::VipTracker { vip, name, tracker } => self.vip_tracker(&vip, &name, tracker),
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
        self.next_id = id.next();
        let mut trackers = Trackers::default();
        trackers.set(
            INTERFACE_TRACKER,
            0,
            !p.base_up,
            &interface_down(&p.resolved.interface),
        );
        for (name, t) in self
            .vip_trackers
            .get(&p.resolved.name)
            .into_iter()
            .flatten()
        {
            trackers.put(name, t.clone());
        }
        let slot = RunningInstance {
            id,
            instance: Instance::new(p.resolved.config.clone()),
            timer: ArmedTimer::default(),
            resolved: p.resolved,
            sender: p.sender,
            addr_ifindex: p.addr_ifindex,
            announce_mac: p.announce_mac,
            vmac_link: p.vmac_link,
            trackers,
            last_transition_time: None,
            conflict: ConflictReport::default(),
            restored: 0,
            handover: None,
            settled: false,
            other_master: conflict::OtherMaster::default(),
        };
        for sk in slot.socket_keys() {
            self.demux.insert((sk, slot.resolved.config.vrid), id);
        }
        if slot.vmac_link.is_none() {
            // Bound ahead while backup, before anything can make this instance master (the
            // data plane keeps each instance's commands in order).
            let staged = super::dataplane::standby_addresses(&slot.resolved.config);
            if !staged.is_empty() {
                links::send(
                    &self.dataplane,
                    &slot.resolved.away,
                    DataplaneCmd::Stage {
                        id,
                        key: key.clone(),
                        ifindex: slot.addr_ifindex,
                        addresses: staged,
                    },
                );
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

    fn stop_instance(&mut self, key: &InstanceKey) {
        let Some(id) = self.by_key.remove(key) else {
            return;
        };
        let now = self.now();
        let mut slot = self.slots.remove(&id).expect("slot");
        self.timers.rearm(id, slot.timer.deadline(), None);
        for sk in slot.socket_keys() {
            if self.demux.get(&(sk, slot.resolved.config.vrid)) == Some(&id) {
                self.demux.remove(&(sk, slot.resolved.config.vrid));
            }
        }
        let was_master = slot.instance.state() == State::Master;
        let mut actions = slot.instance.handle(now, Input::Shutdown);
        // Handing over already (a check failed): the new master may still be unheard.
        let mut held = slot.handover.take().map(|hold| {
            self.handover_deadlines.remove(&(hold.until, id));
            hold.addresses
        });
        if was_master && let Some(addresses) = defer_release(&mut actions) {
            held = Some(addresses);
        }
        self.execute(&mut slot, actions);
        info!(instance = %key, "stopping");
        match held {
            Some(addresses) => {
                let hold =
                    HandoverHold::new(addresses, now, slot.instance.config().advert_interval);
                self.leaving.push(Leaving { slot, hold });
            }
            None => self.retire(slot),
        }
        self.mark_changed();
    }

    fn retire(&mut self, slot: RunningInstance) {
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

    fn handle(&mut self, id: InstanceId, now: Duration, input: Input) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let actions = slot.instance.handle(now, input);
        self.after_handle(id, actions);
    }

    /// Carries out an instance's actions and keeps its timer in the wheel.
    fn after_handle(&mut self, id: InstanceId, actions: Vec<Action>) {
        let mut slot = self.slots.remove(&id).expect("slot");
        let before = slot.timer.deadline();
        slot.timer.follow(&actions);
        debug_assert_eq!(slot.timer.get(), slot.instance.timer());
        self.timers.rearm(id, before, slot.timer.deadline());
        self.execute(&mut slot, actions);
        if !slot.settled {
            self.settle(&mut slot);
        }
        self.slots.insert(id, slot);
    }

    /// Carries out one instance's actions, in order. Adverts leave here; everything that
    /// may take time goes to the data plane. The timer actions are followed by the caller.
    fn execute(&mut self, slot: &mut RunningInstance, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::SendAdvertisement(adv) => {
                    self.global.send_errors += send_advertisement(slot, &adv);
                }
                Action::AddAddresses { addresses, .. } => {
                    // Master again before the handover finished: the addresses stay.
                    self.cancel_hold(slot);
                    links::send(
                        &self.dataplane,
                        &slot.resolved.away,
                        DataplaneCmd::Bind {
                            id: slot.id,
                            key: slot.resolved.key.clone(),
                            ifindex: slot.addr_ifindex,
                            addresses,
                        },
                    );
                }
                Action::RemoveAddresses(addresses) => {
                    links::send(
                        &self.dataplane,
                        &slot.resolved.away,
                        DataplaneCmd::Unbind {
                            id: slot.id,
                            ifindex: slot.addr_ifindex,
                            addresses,
                        },
                    );
                }
                Action::Announce(addresses) => {
                    links::send(
                        &self.dataplane,
                        &slot.resolved.away,
                        DataplaneCmd::Announce {
                            id: slot.id,
                            key: slot.resolved.key.clone(),
                            ifindex: slot.addr_ifindex,
                            mac: slot.announce_mac,
                            addresses,
                            garp: slot.resolved.garp,
                            burst: true,
                        },
                    );
                }
                Action::ArmTimer { .. } | Action::CancelTimer => {}
                Action::StateChanged(t) => {
                    self.will_stale = true;
                    info!(instance = %slot.resolved.key, from = %t.from, to = %t.to, reason = %t.reason, "transition");
                    slot.last_transition_time = Some(SystemTime::now());
                    let c = slot.instance.config();
                    let _ = self.notify.send(NotifyMsg::Transition(HookEvent {
                        vip: slot.resolved.name.clone(),
                        family: c.family().as_key(),
                        to: (t.to != State::Initialize).then_some(t.to),
                        priority: slot.instance.priority(),
                    }));
                    self.mark_changed();
                }
            }
        }
    }

    /// The first time the election speaks for a new instance: as master its addresses are
    /// bound (a previous run's copies become its own); as a backup that hears another master,
    /// a previous run's copies go at once rather than answer beside the master until they
    /// expire.
    fn settle(&mut self, slot: &mut RunningInstance) {
        match slot.instance.state() {
            State::Master => slot.settled = true,
            State::Backup if slot.instance.master().is_some() => {
                slot.settled = true;
                links::send(
                    &self.dataplane,
                    &slot.resolved.away,
                    DataplaneCmd::Disown {
                        id: slot.id,
                        ifindex: slot.addr_ifindex,
                        addresses: slot.instance.config().addresses.clone(),
                    },
                );
            }
            _ => {}
        }
    }

    /// Hands every instance over, waits (at most three intervals) for the successors, and
    /// asks the data plane to release everything.
    async fn stop_all(&mut self, packets: &mut mpsc::Receiver<FromReceiver>) {
        let keys: Vec<InstanceKey> = self.by_key.keys().cloned().collect();
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
}

/// Where an instance's advertisements go: every unicast peer, or else the family's group
/// (no allocation: this is on every advertisement's path).
pub(super) fn destinations(c: &crate::vrrp::InstanceConfig) -> impl Iterator<Item = IpAddr> + '_ {
    let group = c
        .unicast_peers
        .is_empty()
        .then(|| c.family().multicast_group());
    c.unicast_peers.iter().copied().chain(group)
}

/// Sends one advertisement to the group or every unicast peer; returns the failures.
fn send_advertisement(s: &RunningInstance, adv: &Advertisement) -> u64 {
    let c = s.instance.config();
    let src = c.primary_address;
    let mut errors = 0;
    for dst in destinations(c) {
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
