//! The agent on one node: configuration in, VRRP instances run, data plane programmed,
//! status out.
//!
//! ```text
//!  sources: file (SIGHUP) | cluster watch ─┐                       ┌─▶ engine thread (VRRP: state
//!  signals, kernel link/address events ────┼─▶ AgentEvent ─▶ loop ─┤     machines, timers, sockets,
//!  setups finished, engine reports ────────┤   (this file)         │     adverts) ── DataplaneCmd ─┐
//!  /status requests ───────────────────────┘                       └─▶ setups (instances.rs)      │
//!                                                data plane (addresses, ledger, watch) ◀───────────┘
//!                                                   └─▶ announcer (GARP / NA bursts, refresh)
//! ```
//!
//! The loop here only decides; nothing it does can delay an advertisement, because the
//! engine runs on its own thread and everything slow (socket setup, netlink, bursts, the API,
//! logging) happens beside it and reports back as an [`AgentEvent`].

pub mod announcer;
pub mod cluster;
pub mod dataplane;
pub mod engine;
pub mod health;
pub mod instances;
pub mod lock;
pub mod report;
pub mod source;
pub mod status;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::model::spec::{NodePlan, ResolvedInstance, VirtualIp, VridRule, resolve_all};
use crate::net::netlink::{NetEvent, Netlink, NetlinkError};
use engine::{EngineCmd, Prepared};
use instances::{Sockets, Step};
use status::{AgentStatus, StatusRequest};

/// Interface changes arrive as netlink events; a slow full re-read guards against a missed one.
const RESYNC: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
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
    #[error("cannot start the VRRP engine: {0}")]
    Engine(std::io::Error),
    #[error("the kernel's link and address events stopped")]
    EventsLost,
    #[error("the VRRP engine stopped")]
    EngineLost,
}

/// Options of `kube-vrrp agent`.
#[derive(Debug, Clone)]
pub struct Options {
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
    /// What VirtualIPs may run here (commands, files).
    pub policy: crate::health::Policy,
}

/// Everything the agent's loop reacts to.
pub enum AgentEvent {
    /// SIGHUP: read the file again.
    Reload,
    /// SIGTERM / SIGINT: hand over and stop.
    Stop(&'static str),
    /// Cluster mode: this node's configuration changed.
    ClusterConfig(Box<cluster::ConfigUpdate>),
    /// The kernel: a link or an address changed.
    Net(NetEvent),
    /// The kernel's event stream ended.
    NetLost,
    /// Periodic: links re-read, VirtualIPs that could not run retried.
    Resync,
    /// A setup finished.
    Prepared {
        key: String,
        generation: u64,
        result: Result<Box<Prepared>, String>,
    },
    /// The engine: something the status shows changed.
    Changed,
    /// The engine: an instance has stopped and released everything.
    Retired {
        key: String,
        /// Its virtual-MAC interface (index, name), deleted unless another instance uses it.
        vmac: Option<(u32, String)>,
    },
    /// A snapshot taken for the cluster report.
    Snapshot(u64, Box<AgentStatus>),
    /// `/status` or `/metrics` asks.
    Status(StatusRequest),
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
    dataplane: mpsc::UnboundedSender<dataplane::DataplaneCmd>,
    events: mpsc::UnboundedSender<AgentEvent>,
    source: Source,
    /// The last valid file (standalone).
    file_vips: Vec<VirtualIp>,
    /// What the engine runs or is being prepared to run.
    running: BTreeMap<String, ResolvedInstance>,
    /// Setup generation per key: a finished setup that is no longer wanted is dropped.
    generation: HashMap<String, u64>,
    /// Keys whose setup finished and that the engine was told to run.
    started: std::collections::HashSet<String>,
    next_generation: u64,
    /// VirtualIPs (or families of them) that cannot run here, and why.
    errors: report::Errors,
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
    health: health::Health,
}

/// Runs the agent until SIGTERM / SIGINT: standalone from a file, or in a cluster.
pub async fn run(opts: Options) -> Result<(), AgentError> {
    // One agent per node: a second one would take the first one's addresses for stale.
    let _lock = lock::NodeLock::acquire()?;
    let vips = match &opts.config {
        Some(path) => source::load(path)?,
        None => Vec::new(),
    };
    let client = match opts.config {
        Some(_) => None,
        None => Some(kube::Client::try_default().await.map_err(AgentError::Api)?),
    };
    let (nl, mut net_events) = Netlink::connect_with_events()?;
    // Bound first, so a bad --listen fails before anything is touched.
    let listener = bind(opts.listen).await?;
    let metrics_listener = bind(opts.metrics_listen).await?;
    // On a connection of its own: removing a link with many addresses floods the event one.
    remove_stale(&Netlink::connect()?).await?;

    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (dp_tx, dp_rx) = mpsc::unbounded_channel();
    let (ann_tx, ann_rx) = mpsc::unbounded_channel();
    let announce_errors = Arc::new(AtomicU64::new(0));
    let netlink_errors = Arc::new(AtomicU64::new(0));
    let (notify_tx, notify_rx) = mpsc::unbounded_channel();
    let notify_counters = Arc::new(crate::health::notify::NotifyCounters::default());
    tokio::spawn(crate::health::notify::run(
        notify_rx,
        opts.policy.run_as,
        notify_counters.clone(),
    ));
    let engine = engine::spawn(dp_tx.clone(), events_tx.clone(), notify_tx.clone())
        .map_err(AgentError::Engine)?;
    tokio::spawn(announcer::run(ann_rx, announce_errors.clone()));
    let dp = tokio::spawn(dataplane::run(
        Netlink::connect()?,
        dp_rx,
        engine.clone(),
        ann_tx,
        netlink_errors.clone(),
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
        errors: report::Errors::default(),
        config_error: None,
        announce_errors,
        netlink_errors,
        snapshot_seq: 0,
        snapshot_applied: 0,
        listeners: Vec::new(),
        health: health::Health::new(
            opts.policy.clone(),
            engine.clone(),
            events_tx.clone(),
            notify_tx,
            notify_counters,
        ),
    };

    // Producers of events.
    forward_signal(SignalKind::terminate(), &events_tx, || {
        AgentEvent::Stop("SIGTERM")
    });
    forward_signal(SignalKind::interrupt(), &events_tx, || {
        AgentEvent::Stop("SIGINT")
    });
    forward_signal(SignalKind::hangup(), &events_tx, || AgentEvent::Reload);
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

    let mut failure = None;
    while let Some(event) = events.recv().await {
        match event {
            AgentEvent::Stop(why) => {
                info!("{why}: handing over");
                break;
            }
            AgentEvent::NetLost => {
                error!("the kernel's event stream ended: handing over and stopping");
                failure = Some(AgentError::EventsLost);
                break;
            }
            AgentEvent::Resync if agent.engine.is_closed() => {
                // The engine is gone (it cannot be, short of a bug): what it bound must not
                // stay bound with nobody advertising it.
                error!("the VRRP engine stopped: releasing every address and stopping");
                failure = Some(AgentError::EngineLost);
                break;
            }
            other => agent.dispatch(other).await,
        }
    }
    agent.stop(dp, writer).await;
    info!("stopped");
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn bind(addr: Option<SocketAddr>) -> Result<Option<tokio::net::TcpListener>, AgentError> {
    match addr {
        Some(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|source| AgentError::Listen { addr, source }),
        None => Ok(None),
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

/// Removes the VIPs a previous run of this agent left bound (SIGKILL, crash): addresses
/// carrying our IFA_PROTO mark, and our virtual-MAC interfaces. Nothing else is touched, and
/// only once this agent holds the node's lock.
async fn remove_stale(nl: &Netlink) -> Result<(), AgentError> {
    for l in nl.links().await? {
        if instances::is_vmac_name(&l.name) || dataplane::is_standby_name(&l.name) {
            warn!(link = %l.name, "removing a stale virtual-MAC or standby interface");
            nl.delete_link(l.index).await?;
        }
    }
    for a in nl.addresses(None).await? {
        if a.is_ours() {
            warn!(address = %a.address, "removing a stale virtual address left by a previous run");
            nl.del_address(a.index, a.address, a.prefix_len).await?;
        }
    }
    Ok(())
}

impl Agent {
    async fn dispatch(&mut self, event: AgentEvent) {
        match event {
            AgentEvent::Reload => {
                if let Source::File(path) = &self.source {
                    info!(config = %path.display(), "SIGHUP: reloading");
                    match source::load(path) {
                        Ok(vips) => {
                            self.file_vips = vips;
                            self.config_error = None;
                            self.apply().await;
                        }
                        Err(e) => {
                            error!(error = %e, "configuration rejected; the running configuration stays");
                            self.config_error = Some(e.to_string());
                        }
                    }
                }
            }
            AgentEvent::ClusterConfig(u) => {
                if let Source::Cluster { config, epoch, .. } = &mut self.source {
                    if u.relisted {
                        *epoch += 1;
                    }
                    *config = u.config.map(Box::new);
                }
                self.apply().await;
                self.request_report();
            }
            AgentEvent::Net(e) => self.on_net(e).await,
            AgentEvent::Resync => self.resync().await,
            AgentEvent::Prepared {
                key,
                generation,
                result,
            } => {
                if self.generation.get(&key) != Some(&generation) {
                    // Superseded while it was being set up: close it off this loop.
                    if let Ok(p) = result {
                        tokio::task::spawn_blocking(move || drop(p));
                    }
                    return;
                }
                match result {
                    Ok(mut p) => {
                        // A priority or GARP change may have come in during the setup (the
                        // engine had nothing to update then): start with what is wanted now.
                        if let Some(r) = self.running.get(&key) {
                            p.resolved = r.clone();
                        }
                        self.errors.start.remove(&key);
                        self.started.insert(key);
                        let _ = self.engine.send(EngineCmd::Start(p));
                    }
                    Err(reason) => {
                        error!(instance = %key, %reason, "cannot start");
                        self.running.remove(&key);
                        self.generation.remove(&key);
                        self.started.remove(&key);
                        self.errors.start.insert(key, reason);
                        self.request_report();
                    }
                }
                if !self.listeners.is_empty() {
                    self.serve_when_ready();
                }
            }
            AgentEvent::Changed => self.request_report(),
            AgentEvent::Retired { key, vmac } => {
                if let Some((index, name)) = vmac {
                    let in_use = self.running.values().any(|r| {
                        r.virtual_mac
                            && instances::vmac_name(r.config.family(), r.config.vrid) == name
                    });
                    if !in_use {
                        info!(instance = %key, link = %name, "removing the virtual-MAC interface");
                        let nl = self.nl.clone();
                        tokio::spawn(async move { nl.delete_link(index).await.ok() });
                    }
                }
            }
            AgentEvent::Snapshot(seq, snapshot) => {
                if seq > self.snapshot_applied {
                    self.snapshot_applied = seq;
                    self.publish(*snapshot);
                }
            }
            AgentEvent::Status(reply) => {
                let (tx, rx) = oneshot::channel();
                let _ = self.engine.send(EngineCmd::Snapshot(tx));
                let extra = self.decorate();
                tokio::spawn(async move {
                    if let Ok(mut s) = rx.await {
                        extra(&mut s);
                        let _ = reply.send(s);
                    }
                });
            }
            AgentEvent::Stop(_) | AgentEvent::NetLost => unreachable!("handled by the loop"),
        }
    }

    fn serve_when_ready(&mut self) {
        let setting_up = self
            .running
            .keys()
            .any(|k| self.generation.contains_key(k) && !self.started.contains(k));
        if setting_up && matches!(self.source, Source::File(_)) {
            return;
        }
        for (l, metrics_only) in std::mem::take(&mut self.listeners) {
            let (tx, mut rx) = mpsc::channel::<StatusRequest>(16);
            let ev = self.events.clone();
            tokio::spawn(async move {
                while let Some(r) = rx.recv().await {
                    if ev.send(AgentEvent::Status(r)).is_err() {
                        return;
                    }
                }
            });
            tokio::spawn(status::serve(l, tx, metrics_only));
        }
    }

    /// What the loop adds to the engine's snapshot: node, errors, configuration error,
    /// announcement and data plane netlink failures.
    fn decorate(&self) -> impl FnOnce(&mut AgentStatus) + Send + 'static {
        let node = self.node.clone();
        let errors = self.errors.by_key();
        let config_error = self.config_error.clone();
        let announce_errors = self
            .announce_errors
            .load(std::sync::atomic::Ordering::Relaxed);
        let netlink_errors = self
            .netlink_errors
            .load(std::sync::atomic::Ordering::Relaxed);
        let checks = self.health.statuses(true);
        let notify = self.health.notify_counts();
        move |s: &mut AgentStatus| {
            s.node = node;
            s.errors = errors;
            s.config_error = config_error;
            s.global.send_errors += announce_errors;
            s.global.netlink_errors += netlink_errors;
            s.checks = checks;
            s.global.notify_ok = notify.0;
            s.global.notify_failed = notify.1;
        }
    }

    /// Cluster mode: a fresh snapshot, then a report (off this loop's path).
    fn request_report(&mut self) {
        if !matches!(self.source, Source::Cluster { .. }) {
            return;
        }
        self.snapshot_seq += 1;
        let seq = self.snapshot_seq;
        let (tx, rx) = oneshot::channel();
        let _ = self.engine.send(EngineCmd::Snapshot(tx));
        let events = self.events.clone();
        tokio::spawn(async move {
            if let Ok(s) = rx.await {
                let _ = events.send(AgentEvent::Snapshot(seq, Box::new(s)));
            }
        });
    }

    fn publish(&mut self, mut snapshot: AgentStatus) {
        self.decorate()(&mut snapshot);
        let Source::Cluster {
            config,
            epoch,
            report,
        } = &self.source
        else {
            return;
        };
        let mut r = report::cluster_report(
            &self.node,
            &snapshot,
            &self.errors,
            config.as_ref().and_then(|c| c.metadata.generation),
            *epoch,
        );
        let mut checks = self.health.statuses(false);
        for (name, entry) in r.entries.iter_mut() {
            entry.checks = checks.remove(name).unwrap_or_default();
        }
        report.send_if_modified(|old| {
            let changed = *old != r;
            *old = r;
            changed
        });
    }

    /// The VirtualIPs of the current source, validated.
    fn desired(&mut self) -> Vec<VirtualIp> {
        match &self.source {
            Source::File(_) => self.file_vips.clone(),
            Source::Cluster { config, .. } => {
                self.errors.invalid.clear();
                let mut out = Vec::new();
                for e in config.iter().flat_map(|c| c.spec.virtual_ips.iter()) {
                    match crate::model::spec::validate(
                        e.name.clone(),
                        e.spec.clone(),
                        VridRule::Required,
                    ) {
                        Ok(v) => out.push(v),
                        Err((field, reason)) => {
                            warn!(virtual_ip = %e.name, %field, %reason, "invalid configuration");
                            self.errors.invalid.insert(
                                e.name.clone(),
                                (e.spec.default_priority, format!("{field}: {reason}")),
                            );
                        }
                    }
                }
                out
            }
        }
    }

    /// Makes the engine run what the source says, touching only what changed. A VirtualIP
    /// (or one family of it) that cannot run here any more keeps its last good
    /// configuration running, and says why.
    async fn apply(&mut self) {
        let vips = self.desired();
        let (links, addrs) = match (self.nl.links().await, self.nl.addresses(None).await) {
            (Ok(l), Ok(a)) => (l, a),
            (Err(e), _) | (_, Err(e)) => {
                error!(error = %e, "cannot read interfaces; configuration not applied");
                return;
            }
        };
        let NodePlan {
            mut instances,
            errors,
        } = resolve_all(&vips, &self.node, &links, &addrs);
        self.errors.resolve.clear();
        for (name, family, reason) in errors {
            let key = format!("{name}/{}", crate::model::spec::family_label(family));
            let last_good = self.running.get(&key).cloned();
            let kept = last_good.is_some();
            if let Some(r) = last_good {
                instances.insert(key.clone(), r);
            }
            warn!(instance = %key, %reason, kept_last_good = kept, "cannot run here");
            self.errors.resolve.insert(key, (reason, kept));
        }
        // Invalid entries (cluster mode) keep what ran for them too.
        for name in self.errors.invalid.keys() {
            for (k, r) in &self.running {
                if &r.name == name {
                    instances.insert(k.clone(), r.clone());
                }
            }
        }
        self.errors.priorities = vips
            .iter()
            .map(|v| (v.name.clone(), v.priority_of(&self.node)))
            .collect();
        for step in instances::diff(&self.running, &instances) {
            match step {
                Step::Stop(key) => {
                    self.running.remove(&key);
                    self.generation.remove(&key);
                    self.started.remove(&key);
                    let _ = self.engine.send(EngineCmd::Stop(key));
                }
                Step::Update(r) => {
                    let _ = self.engine.send(EngineCmd::Update(r.clone()));
                    self.running.insert(r.key.clone(), r);
                }
                Step::Start(r) => {
                    // Resolution found the link by this index in the same read.
                    match links.iter().find(|l| l.index == r.ifindex) {
                        Some(base) => self.start(r, base.clone()),
                        None => {
                            self.errors.start.insert(
                                r.key.clone(),
                                format!("no interface with index {}", r.ifindex),
                            );
                        }
                    }
                }
            }
        }
        self.errors
            .start
            .retain(|k, _| instances.contains_key(k) && !self.running.contains_key(k));
        // Health for what runs: a VirtualIP kept on its last good configuration keeps its
        // checks as they were.
        let kept: Vec<String> = self.errors.invalid.keys().cloned().collect();
        let drains = match &self.source {
            Source::Cluster { config, .. } => config
                .iter()
                .flat_map(|c| c.spec.virtual_ips.iter())
                .filter_map(|e| Some((e.name.clone(), e.drain.clone()?)))
                .collect(),
            Source::File(_) => BTreeMap::new(),
        };
        self.health.sync(&vips, &kept, drains, &links);
        self.request_report();
    }

    fn start(&mut self, r: ResolvedInstance, base: crate::net::netlink::Link) {
        let generation = self.next_generation;
        self.next_generation += 1;
        self.generation.insert(r.key.clone(), generation);
        self.started.remove(&r.key);
        self.running.insert(r.key.clone(), r.clone());
        let (nl, sockets, events) = (self.nl.clone(), self.sockets.clone(), self.events.clone());
        tokio::spawn(async move {
            let key = r.key.clone();
            let result = instances::prepare(&nl, &sockets, r, base)
                .await
                .map(Box::new)
                .map_err(|e| e.to_string());
            let _ = events.send(AgentEvent::Prepared {
                key,
                generation,
                result,
            });
        });
    }

    async fn on_net(&mut self, e: NetEvent) {
        match e {
            NetEvent::Link(l) => {
                let _ = self.engine.send(EngineCmd::Link {
                    ifindex: l.index,
                    up: l.up,
                });
                self.health.link(&l);
                // An interface re-created under a name we run on: restart on the new one.
                if self
                    .running
                    .values()
                    .any(|r| r.interface == l.name && r.ifindex != l.index)
                {
                    info!(interface = %l.name, index = l.index, "interface re-created: restarting its instances");
                    self.apply().await;
                }
            }
            NetEvent::LinkGone(index) => {
                self.health.link_gone(index);
                self.sockets.forget_interface(index);
                let _ = self.engine.send(EngineCmd::LinkGone(index));
            }
            e @ (NetEvent::AddressAdded(_) | NetEvent::AddressRemoved(_)) => {
                let _ = self.dataplane.send(dataplane::DataplaneCmd::Event(e));
            }
        }
    }

    /// The safety net under link events, and a retry for what could not run.
    async fn resync(&mut self) {
        if let Ok(links) = self.nl.links().await {
            self.health.links(&links);
            let mut seen = std::collections::BTreeSet::new();
            for r in self.running.values() {
                if seen.insert(r.ifindex) {
                    let up = links.iter().any(|l| l.index == r.ifindex && l.up);
                    let _ = self.engine.send(EngineCmd::Link {
                        ifindex: r.ifindex,
                        up,
                    });
                }
            }
        }
        if !self.errors.resolve.is_empty() || !self.errors.start.is_empty() {
            self.apply().await;
        }
    }

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
        let _ = self.dataplane.send(dataplane::DataplaneCmd::ReleaseAll(tx));
        if tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .is_err()
        {
            error!("the data plane did not finish releasing addresses in 10s");
        }
        for l in self.nl.links().await.unwrap_or_default() {
            if instances::is_vmac_name(&l.name) || dataplane::is_standby_name(&l.name) {
                self.nl.delete_link(l.index).await.ok();
            }
        }
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
