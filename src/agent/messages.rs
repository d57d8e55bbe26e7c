//! Every message exchanged between the agent's tasks (see [`super::tasks`] for the diagram):
//! what the run loop tells the engine, what a receiver task hands the engine, what the engine
//! tells the data plane, the data plane the announcer, and every task the run loop.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::cluster::ConfigUpdate;
use super::status::{AgentStatus, StatusRequest};
use crate::ids::{InstanceId, InstanceKey};
use crate::model::resolved::ResolvedInstance;
use crate::model::spec::GarpConfig;
use crate::net::announce::Mac;
use crate::net::netlink::NetEvent;
use crate::net::socket::VrrpSender;
use crate::vrrp::priority::Tracker;
use crate::vrrp::{Advertisement, DecodeError, Family, VirtualAddress};

/// A receive socket: (interface index, address family). One per key, shared by every
/// instance there.
pub(crate) type SocketKey = (u32, Family);

/// Everything an instance needs to run, made ready off the engine (`instances::prepare`).
pub(crate) struct Prepared {
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

/// Run loop, health checks and data plane → engine.
pub(crate) enum EngineCmd {
    Start(Box<Prepared>),
    /// Hand over (priority 0) and stop; a master keeps its addresses until the new master is
    /// heard, at most three intervals (make before break).
    Stop(InstanceKey),
    /// Same instance, new priority, announcement settings and/or excluded addresses: applied
    /// in place.
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
        key: InstanceKey,
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
        key: InstanceKey,
        address: IpAddr,
    },
    Snapshot(oneshot::Sender<AgentStatus>),
    /// Hands every instance over; answers once every address release has been asked for.
    StopAll(oneshot::Sender<()>),
}

impl EngineCmd {
    /// A short name for the engine's slow-event warning.
    pub(crate) fn kind(&self) -> &'static str {
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

/// Receiver task → engine.
pub(crate) enum FromReceiver {
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

/// Engine → data plane: what to bind, release and announce for one instance (`id`), and the
/// kernel's address events from the watch.
pub(crate) enum DataplaneCmd {
    /// Bind `addresses` ahead on a standby link that stays down until the instance is master.
    Stage {
        id: InstanceId,
        key: InstanceKey,
        /// The interface the instance runs on (the standby link's parent).
        ifindex: u32,
        addresses: Vec<VirtualAddress>,
    },
    /// The instance's IPv6 excluded addresses changed in place: the standby link follows
    /// them. An instance without one gets one once it has `STANDBY_MIN` (see the data plane) of them: at once
    /// when backup, when it next leaves master otherwise.
    Restage {
        id: InstanceId,
        key: InstanceKey,
        ifindex: u32,
        addresses: Vec<VirtualAddress>,
        master: bool,
    },
    Bind {
        id: InstanceId,
        key: InstanceKey,
        ifindex: u32,
        addresses: Vec<VirtualAddress>,
    },
    Unbind {
        id: InstanceId,
        ifindex: u32,
        addresses: Vec<VirtualAddress>,
    },
    Announce {
        id: InstanceId,
        key: InstanceKey,
        ifindex: u32,
        mac: Mac,
        addresses: Vec<VirtualAddress>,
        garp: GarpConfig,
        /// Send a burst now (a new master), or only take the new timing.
        burst: bool,
    },
    /// Another node is master of the instance: a previous run's copies of these addresses
    /// (kept at start while the election decided) go now rather than when they expire.
    Disown {
        id: InstanceId,
        ifindex: u32,
        addresses: Vec<VirtualAddress>,
    },
    /// The instance is gone: its worker ends once its queue is done.
    Forget { id: InstanceId },
    /// A kernel address event.
    Event(NetEvent),
    /// Releases everything still bound (the agent is stopping) and answers.
    ReleaseAll(oneshot::Sender<()>),
}

/// Whose announcements a schedule sends: an instance's addresses on its interface, or the
/// addresses it holds on its standby link (announced with that link's MAC). One instance can
/// have both at once, so they are two schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ScheduleId {
    /// An instance's addresses on one interface (its own, or one an address names).
    Instance(InstanceId, u32),
    StandbyLink(InstanceId),
}

/// Data plane → announcer.
pub(crate) enum AnnounceCmd {
    /// Announce now (when `burst`) and keep the schedule of `garp`.
    Start {
        id: ScheduleId,
        key: InstanceKey,
        ifindex: u32,
        mac: Mac,
        addresses: Vec<IpAddr>,
        garp: GarpConfig,
        burst: bool,
    },
    /// One address again (it was put back after someone removed it).
    Once {
        ifindex: u32,
        mac: Mac,
        address: IpAddr,
    },
    Stop {
        id: ScheduleId,
    },
    /// Every schedule of the instance's addresses, on any interface (it is gone).
    StopInstance {
        instance: InstanceId,
    },
}

/// Every task → run loop: everything the agent's loop reacts to.
pub(crate) enum AgentEvent {
    /// SIGHUP: read the file again.
    Reload,
    /// The file read after SIGHUP number `.0` (off the loop, bounded): its VirtualIPs, or why
    /// it was refused.
    Loaded(
        u64,
        Result<Vec<crate::model::spec::ValidatedVirtualIp>, String>,
    ),
    /// SIGTERM / SIGINT: hand over and stop.
    Stop(&'static str),
    /// Cluster mode: this node's configuration changed.
    ClusterConfig(Box<ConfigUpdate>),
    /// The kernel: a link or an address changed.
    Net(NetEvent),
    /// The kernel's event stream ended.
    NetLost,
    /// Periodic: links re-read, VirtualIPs that could not run retried.
    Resync,
    /// A setup finished.
    Prepared {
        key: InstanceKey,
        generation: u64,
        result: Result<Box<Prepared>, String>,
    },
    /// The engine: something the status shows changed.
    Changed,
    /// The engine: an instance has stopped and released everything.
    Retired {
        key: InstanceKey,
        /// Its virtual-MAC interface (index, name), deleted unless another instance uses it.
        vmac: Option<(u32, String)>,
    },
    /// A snapshot taken for the cluster report.
    Snapshot(u64, Box<AgentStatus>),
    /// `/status` or `/metrics` asks.
    Status(StatusRequest),
}
