//! The agent on one node: configuration in, VRRP instances run, data plane programmed,
//! status out.
//!
//! ```text
//!  sources: file (SIGHUP) | cluster watch ─┐                       ┌─▶ engine thread (VRRP: state
//!  signals, kernel link/address events ────┼─▶ AgentEvent ─▶ loop ─┤     machines, timers, sockets,
//!  setups finished, engine reports ────────┤   (dispatch.rs)       │     adverts) ── DataplaneCmd ─┐
//!  /status requests ───────────────────────┘                       └─▶ setups (instances.rs)      │
//!                                      data plane (dataplane/: ledger, standby, watch) ◀───────────┘
//!                                                   └─▶ announcer (GARP / NA bursts, refresh)
//! ```
//!
//! This file wires the tasks together ([`run`]); the loop lives in `dispatch.rs`, applying a
//! new configuration in `apply.rs`, and the cleanup of what a previous run left in
//! `stale.rs`. The loop only decides; nothing it does can delay an advertisement, because the
//! engine runs on its own thread and everything slow (socket setup, netlink, bursts, the API,
//! logging) happens beside it and reports back as an [`AgentEvent`].

pub(crate) mod announcer;
mod apply;
pub(crate) mod cluster;
pub(crate) mod connsync;
pub(crate) mod dataplane;
mod dispatch;
pub(crate) mod engine;
mod excluded;
pub(crate) mod instances;
pub(crate) mod lock;
pub(crate) mod messages;
pub(crate) mod report;
mod sampler;
pub(crate) mod source;
mod stale;
pub(crate) mod status;
pub(crate) mod supervisor;
pub(crate) mod tasks;
pub(crate) mod virtualservers;
pub(crate) mod warden;
pub(crate) mod will;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::ids::InstanceKey;
use crate::model::resolved::ResolvedInstance;
use crate::model::spec::ValidatedVirtualIp;
use crate::net::netlink::{Netlink, NetlinkError};
use instances::Sockets;
use messages::{AgentEvent, DataplaneCmd, EngineCmd};

/// Interface changes arrive as netlink events; a slow full re-read guards against a missed one.
const RESYNC: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub(crate) enum AgentError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid configuration {path}: {source}")]
    Config {
        path: String,
        source: source::ConfigError,
    },
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("{what}: {source} (the agent needs root or CAP_NET_RAW + CAP_NET_ADMIN)")]
    Socket {
        what: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot reach the Kubernetes API: {0}")]
    Api(kube::Error),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error("{0}")]
    ConnSync(String),
    #[error("cannot start the VRRP engine: {0}")]
    Engine(std::io::Error),
    #[error("the kernel's link and address events stopped")]
    EventsLost,
    #[error("the VRRP engine stopped")]
    EngineLost,
}

/// Options of `kube-vrrp agent`.
#[derive(Debug)]
pub(crate) struct Options {
    /// Standalone: VirtualIP documents from this file. None: this node's configuration from the
    /// Kubernetes API (KUBECONFIG or in-cluster).
    pub config: Option<PathBuf>,
    pub node: String,
    /// `/status`, `/metrics` and `/healthz`.
    pub listen: Option<SocketAddr>,
    /// `/metrics` and `/healthz` only (for a scraper on the network).
    pub metrics_listen: Option<SocketAddr>,
    /// Cluster mode: how often the agent renews its registration.
    pub heartbeat: Duration,
    /// How long to wait for another agent of this node to finish (its handover).
    pub lock_wait: Duration,
    /// What VirtualIPs may run here (commands, files).
    pub policy: crate::checks::Policy,
    /// Share connection tracking with the other directors over this interface (conntrackd),
    /// so NAT and full-NAT connections survive a takeover.
    pub sync_connections: Option<String>,
    /// Virtual servers: the networks real servers must be in (empty: any).
    pub real_server_networks: Vec<crate::director::Network>,
    /// Under a warden (`agent::warden`): where the last will goes. The warden holds the node
    /// lock then.
    pub will: Option<std::os::fd::OwnedFd>,
}

/// Where the configuration comes from.
enum Source {
    File(PathBuf),
    Cluster {
        config: Option<Box<crate::api::VirtualIPNodeConfig>>,
        epoch: u64,
        report: tokio::sync::watch::Sender<cluster::Report>,
    },
}

struct Agent {
    node: String,
    nl: Netlink,
    sockets: Sockets,
    engine: mpsc::UnboundedSender<EngineCmd>,
    dataplane: mpsc::UnboundedSender<DataplaneCmd>,
    events: mpsc::UnboundedSender<AgentEvent>,
    source: Source,
    /// The last valid file (standalone).
    file_vips: Vec<ValidatedVirtualIp>,
    /// What the engine runs or is being prepared to run.
    running: BTreeMap<InstanceKey, ResolvedInstance>,
    /// Setup generation per key: a finished setup that is no longer wanted is dropped.
    generation: HashMap<InstanceKey, u64>,
    /// Keys whose setup finished and that the engine was told to run.
    started: std::collections::HashSet<InstanceKey>,
    next_generation: u64,
    /// VirtualIPs (or families of them) that cannot run here, and why.
    errors: report::ReportInputs,
    /// "cannot run here" reasons already logged.
    repeats: crate::logging::Repeats,
    /// The last configuration that was refused whole (the running one is older).
    config_error: Option<String>,
    announce_errors: Arc<AtomicU64>,
    /// The data plane's failed kernel requests.
    netlink_errors: Arc<AtomicU64>,
    snapshot_seq: u64,
    snapshot_applied: u64,
    /// Listeners not served yet: standalone, `/status` answers once the first setups are done,
    /// so an answer means the agent runs what its file says.
    listeners: Vec<(tokio::net::TcpListener, bool)>,
    /// Health checks, tracked interfaces, the node's condition, notify hooks.
    supervisor: supervisor::Supervisor,
    /// Virtual servers: real servers checked, our nftables table.
    virtual_servers: virtualservers::VirtualServers,
    /// SIGHUPs received: only the newest one's file is applied.
    reloads: u64,
}

/// Runs the agent until SIGTERM / SIGINT: standalone from a file, or in a cluster.
pub(crate) async fn run(opts: Options) -> Result<(), AgentError> {
    // One agent per node: a second one would take the first one's addresses for stale. Under
    // a warden, the warden holds it, until it has cleaned up after this agent.
    let _lock = match opts.will {
        Some(_) => None,
        None => Some(lock::NodeLock::acquire_waiting(opts.lock_wait).await?),
    };
    // What checks and hooks start never outlives them (see `checks::exec`).
    if let Err(e) = crate::checks::exec::contain_descendants() {
        warn!(error = %e, "cannot become the reaper of what checks and hooks leave running");
    }
    let vips = match &opts.config {
        Some(path) => source::load(path)?,
        None => Vec::new(),
    };
    let client = match opts.config {
        Some(_) => None,
        None => Some(kube::Client::try_default().await.map_err(AgentError::Api)?),
    };
    let (nl, net_events) = Netlink::connect_with_events()?;
    // Bound first, so a bad --listen fails before anything is touched.
    let listener = bind(opts.listen).await?;
    let metrics_listener = bind(opts.metrics_listen).await?;
    // On a connection of its own: removing a link with many addresses floods the event one.
    let inherited = stale::remove_stale(&Netlink::connect()?).await?;
    // Before any address is ours: the addresses it leaves out of sharing are the node's own.
    let _conn_sync = match &opts.sync_connections {
        Some(interface) => Some(
            connsync::ConnSync::start(
                interface.clone(),
                std::env::temp_dir().join(format!("kube-vrrp-conntrackd-{}", opts.node)),
            )
            .await
            .map_err(AgentError::ConnSync)?,
        ),
        None => None,
    };

    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (dp_tx, dp_rx) = mpsc::unbounded_channel();
    let (ann_tx, ann_rx) = mpsc::unbounded_channel();
    let announce_errors = Arc::new(AtomicU64::new(0));
    let netlink_errors = Arc::new(AtomicU64::new(0));
    let (notify_tx, notify_rx) = mpsc::unbounded_channel();
    let notify_counters = Arc::new(crate::hooks::NotifyCounters::default());
    tokio::spawn(crate::hooks::run(
        notify_rx,
        opts.policy.run_as,
        notify_counters.clone(),
    ));
    let will = match opts.will {
        Some(fd) => {
            let (tx, rx) = tokio::sync::watch::channel(will::Will::default());
            tokio::spawn(warden::publish(fd, rx));
            Some(tx)
        }
        None => None,
    };
    let engine = engine::spawn(dp_tx.clone(), events_tx.clone(), notify_tx.clone(), will)
        .map_err(AgentError::Engine)?;
    tokio::spawn(announcer::run(ann_rx, announce_errors.clone()));
    let dp = tokio::spawn(dataplane::run(
        // Binding with the lifetime the agent sets from its configuration.
        Netlink::connect()?.sharing(nl.lifetime()),
        dp_rx,
        engine.clone(),
        ann_tx,
        netlink_errors.clone(),
        inherited,
    ));

    let source = match client.clone() {
        None => Source::File(opts.config.clone().expect("standalone")),
        Some(_) => Source::Cluster {
            config: None,
            epoch: 0,
            report: tokio::sync::watch::channel(cluster::Report::default()).0,
        },
    };
    let mut agent = Agent {
        node: opts.node.clone(),
        repeats: crate::logging::Repeats::default(),
        nl,
        sockets: Sockets::default(),
        engine: engine.clone(),
        dataplane: dp_tx,
        events: events_tx.clone(),
        source,
        file_vips: vips,
        running: BTreeMap::new(),
        generation: HashMap::new(),
        started: Default::default(),
        next_generation: 1,
        errors: report::ReportInputs::default(),
        config_error: None,
        announce_errors,
        netlink_errors,
        snapshot_seq: 0,
        snapshot_applied: 0,
        listeners: Vec::new(),
        reloads: 0,
        virtual_servers: virtualservers::VirtualServers::start(
            opts.policy.clone(),
            opts.real_server_networks.clone(),
            events_tx.clone(),
        ),
        supervisor: supervisor::Supervisor::new(
            opts.policy.clone(),
            engine.clone(),
            events_tx.clone(),
            notify_tx,
            notify_counters,
        ),
    };

    spawn_event_producers(&events_tx, net_events);
    let writer = match (&client, &agent.source) {
        (Some(client), Source::Cluster { report, .. }) => {
            let mut updates = cluster::watch_config(client.clone(), opts.node.clone());
            let tx = events_tx.clone();
            tokio::spawn(async move {
                while let Some(u) = updates.recv().await {
                    if tx.send(AgentEvent::ClusterConfig(Box::new(u))).is_err() {
                        return;
                    }
                }
            });
            Some(tokio::spawn(cluster::write_status(
                client.clone(),
                opts.node.clone(),
                report.subscribe(),
                opts.heartbeat,
            )))
        }
        _ => None,
    };
    agent.listeners = [(listener, false), (metrics_listener, true)]
        .into_iter()
        .filter_map(|(l, m)| l.map(|l| (l, m)))
        .collect();
    if matches!(agent.source, Source::File(_)) {
        agent.apply().await;
    }
    agent.serve_when_ready();
    info!(node = %opts.node, instances = agent.running.len(),
          mode = if client.is_some() { "cluster" } else { "standalone" }, "agent started");

    let failure = agent.event_loop(&mut events).await;
    agent.stop(dp, writer).await;
    info!("stopped");
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The producers of events that need nothing but the event channel: signals, the kernel's
/// link and address events, and the resync tick.
fn spawn_event_producers(
    events_tx: &mpsc::UnboundedSender<AgentEvent>,
    mut net_events: crate::net::netlink::NetEvents,
) {
    forward_signal(SignalKind::terminate(), events_tx, || {
        AgentEvent::Stop("SIGTERM")
    });
    forward_signal(SignalKind::interrupt(), events_tx, || {
        AgentEvent::Stop("SIGINT")
    });
    forward_signal(SignalKind::hangup(), events_tx, || AgentEvent::Reload);
    {
        let tx = events_tx.clone();
        tokio::spawn(async move {
            while let Some(e) = net_events.next().await {
                if tx.send(AgentEvent::Net(e)).is_err() {
                    return;
                }
            }
            let _ = tx.send(AgentEvent::NetLost);
        });
        let tx = events_tx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RESYNC);
            tick.tick().await;
            loop {
                tick.tick().await;
                if tx.send(AgentEvent::Resync).is_err() {
                    return;
                }
            }
        });
    }
}

/// Binds a status listener. A predecessor that just released the node lock may still hold
/// the port for a moment while its process exits: a port in use is tried again for 2 s.
async fn bind(addr: Option<SocketAddr>) -> Result<Option<tokio::net::TcpListener>, AgentError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return Ok(Some(l)),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < until =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(source) => return Err(AgentError::Listen { addr, source }),
        }
    }
}

fn forward_signal(
    kind: SignalKind,
    tx: &mpsc::UnboundedSender<AgentEvent>,
    event: fn() -> AgentEvent,
) {
    let tx = tx.clone();
    match signal(kind) {
        Ok(mut s) => {
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    if tx.send(event()).is_err() {
                        return;
                    }
                }
            });
        }
        Err(e) => warn!(error = %e, "cannot install a signal handler"),
    }
}

impl Agent {
    /// Hands everything over, releases every address, withdraws the status entries.
    async fn stop(
        &mut self,
        dp: tokio::task::JoinHandle<()>,
        writer: Option<tokio::task::JoinHandle<()>>,
    ) {
        let (tx, rx) = oneshot::channel();
        let _ = self.engine.send(EngineCmd::StopAll(tx));
        let _ = rx.await;
        let (tx, rx) = oneshot::channel();
        let _ = self.dataplane.send(DataplaneCmd::ReleaseAll(tx));
        if tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .is_err()
        {
            error!("the data plane did not finish releasing addresses in 10s");
        }
        stale::remove_our_links(&self.nl).await;
        self.virtual_servers.stop().await;
        drop(dp);
        let source = std::mem::replace(&mut self.source, Source::File(PathBuf::new()));
        if let (
            Source::Cluster {
                report,
                epoch,
                config,
            },
            Some(writer),
        ) = (source, writer)
        {
            // Withdraw this node's entries: it runs nothing now. Dropping the sender tells the
            // writer this is the last report.
            report.send_replace(cluster::Report {
                entries: BTreeMap::new(),
                config_generation: config.as_ref().and_then(|c| c.metadata.generation),
                epoch,
                addresses: Vec::new(),
            });
            drop(report);
            if tokio::time::timeout(Duration::from_secs(3), writer)
                .await
                .is_err()
            {
                warn!("API unreachable: final status not written");
            }
        }
    }
}
