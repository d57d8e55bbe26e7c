//! The agent on one node: configuration in, VRRP instances driven, data plane programmed,
//! status out.
//!
//! ```text
//!  receiver task per (interface, family) ──packets──┐
//!  signals (TERM/INT: hand over, HUP: reload) ──────┤
//!  link poll (interface up/down → Fault) ───────────┼──▶ event loop ──▶ Instance::handle(now, input)
//!  earliest timer (protocol, GARP bursts) ──────────┘        │
//!                                                            ▼ actions
//!              VrrpSender (advert) · Netlink (add/remove VIP) · FrameSender (GARP/NA) · status
//! ```
//!
//! One task owns every instance, so nothing is shared: `/status` and `/metrics` ask the loop
//! for a snapshot, built only when asked. VRRP never waits on anything but the kernel.

pub mod cluster;
pub mod config;
pub mod status;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::net::announce::{FrameSender, Mac, announcement};
use crate::net::netlink::{Netlink, NetlinkError};
use crate::net::socket::{Received, VrrpReceiver, VrrpSender};
use crate::net::virtual_mac;
use crate::vrrp::{Action, Advertisement, Family, Input, Instance, State};
use config::{ResolvedInstance, VirtualIp};
use status::{AgentStatus, GlobalCounters, InstanceStatus, StatusRequest, TransitionStatus};

/// Interface changes arrive as netlink events; a slow full re-read guards against a missed one.
const LINK_RESYNC: Duration = Duration::from_secs(2);
/// A foreign router on our VRID is reported until it has been silent this long.
const CONFLICT_HOLD: Duration = Duration::from_secs(10);

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
        source: config::ConfigError,
    },
    #[error("cannot apply configuration on node {node}: {reason}")]
    Resolve { node: String, reason: String },
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
}

/// Options of `kube-vrrp agent`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Standalone: VirtualIP documents from this file. None: this node's configuration from the
    /// Kubernetes API (KUBECONFIG or in-cluster).
    pub config: Option<PathBuf>,
    pub node: String,
    pub listen: Option<SocketAddr>,
    /// Cluster mode: how often the agent renews its registration.
    pub heartbeat: Duration,
}

fn load(path: &PathBuf) -> Result<Vec<VirtualIp>, AgentError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| AgentError::Read {
        path: p.clone(),
        source,
    })?;
    config::parse(&text).map_err(|source| AgentError::Config { path: p, source })
}

/// Runs the agent until SIGTERM / SIGINT: standalone from a file, or in a cluster.
pub async fn run(opts: Options) -> Result<(), AgentError> {
    let vips = match &opts.config {
        Some(path) => load(path)?,
        None => Vec::new(),
    };
    let cluster = match opts.config {
        Some(_) => None,
        None => Some(kube::Client::try_default().await.map_err(AgentError::Api)?),
    };
    let (nl, mut link_events) = Netlink::connect_with_link_events()?;
    let (status_tx, status_rx) = mpsc::channel::<StatusRequest>(16);

    // Bound first, so a bad --listen fails before anything is touched; served once every
    // instance has started, so an answer means the agent is up.
    let listener = match opts.listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| AgentError::Listen { addr, source })?,
        ),
        None => None,
    };
    let mut agent = Agent::new(nl, opts.node.clone(), status_rx);
    let resolved = agent.resolve(&vips).await?;
    agent.remove_stale().await?;
    if let Some((_, e)) = agent.apply(resolved).await.into_iter().next() {
        return Err(e);
    }
    if let Some(listener) = listener {
        tokio::spawn(status::serve(listener, status_tx));
    }
    // Cluster mode: configuration in, status out, both off the VRRP path.
    let (mut config_rx, report_tx, writer) = match cluster {
        Some(client) => {
            let (tx, rx) = tokio::sync::watch::channel(cluster::Report::default());
            let writer = tokio::spawn(cluster::write_status(
                client.clone(),
                opts.node.clone(),
                rx,
                opts.heartbeat,
            ));
            (
                Some(cluster::watch_config(client, opts.node.clone())),
                Some(tx),
                Some(writer),
            )
        }
        None => (None, None, None),
    };
    info!(node = %opts.node, instances = agent.running.len(),
          mode = if report_tx.is_some() { "cluster" } else { "standalone" }, "agent started");

    let mut term = signal(SignalKind::terminate()).expect("signal handler");
    let mut int = signal(SignalKind::interrupt()).expect("signal handler");
    let mut hup = signal(SignalKind::hangup()).expect("signal handler");
    let mut link_resync = tokio::time::interval(LINK_RESYNC);
    let mut epoch = 0;
    loop {
        let deadline = agent.next_deadline();
        let config_update = async {
            match config_rx.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some((key, packet)) = agent.packets_rx.recv() => agent.on_packet(key, packet).await,
            _ = tokio::time::sleep_until(deadline) => agent.on_timers().await,
            Some(link) = link_events.next() => agent.link_changed(link.index, link.up).await,
            _ = link_resync.tick() => {
                agent.poll_links().await;
                agent.expire_conflicts();
                // An interface may have appeared for a VirtualIP that could not start.
                if !agent.vip_errors.is_empty() && let Some(c) = agent.cluster_config.clone() {
                    agent.apply_cluster(Some(c)).await;
                }
            }
            Some(reply) = agent.status_rx.recv() => { let _ = reply.send(agent.snapshot()); }
            Some(update) = config_update => {
                if update.relisted {
                    epoch += 1;
                }
                agent.apply_cluster(update.config).await;
            }
            _ = hup.recv() => {
                if let Some(path) = &opts.config {
                    info!(config = %path.display(), "SIGHUP: reloading");
                    match load(path) {
                        Ok(vips) => match agent.resolve(&vips).await {
                            Ok(resolved) => match agent.apply(resolved).await.into_iter().next() {
                                None => agent.config_error = None,
                                Some((_, e)) => agent.reject_config(e),
                            },
                            Err(e) => agent.reject_config(e),
                        },
                        Err(e) => agent.reject_config(e),
                    }
                }
            }
            _ = term.recv() => { info!("SIGTERM: handing over"); break; }
            _ = int.recv() => { info!("SIGINT: handing over"); break; }
        }
        if let Some(tx) = &report_tx
            && (agent.dirty || tx.borrow().epoch != epoch)
        {
            agent.dirty = false;
            let report = agent.report(epoch);
            tx.send_if_modified(|r| {
                let changed = *r != report;
                *r = report;
                changed
            });
        }
    }
    agent.stop_all().await;
    if let (Some(tx), Some(writer)) = (report_tx, writer) {
        // Withdraw this node's entries: it runs nothing now.
        let report = agent.report(epoch);
        tx.send_replace(report);
        drop(tx);
        if tokio::time::timeout(Duration::from_secs(3), writer)
            .await
            .is_err()
        {
            warn!("API unreachable: final status not written");
        }
    }
    info!("stopped");
    Ok(())
}

type SocketKey = (u32, Family);

/// One running instance and its data plane.
struct Running {
    resolved: ResolvedInstance,
    instance: Instance,
    sender: VrrpSender,
    frames: FrameSender,
    /// Where the VIPs are bound: the base interface or the virtual-MAC macvlan.
    addr_ifindex: u32,
    announce_mac: Mac,
    vmac_link: Option<u32>,
    /// Second GARP burst, and periodic refresh, while master.
    garp_second: Option<Duration>,
    garp_refresh: Option<Duration>,
    base_up: bool,
    last_transition_time: Option<SystemTime>,
    /// The last advertisement for our VRID that is not one of ours (other addresses, password
    /// or interval): when, and what.
    conflict: Option<(Duration, String)>,
}

impl Running {
    /// The receivers this instance listens on: the base interface, and its virtual-MAC one.
    fn socket_keys(&self) -> Vec<SocketKey> {
        let family = self.resolved.config.family();
        let mut keys = vec![(self.resolved.ifindex, family)];
        if let Some(vmac) = self.vmac_link {
            keys.push((vmac, family));
        }
        keys
    }
}

struct Agent {
    nl: Netlink,
    node: String,
    start: Instant,
    running: BTreeMap<String, Running>,
    receivers: HashMap<SocketKey, tokio::task::JoinHandle<()>>,
    packets_tx: mpsc::Sender<(SocketKey, Received)>,
    packets_rx: mpsc::Receiver<(SocketKey, Received)>,
    status_rx: mpsc::Receiver<StatusRequest>,
    global: GlobalCounters,
    config_error: Option<String>,
    /// Cluster mode: the configuration last received, and the VirtualIPs of it that could not
    /// start here (name → configured priority, why).
    cluster_config: Option<crate::api::VirtualIPNodeConfig>,
    vip_errors: BTreeMap<String, (u8, String)>,
    /// Something the status shows changed since the last report.
    dirty: bool,
}

impl Agent {
    fn new(nl: Netlink, node: String, status_rx: mpsc::Receiver<StatusRequest>) -> Agent {
        let (packets_tx, packets_rx) = mpsc::channel(1024);
        Agent {
            nl,
            node,
            start: Instant::now(),
            running: BTreeMap::new(),
            receivers: HashMap::new(),
            packets_tx,
            packets_rx,
            status_rx,
            global: GlobalCounters::default(),
            config_error: None,
            cluster_config: None,
            vip_errors: BTreeMap::new(),
            dirty: false,
        }
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    async fn resolve(
        &self,
        vips: &[VirtualIp],
    ) -> Result<BTreeMap<String, ResolvedInstance>, AgentError> {
        let links = self.nl.links().await?;
        let addrs = self.nl.addresses(None).await?;
        config::resolve_all(vips, &self.node, &links, &addrs).map_err(|reason| {
            AgentError::Resolve {
                node: self.node.clone(),
                reason,
            }
        })
    }

    fn reject_config(&mut self, e: AgentError) {
        error!(error = %e, "configuration rejected; the running configuration stays");
        self.config_error = Some(e.to_string());
    }

    /// Removes the VIPs a previous run of this agent left bound (SIGKILL, crash): addresses
    /// carrying our IFA_PROTO mark, and our virtual-MAC interfaces. Nothing else is touched.
    async fn remove_stale(&self) -> Result<(), AgentError> {
        for a in self.nl.addresses(None).await? {
            if a.is_ours() {
                warn!(address = %a.address, "removing a stale virtual address left by a previous run");
                self.nl
                    .del_address(a.index, a.address, a.prefix_len)
                    .await?;
            }
        }
        for l in self.nl.links().await? {
            if is_vmac_name(&l.name) {
                warn!(link = %l.name, "removing a stale virtual-MAC interface");
                self.nl.delete_link(l.index).await?;
            }
        }
        Ok(())
    }

    /// Makes the running set equal `target`: instances whose resolved configuration did not
    /// change are left alone; changed and removed ones hand over gracefully first.
    /// Instances that cannot start are returned with the reason; the others run.
    async fn apply(
        &mut self,
        target: BTreeMap<String, ResolvedInstance>,
    ) -> Vec<(ResolvedInstance, AgentError)> {
        self.dirty = true;
        let mut failed = Vec::new();
        // A new priority alone is applied in place: restarting the instance would hand over
        // (priority 0) and take back, moving the addresses twice.
        for (key, r) in self.running.iter_mut() {
            let Some(t) = target.get(key) else { continue };
            let (old, new) = (r.resolved.config.priority, t.config.priority);
            let mut same_otherwise = t.clone();
            same_otherwise.config.priority = old;
            if old != new && old != 255 && new != 255 && same_otherwise == r.resolved {
                info!(instance = %key, from = old, to = new, "priority changed in place");
                r.instance.reconfigure_priority(new);
                r.resolved = t.clone();
            }
        }
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(k, r)| target.get(*k) != Some(&r.resolved))
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            let now = self.now();
            let actions = self
                .running
                .get_mut(&key)
                .expect("running")
                .instance
                .handle(now, Input::Shutdown);
            self.execute(&key, actions).await;
            let r = self.running.remove(&key).expect("running");
            if let Some(vmac) = r.vmac_link {
                self.nl.delete_link(vmac).await.ok();
            }
            info!(instance = %key, "stopped");
        }
        for (key, resolved) in target {
            if self.running.contains_key(&key) {
                continue;
            }
            if let Err(e) = self.start_instance(key.clone(), resolved.clone()).await {
                error!(instance = %key, error = %e, "cannot start");
                failed.push((resolved, e));
            }
        }
        let wanted: std::collections::HashSet<SocketKey> = self
            .running
            .values()
            .flat_map(Running::socket_keys)
            .collect();
        self.receivers.retain(|k, task| {
            let keep = wanted.contains(k);
            if !keep {
                task.abort();
            }
            keep
        });
        failed
    }

    /// Cluster mode: runs what the controller resolved for this node. A VirtualIP that cannot
    /// run here (no such interface, say) is reported in its status; the others run.
    async fn apply_cluster(&mut self, config: Option<crate::api::VirtualIPNodeConfig>) {
        let entries = config
            .as_ref()
            .map(|c| c.spec.virtual_ips.clone())
            .unwrap_or_default();
        let (links, addrs) = match (self.nl.links().await, self.nl.addresses(None).await) {
            (Ok(l), Ok(a)) => (l, a),
            (Err(e), _) | (_, Err(e)) => {
                error!(error = %e, "cannot read interfaces; configuration not applied");
                return;
            }
        };
        let mut errors = BTreeMap::new();
        let mut target = BTreeMap::new();
        for e in &entries {
            let priority = e.spec.default_priority;
            let resolved = config::validate(e.name.clone(), e.spec.clone())
                .map_err(|(field, reason)| format!("{field}: {reason}"))
                .and_then(|v| v.resolve(&self.node, &links, &addrs));
            match resolved {
                Ok(instances) => target.extend(instances.into_iter().map(|r| (r.key.clone(), r))),
                Err(reason) => {
                    warn!(virtual_ip = %e.name, %reason, "cannot run here");
                    errors.insert(e.name.clone(), (priority, reason));
                }
            }
        }
        for (r, e) in self.apply(target).await {
            errors.insert(r.name.clone(), (r.config.priority, e.to_string()));
        }
        self.vip_errors = errors;
        self.cluster_config = config;
    }

    /// This node's entry of every VirtualIP it runs, for the status writer.
    fn report(&self, epoch: u64) -> cluster::Report {
        let snapshot = self.snapshot();
        let mut by_name: BTreeMap<&str, Vec<&InstanceStatus>> = BTreeMap::new();
        for i in snapshot.instances.values() {
            by_name.entry(i.name.as_str()).or_default().push(i);
        }
        let mut entries = BTreeMap::new();
        for (name, instances) in by_name {
            let mut states: Vec<String> = instances.iter().map(|i| i.state.to_string()).collect();
            states.dedup();
            let latest = instances
                .iter()
                .filter_map(|i| i.last_transition.as_ref())
                .max_by(|a, b| a.time.total_cmp(&b.time));
            entries.insert(
                name.to_string(),
                crate::api::NodeStatus {
                    node: self.node.clone(),
                    state: Some(states.join("/")),
                    priority: Some(instances[0].priority),
                    effective_priority: Some(instances[0].effective_priority),
                    last_transition_time: latest.and_then(|t| {
                        k8s_openapi::jiff::Timestamp::from_microsecond((t.time * 1e6) as i64)
                            .ok()
                            .map(|ts| ts.to_string())
                    }),
                    reason: latest.map(|t| t.reason.clone()),
                    conflict: self
                        .running
                        .values()
                        .filter(|r| r.resolved.name == name)
                        .find_map(|r| r.conflict.as_ref().map(|(_, t)| t.clone())),
                },
            );
        }
        for (name, (priority, reason)) in &self.vip_errors {
            entries.insert(
                name.clone(),
                crate::api::NodeStatus {
                    node: self.node.clone(),
                    state: Some("Error".into()),
                    priority: Some(*priority),
                    effective_priority: None,
                    last_transition_time: None,
                    reason: Some(reason.clone()),
                    conflict: None,
                },
            );
        }
        cluster::Report {
            entries,
            config_generation: self
                .cluster_config
                .as_ref()
                .and_then(|c| c.metadata.generation),
            epoch,
        }
    }

    async fn start_instance(
        &mut self,
        key: String,
        resolved: ResolvedInstance,
    ) -> Result<(), AgentError> {
        let family = resolved.config.family();
        let sock_err = |what: String| move |source| AgentError::Socket { what, source };
        self.ensure_receiver((resolved.ifindex, family), &resolved.interface)
            .map_err(sock_err(format!(
                "VRRP receive socket on {}",
                resolved.interface
            )))?;
        let base = self
            .nl
            .link_by_index(resolved.ifindex)
            .await?
            .ok_or_else(|| NetlinkError::NoSuchInterface(resolved.interface.clone()))?;
        let (addr_ifindex, send_ifname, announce_mac, vmac_link) = if resolved.virtual_mac {
            let mac = virtual_mac(family, resolved.config.vrid);
            let name = vmac_name(family, resolved.config.vrid);
            let index = self.nl.ensure_macvlan(base.index, &name, mac).await?;
            // The base interface must never tie the VIPs to its own MAC: not by answering ARP
            // for them (arp_ignore), nor by using them as the sender of its own ARP requests
            // when replies from a VIP leave through it (arp_announce).
            set_sysctl(&format!("net/ipv4/conf/{}/arp_ignore", base.name), "1");
            set_sysctl(&format!("net/ipv4/conf/{}/arp_announce", base.name), "2");
            // Both nodes have this interface with the same MAC: it must never speak on its
            // own. No IPv6 link-local (and so no DAD, MLD or router solicitation) for an IPv4
            // instance; for an IPv6 one no generated address, and our VIPs skip DAD.
            match family {
                Family::V4 => set_sysctl(&format!("net/ipv6/conf/{name}/disable_ipv6"), "1"),
                Family::V6 => {
                    set_sysctl(&format!("net/ipv6/conf/{name}/addr_gen_mode"), "1");
                    set_sysctl(&format!("net/ipv6/conf/{name}/accept_ra"), "0");
                    set_sysctl(&format!("net/ipv6/conf/{name}/accept_dad"), "0");
                }
            }
            self.nl.set_up(index).await?;
            if resolved.config.primary_address.is_ipv6() {
                // IPv6 adverts leave from our link-local address (RFC 5798 §5.1.2.1) but
                // through the virtual-MAC interface: give it the same link-local address.
                let own = crate::vrrp::VirtualAddress {
                    address: resolved.config.primary_address,
                    prefix_len: 64,
                };
                self.nl.add_address(index, &own).await?;
            }
            // Another node's adverts come from the same virtual MAC: the macvlan driver hands
            // such frames to our macvlan, not to the base interface. Listen there too.
            self.ensure_receiver((index, family), &name)
                .map_err(sock_err(format!("VRRP receive socket on {name}")))?;
            (index, name, mac, Some(index))
        } else {
            (
                base.index,
                base.name.clone(),
                base.mac.unwrap_or_default(),
                None,
            )
        };
        let sender = open_sender(&send_ifname, addr_ifindex, resolved.config.primary_address)
            .await
            .map_err(sock_err(format!("VRRP send socket on {send_ifname}")))?;
        let frames = FrameSender::open(addr_ifindex)
            .map_err(sock_err(format!("AF_PACKET socket on {send_ifname}")))?;
        let mut instance = Instance::new(resolved.config.clone());
        if !base.up {
            instance.handle(self.now(), Input::InterfaceDown);
        }
        info!(instance = %key, interface = %resolved.interface, vrid = resolved.config.vrid,
              priority = resolved.config.priority, version = %resolved.config.version, "starting");
        self.running.insert(
            key.clone(),
            Running {
                resolved,
                instance,
                sender,
                frames,
                addr_ifindex,
                announce_mac,
                vmac_link,
                garp_second: None,
                garp_refresh: None,
                base_up: base.up,
                last_transition_time: None,
                conflict: None,
            },
        );
        let now = self.now();
        let actions = self
            .running
            .get_mut(&key)
            .expect("inserted")
            .instance
            .handle(now, Input::Startup);
        self.execute(&key, actions).await;
        Ok(())
    }

    /// Hands every instance over and stops. A master sends priority 0 at once but keeps its
    /// addresses until the new master's first advertisement arrives (at most three intervals),
    /// so the VIP never goes unanswered in between: make before break. With a virtual MAC this
    /// makes a graceful handover lossless; RFC 5798 removes the addresses at once, which leaves
    /// a gap of Skew_Time.
    async fn stop_all(&mut self) {
        let now = self.now();
        let mut pending: BTreeMap<String, (Vec<crate::vrrp::VirtualAddress>, Duration)> =
            BTreeMap::new();
        let keys: Vec<String> = self.running.keys().cloned().collect();
        for key in &keys {
            let r = self.running.get_mut(key).expect("running");
            let was_master = r.instance.state() == State::Master;
            let mut actions = r.instance.handle(now, Input::Shutdown);
            if was_master {
                let hold = 3 * r.instance.config().advert_interval;
                actions.retain(|a| match a {
                    Action::RemoveAddresses(addrs) => {
                        pending.insert(key.clone(), (addrs.clone(), now + hold));
                        false
                    }
                    _ => true,
                });
            }
            self.execute(key, actions).await;
        }
        while !pending.is_empty() {
            let deadline = pending.values().map(|(_, d)| *d).min().expect("non-empty");
            let mut taken_over = Vec::new();
            tokio::select! {
                Some((socket, p)) = self.packets_rx.recv() => {
                    if let Ok(adv) = Advertisement::decode(&p.payload, p.src, p.dst)
                        && adv.priority > 0
                    {
                        for key in pending.keys() {
                            let r = &self.running[key];
                            if r.socket_keys().contains(&socket)
                                && r.resolved.config.vrid == adv.vrid
                                && p.src != r.resolved.config.primary_address
                            {
                                info!(instance = %key, new_master = %p.src, "new master heard; releasing addresses");
                                taken_over.push(key.clone());
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(self.start + deadline) => {
                    let now = self.now();
                    taken_over.extend(pending.iter().filter(|(_, (_, d))| *d <= now).map(|(k, _)| k.clone()));
                }
            }
            for key in taken_over {
                if let Some((addrs, _)) = pending.remove(&key) {
                    self.execute(&key, vec![Action::RemoveAddresses(addrs)])
                        .await;
                }
            }
        }
        for (key, r) in std::mem::take(&mut self.running) {
            if let Some(vmac) = r.vmac_link {
                self.nl.delete_link(vmac).await.ok();
            }
            info!(instance = %key, "stopped");
        }
        for (_, task) in self.receivers.drain() {
            task.abort();
        }
    }

    /// One receiver task per (interface, family), shared by the instances there.
    fn ensure_receiver(&mut self, socket_key: SocketKey, ifname: &str) -> std::io::Result<()> {
        if self.receivers.contains_key(&socket_key) {
            return Ok(());
        }
        let rx = VrrpReceiver::open(socket_key.1, ifname, socket_key.0)?;
        let tx = self.packets_tx.clone();
        let task = tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(p) => {
                        if tx.send((socket_key, p)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        error!(error = %e, "VRRP receive failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        self.receivers.insert(socket_key, task);
        Ok(())
    }

    /// Carries out one instance's actions, in order.
    async fn execute(&mut self, key: &str, actions: Vec<Action>) {
        let now = self.now();
        let Some(r) = self.running.get_mut(key) else {
            return;
        };
        let mut send_errors = 0;
        let mut netlink_errors = 0;
        let mut transitions = false;
        for action in actions {
            match action {
                Action::SendAdvertisement(adv) => {
                    if send_advertisement(r, &adv).is_err() {
                        send_errors += 1;
                    }
                }
                Action::AddAddresses { addresses, .. } => {
                    for a in &addresses {
                        if let Err(e) = self.nl.add_address(r.addr_ifindex, a).await {
                            error!(instance = key, address = %a, error = %e, "cannot bind virtual address");
                            netlink_errors += 1;
                        }
                    }
                }
                Action::RemoveAddresses(addresses) => {
                    r.garp_second = None;
                    r.garp_refresh = None;
                    for a in &addresses {
                        if let Err(e) = self
                            .nl
                            .del_address(r.addr_ifindex, a.address, a.prefix_len)
                            .await
                        {
                            error!(instance = key, address = %a, error = %e, "cannot release virtual address");
                            netlink_errors += 1;
                        }
                    }
                }
                Action::Announce(_) => {
                    send_errors += announce(r);
                    let g = r.resolved.garp;
                    r.garp_second = (!g.delay.is_zero()).then_some(now + g.delay);
                    r.garp_refresh = (!g.refresh.is_zero()).then_some(now + g.refresh);
                }
                Action::ArmTimer { .. } | Action::CancelTimer => {}
                Action::StateChanged(t) => {
                    info!(instance = key, from = %t.from, to = %t.to, reason = %t.reason, "transition");
                    r.last_transition_time = Some(SystemTime::now());
                    transitions = true;
                }
            }
        }
        if send_errors + netlink_errors > 0 {
            self.global.send_errors += send_errors;
            self.global.netlink_errors += netlink_errors;
        }
        self.dirty |= transitions;
    }

    fn next_deadline(&self) -> Instant {
        let far = self.now() + Duration::from_secs(3600);
        let next = self
            .running
            .values()
            .flat_map(|r| {
                [
                    r.instance.timer().map(|(_, at)| at),
                    r.garp_second,
                    r.garp_refresh,
                ]
            })
            .flatten()
            .min()
            .unwrap_or(far);
        self.start + next
    }

    async fn on_timers(&mut self) {
        let now = self.now();
        let keys: Vec<String> = self.running.keys().cloned().collect();
        for key in keys {
            let r = self.running.get_mut(&key).expect("running");
            if let Some((kind, at)) = r.instance.timer()
                && at <= now
            {
                let actions = r.instance.handle(now, Input::TimerExpired(kind));
                self.execute(&key, actions).await;
            }
            let r = self.running.get_mut(&key).expect("running");
            let mut errors = 0;
            if r.garp_second.is_some_and(|t| t <= now) {
                r.garp_second = None;
                errors += announce(r);
            }
            if let Some(t) = r.garp_refresh
                && t <= now
            {
                r.garp_refresh = Some(now + r.resolved.garp.refresh);
                errors += announce(r);
            }
            if errors > 0 {
                self.global.send_errors += errors;
            }
        }
    }

    async fn on_packet(&mut self, socket: SocketKey, p: Received) {
        let now = self.now();
        let decoded = Advertisement::decode(&p.payload, p.src, p.dst);
        // The VRID is the second octet whether or not the rest decodes.
        let vrid = match (&decoded, p.payload.get(1)) {
            (Ok(a), _) => Some(a.vrid),
            (Err(_), v) => v.copied(),
        };
        let key = self
            .running
            .iter()
            .find(|(_, r)| {
                r.socket_keys().contains(&socket) && Some(r.resolved.config.vrid) == vrid
            })
            .map(|(k, _)| k.clone());
        let Some(key) = key else {
            match decoded {
                Ok(_) => self.global.unknown_vrid += 1,
                Err(e) => {
                    *self
                        .global
                        .malformed
                        .entry(e.kind().to_string())
                        .or_default() += 1
                }
            }
            return;
        };
        let r = self.running.get_mut(&key).expect("running");
        if p.src == r.resolved.config.primary_address {
            return; // our own advertisement, looped back by a misbehaving driver
        }
        let input = match decoded {
            Ok(advertisement) => Input::Advertisement {
                src: p.src,
                ttl: p.ttl,
                advertisement,
            },
            Err(e) => {
                warn!(instance = %key, src = %p.src, error = %e, "malformed VRRP packet dropped");
                Input::Malformed(e)
            }
        };
        let before = foreign_signs(r.instance.counters());
        let actions = r.instance.handle(now, input);
        let after = foreign_signs(r.instance.counters());
        if after != before {
            let what = if after.0 != before.0 {
                "other addresses"
            } else if after.1 != before.1 {
                "another password"
            } else {
                "another advertisement interval"
            };
            let text = format!(
                "{} advertises virtual router {} with {what}",
                p.src, r.resolved.config.vrid
            );
            if r.conflict.as_ref().is_none_or(|(_, t)| *t != text) {
                warn!(instance = %key, conflict = %text, "another VRRP router uses this virtual router ID");
                self.dirty = true;
            }
            r.conflict = Some((now, text));
        }
        self.execute(&key, actions).await;
    }

    /// Forgets foreign routers not heard from for a while.
    fn expire_conflicts(&mut self) {
        let now = self.now();
        for r in self.running.values_mut() {
            if r.conflict
                .as_ref()
                .is_some_and(|(t, _)| now - *t > CONFLICT_HOLD)
            {
                r.conflict = None;
                self.dirty = true;
            }
        }
    }

    /// Re-reads every interface we run on (the safety net under link events).
    async fn poll_links(&mut self) {
        let Ok(links) = self.nl.links().await else {
            return;
        };
        let ifindexes: std::collections::BTreeSet<u32> =
            self.running.values().map(|r| r.resolved.ifindex).collect();
        for index in ifindexes {
            let up = links.iter().any(|l| l.index == index && l.up);
            self.link_changed(index, up).await;
        }
    }

    /// An interface went up or down: its instances leave or enter Fault.
    async fn link_changed(&mut self, index: u32, up: bool) {
        let now = self.now();
        let keys: Vec<String> = self.running.keys().cloned().collect();
        for key in keys {
            let r = self.running.get_mut(&key).expect("running");
            if r.resolved.ifindex == index && up != r.base_up {
                r.base_up = up;
                info!(instance = %key, interface = %r.resolved.interface, up, "interface state changed");
                let input = if up {
                    Input::InterfaceUp
                } else {
                    Input::InterfaceDown
                };
                let actions = r.instance.handle(now, input);
                self.execute(&key, actions).await;
            }
        }
    }

    /// The status `/status` and `/metrics` report, built when asked.
    fn snapshot(&self) -> AgentStatus {
        let instances = self
            .running
            .iter()
            .map(|(k, r)| {
                let c = r.instance.config();
                let (master, master_priority) = match r.instance.state() {
                    State::Master => (Some(c.primary_address), Some(r.instance.priority())),
                    State::Backup => r
                        .instance
                        .master()
                        .map(|m| (Some(m.address), Some(m.priority)))
                        .unwrap_or_default(),
                    _ => (None, None),
                };
                let status = InstanceStatus {
                    name: r.resolved.name.clone(),
                    family: config::family_label(c.family()).to_string(),
                    interface: r.resolved.interface.clone(),
                    virtual_router_id: c.vrid,
                    version: u8::from(c.version),
                    state: r.instance.state(),
                    priority: c.priority,
                    effective_priority: r.instance.priority(),
                    addresses: c.addresses.iter().map(|a| a.to_string()).collect(),
                    master,
                    master_priority,
                    last_transition: r.instance.last_transition().map(|t| TransitionStatus {
                        from: t.from,
                        to: t.to,
                        time: r
                            .last_transition_time
                            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                            .map(|d| d.as_secs_f64())
                            .unwrap_or_default(),
                        reason: t.reason.to_string(),
                    }),
                    counters: r.instance.counters().clone(),
                };
                (k.clone(), status)
            })
            .collect();
        AgentStatus {
            node: self.node.clone(),
            instances,
            global: self.global.clone(),
            config_error: self.config_error.clone(),
        }
    }
}

/// Opens the sender, waiting up to 3 s for a fresh IPv6 link-local source to finish duplicate
/// address detection (the kernel refuses a tentative source).
async fn open_sender(ifname: &str, ifindex: u32, source: IpAddr) -> std::io::Result<VrrpSender> {
    let mut tries = 0;
    loop {
        match VrrpSender::open(ifname, ifindex, source) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) && tries < 30 => {
                if tries == 0 {
                    info!(%source, "source address not usable yet (duplicate address detection?); waiting");
                }
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

fn send_advertisement(r: &Running, adv: &Advertisement) -> Result<(), ()> {
    let c = r.instance.config();
    let src = c.primary_address;
    let dsts: Vec<IpAddr> = if c.unicast_peers.is_empty() {
        vec![c.family().multicast_group()]
    } else {
        c.unicast_peers.clone()
    };
    let mut result = Ok(());
    for dst in dsts {
        let sent = adv
            .encode(src, dst)
            .map_err(|e| e.to_string())
            .and_then(|bytes| r.sender.send(dst, &bytes).map_err(|e| e.to_string()));
        if let Err(e) = sent {
            warn!(instance = %r.resolved.key, %dst, error = %e, "advertisement not sent");
            result = Err(());
        }
    }
    result
}

/// One burst: `repeat` announcements of every address, interleaved (as keepalived does).
fn announce(r: &Running) -> u64 {
    let mut errors = 0;
    for _ in 0..r.resolved.garp.repeat {
        for a in &r.resolved.config.addresses {
            if let Err(e) = r.frames.send(&announcement(a.address, r.announce_mac)) {
                warn!(instance = %r.resolved.key, address = %a, error = %e, "announcement not sent");
                errors += 1;
            }
        }
    }
    errors
}

fn vmac_name(family: Family, vrid: u8) -> String {
    match family {
        Family::V4 => format!("vrrp4-{vrid}"),
        Family::V6 => format!("vrrp6-{vrid}"),
    }
}

fn is_vmac_name(name: &str) -> bool {
    ["vrrp4-", "vrrp6-"].iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|v| v.parse::<u8>().is_ok())
    })
}

fn set_sysctl(path: &str, value: &str) {
    let full = format!("/proc/sys/{path}");
    if let Err(e) = std::fs::write(&full, value) {
        warn!(sysctl = %full, error = %e, "cannot set sysctl");
    }
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
