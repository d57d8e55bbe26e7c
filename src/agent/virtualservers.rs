//! Virtual servers, the agent's second job: check every real server (keepalived's
//! `delay_loop`, `connect_timeout`, `retry`, `delay_before_retry`), spread new connections over
//! those that are up, and keep our nftables table saying so (one transaction per change, see
//! [`crate::net::nft`]). A task of its own: checks and `nft` runs never touch the VRRP engine,
//! whose timing they cannot delay.
//!
//! ```text
//!  sync(VirtualIPs) ─▶ desired ─▶ task: a checker per real server ─▶ results ─▶ CheckState
//!                                   │ something changed: targets → nft -f - (our table only)
//!                                   ▼
//!                       statuses (/status, /metrics) + AgentEvent::Changed on a transition
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::messages::AgentEvent;
use super::sampler::{Served, sample};
use crate::api::Forwarding;
use crate::api::{RealServerStatus, VirtualServerStatus};
use crate::checks::{CheckState, Outcome, Policy, rfc3339};
use crate::director::health::CheckLatency;
use crate::director::stats::ServiceStats;
use crate::director::{self, Reach, RuleSet};
use crate::ids::InstanceKey;
use crate::model::spec::ValidatedVirtualIp;
use crate::model::virtualserver::{RealCheck, ServiceKey, VirtualServer};
use crate::net::nft;

/// VirtualIP name → its virtual servers; and (VirtualIP, IPv4?) → the interface it runs on and
/// its MAC (direct routing sends frames out of it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Desired {
    services: BTreeMap<String, Vec<VirtualServer>>,
    links: BTreeMap<InstanceKey, OnLink>,
}

pub(crate) use crate::director::OnLink;

/// One real server of one virtual server of one VirtualIP.
type RealId = (String, ServiceKey, SocketAddr);

pub(crate) struct VirtualServers {
    /// `None` until the agent's first configuration.
    desired: watch::Sender<Option<Desired>>,
    /// This node's addresses changed (it took or left a VirtualIP's address).
    addresses: mpsc::UnboundedSender<()>,
    status: Arc<Mutex<Vec<VirtualServerStatus>>>,
    task: tokio::task::JoinHandle<()>,
    /// Counters and connections, sampled every [`super::sampler::STATS_EVERY`].
    stats: Arc<Mutex<Vec<ServiceStats>>>,
    stats_task: Option<tokio::task::JoinHandle<()>>,
    latency: Arc<Mutex<Vec<CheckLatency>>>,
    nft: Option<PathBuf>,
}

/// What the director's task publishes: statuses, the rules in force, check latencies.
type Shown = (
    Arc<Mutex<Vec<VirtualServerStatus>>>,
    Arc<Mutex<Served>>,
    Arc<Mutex<Vec<CheckLatency>>>,
);

impl VirtualServers {
    /// `networks`: where real servers may be (empty: anywhere).
    pub(crate) fn start(
        policy: Policy,
        networks: Vec<director::Network>,
        events: mpsc::UnboundedSender<AgentEvent>,
    ) -> VirtualServers {
        let (desired, rx) = watch::channel(None);
        let (addresses, addresses_rx) = mpsc::unbounded_channel();
        let status = Arc::new(Mutex::new(Vec::new()));
        let served = Arc::new(Mutex::new(None));
        let latency = Arc::new(Mutex::new(Vec::new()));
        let stats = Arc::new(Mutex::new(Vec::new()));
        let nft = nft::nft_program();
        let task = tokio::spawn(run(
            policy,
            networks,
            nft.clone(),
            rx,
            addresses_rx,
            (status.clone(), served.clone(), latency.clone()),
            events,
        ));
        let stats_task = nft
            .clone()
            .map(|n| tokio::spawn(sample(n, served, stats.clone())));
        VirtualServers {
            desired,
            addresses,
            status,
            task,
            stats,
            stats_task,
            latency,
            nft,
        }
    }

    /// How long each real server's checks took.
    pub(crate) fn latencies(&self) -> Vec<CheckLatency> {
        self.latency.lock().expect("latency").clone()
    }

    /// The last sample of the counters and connections (`kube-vrrp status`).
    pub(crate) fn stats(&self) -> Vec<ServiceStats> {
        self.stats.lock().expect("stats").clone()
    }

    /// What the VirtualIPs running here ask for.
    pub(crate) fn sync(&self, vips: &[ValidatedVirtualIp], links: BTreeMap<InstanceKey, OnLink>) {
        let services: BTreeMap<String, Vec<VirtualServer>> = vips
            .iter()
            .filter(|v| !v.virtual_servers.is_empty())
            .map(|v| (v.name.clone(), v.virtual_servers.clone()))
            .collect();
        let links = links
            .into_iter()
            .filter(|(k, _)| services.contains_key(k.name()))
            .collect();
        let next = Desired { services, links };
        self.desired.send_if_modified(|d| {
            let changed = d.as_ref() != Some(&next);
            *d = Some(next);
            changed
        });
    }

    /// This node's addresses changed: direct routing forwards only where the address is held.
    pub(crate) fn addresses_changed(&self) {
        let _ = self.addresses.send(());
    }

    pub(crate) fn statuses(&self) -> Vec<VirtualServerStatus> {
        self.status.lock().expect("status").clone()
    }

    /// Stops checking and removes our table.
    pub(crate) async fn stop(&self) {
        self.task.abort();
        if let Some(t) = &self.stats_task {
            t.abort();
        }
        if let Some(nft) = &self.nft
            && let Err(e) = nft::apply(nft, &nft::remove()).await
        {
            warn!(error = %e, "cannot remove the virtual servers' table");
        }
    }
}

/// The cluster report's view of one VirtualIP's virtual servers: what changes only on a
/// transition (a passing check's latency is left out, so a check every second does not
/// rewrite the status every second).
pub(crate) fn steady(all: &[VirtualServerStatus], vip: &str) -> Vec<VirtualServerStatus> {
    all.iter()
        .filter(|v| v.virtual_ip == vip)
        .map(|v| {
            let mut v = v.clone();
            for r in &mut v.real_servers {
                if r.healthy {
                    r.result = None;
                }
            }
            v
        })
        .collect()
}

/// A real server's health; `state` none: unchecked, always up.
struct Health {
    /// How long its checks took.
    latency: director::health::Latency,
    state: Option<CheckState>,
    transitions: u64,
    since: SystemTime,
}

/// The task's state: every service with its real servers' health, and the checkers.
#[derive(Default)]
struct State {
    services: BTreeMap<(String, ServiceKey), (VirtualServer, Vec<Health>)>,
    checkers: HashMap<RealId, (RealCheck, tokio::task::JoinHandle<()>)>,
    /// The last rule set `nft` took, and the last error.
    applied: Option<RuleSet>,
    error: Option<String>,
    /// Programmed, but something on the node stands in the way: forwarding off, by family
    /// (IPv4?), for the services that route through the director (not direct routing).
    warnings: BTreeMap<bool, String>,
    /// (VirtualIP, IPv4?) → where it runs, for direct routing.
    links: BTreeMap<InstanceKey, OnLink>,
    /// What the director core last saw of this node (direct routing reads the neighbour
    /// tables and this node's addresses before each programming), and decided.
    node: director::Node,
    plans: Vec<director::ServicePlan>,
    /// Opened when direct routing first needs the neighbour tables.
    netlink: Option<crate::net::netlink::Netlink>,
}

/// Whether the node forwards what NAT sends on (every NAT connection is routed through the
/// director; direct routing forwards frames and needs no IP forwarding), per family (IPv4?).
fn forwarding_off<'a>(services: impl Iterator<Item = &'a VirtualServer>) -> BTreeMap<bool, String> {
    let families: std::collections::BTreeSet<bool> = services
        .filter(|v| v.forwarding != Forwarding::DirectRouting)
        .map(|v| v.address.is_ipv4())
        .collect();
    families
        .into_iter()
        .filter_map(|v4| {
            let path = if v4 {
                "net/ipv4/ip_forward"
            } else {
                "net/ipv6/conf/all/forwarding"
            };
            let on = std::fs::read_to_string(format!("/proc/sys/{path}"))
                .is_ok_and(|v| v.trim() == "1");
            (!on).then(|| {
                (
                    v4,
                    format!(
                        "{} is not 1 on this node: the connections the rules send to real servers are dropped (set it to 1)",
                        path.replace('/', ".")
                    ),
                )
            })
        })
        .collect()
}

async fn run(
    policy: Policy,
    networks: Vec<director::Network>,
    nft: Option<PathBuf>,
    mut desired: watch::Receiver<Option<Desired>>,
    mut addresses: mpsc::UnboundedReceiver<()>,
    (status, served, latency): Shown,
    events: mpsc::UnboundedSender<AgentEvent>,
) {
    let (results_tx, mut results) =
        mpsc::unbounded_channel::<(RealId, Outcome, Option<std::time::Duration>)>();
    let mut st = State::default();
    st.node.networks = networks;
    // Nothing is programmed before the agent's first configuration: a table a previous run
    // left keeps serving until then, and the first round replaces (or removes) it.
    loop {
        let mut transition = false;
        tokio::select! {
            changed = desired.changed() => {
                if changed.is_err() {
                    return;
                }
                let d = desired.borrow_and_update().clone();
                if let Some(d) = d {
                    st.sync(&d, &policy, &results_tx);
                }
            }
            Some((id, o, took)) = results.recv() => {
                transition = st.record(&id, o, took);
            }
            Some(()) = addresses.recv() => {
                while addresses.try_recv().is_ok() {}
            }
        }
        if desired.borrow().is_none() {
            continue;
        }
        st.program(nft.as_deref()).await;
        *status.lock().expect("status") = st.statuses(nft.is_some());
        *latency.lock().expect("latency") = st.latencies();
        *served.lock().expect("served") = st.applied.clone().map(|r| {
            let list = st
                .services
                .iter()
                .map(|((vip, _), (vs, _))| (vip.clone(), vs.clone()))
                .collect();
            (r, list)
        });
        if transition {
            let _ = events.send(AgentEvent::Changed);
        }
    }
}

impl State {
    /// Takes the desired services: health kept for real servers whose check is unchanged,
    /// checkers started and stopped to match.
    fn sync(
        &mut self,
        desired: &Desired,
        policy: &Policy,
        results: &mpsc::UnboundedSender<(RealId, Outcome, Option<std::time::Duration>)>,
    ) {
        let now = SystemTime::now();
        let mut old = std::mem::take(&mut self.services);
        let mut wanted: HashMap<RealId, RealCheck> = HashMap::new();
        self.links = desired.links.clone();
        for (vip, list) in &desired.services {
            for vs in list {
                let key = vs.key();
                let before = old.remove(&(vip.clone(), key));
                for change in director::changes::between(before.as_ref().map(|(b, _)| b), vs) {
                    info!(virtual_server = %key, %change, "real servers changed");
                }
                let carried = director::health::carried(before.as_ref().map(|(b, _)| b), vs);
                let health = vs
                    .reals
                    .iter()
                    .zip(carried)
                    .map(|(r, from)| {
                        let kept = from.and_then(|i| before.as_ref().map(|(_, h)| &h[i]));
                        if let Some(c) = &r.check {
                            wanted.insert((vip.clone(), key, r.addr), c.clone());
                        }
                        Health {
                            latency: kept.map(|h| h.latency.clone()).unwrap_or_default(),
                            state: kept.and_then(|h| h.state.clone()).or_else(|| {
                                r.check.as_ref().map(|c| CheckState::new(&c.check, now))
                            }),
                            transitions: kept.map_or(0, |h| h.transitions),
                            since: kept.map_or(now, |h| h.since),
                        }
                    })
                    .collect();
                self.services
                    .insert((vip.clone(), key), (vs.clone(), health));
            }
        }
        self.checkers.retain(|id, (c, task)| {
            let keep = wanted.get(id) == Some(c);
            if !keep {
                task.abort();
            }
            keep
        });
        for (id, check) in wanted {
            if self.checkers.contains_key(&id) {
                continue;
            }
            let task = match policy.build(&check.check) {
                Ok(checker) => tokio::spawn(check_loop(
                    id.clone(),
                    check.clone(),
                    checker,
                    results.clone(),
                )),
                Err(why) => {
                    // Refused (e.g. an exec check this agent does not allow): down, saying why.
                    let _ = results.send((id.clone(), Outcome::fail(why), None));
                    tokio::spawn(async {})
                }
            };
            self.checkers.insert(id, (check, task));
        }
    }

    /// Records a check result; true when the real server went down or came back.
    fn record(&mut self, id: &RealId, o: Outcome, took: Option<std::time::Duration>) -> bool {
        let Some((vs, health)) = self.services.get_mut(&(id.0.clone(), id.1)) else {
            return false;
        };
        let Some(i) = vs.reals.iter().position(|r| r.addr == id.2) else {
            return false;
        };
        if let Some(t) = took {
            health[i].latency.observe(t);
        }
        let (Some(check), Some(state)) = (&vs.reals[i].check, health[i].state.as_mut()) else {
            return false;
        };
        let text = o.text.clone();
        let now = SystemTime::now();
        if !state.record(&check.check, o, now) {
            return false;
        }
        let healthy = state.healthy;
        let h = &mut health[i];
        h.transitions += 1;
        h.since = now;
        if healthy {
            info!(virtual_ip = %id.0, virtual_server = %id.1, real_server = %id.2, result = %text, "real server up");
        } else {
            warn!(virtual_ip = %id.0, virtual_server = %id.1, real_server = %id.2, result = %text, "real server down: it gets no new connections");
        }
        true
    }

    fn up(health: &[Health]) -> Vec<bool> {
        health
            .iter()
            .map(|h| h.state.as_ref().is_none_or(|s| s.healthy))
            .collect()
    }

    /// What direct routing needs to know of this node: the MACs the kernel's neighbour tables
    /// know (the checks' connections fill them) and this node's addresses, on a netlink
    /// connection kept for it.
    async fn read_node(&mut self) {
        self.node.links = self.links.clone();
        if self.services.is_empty() {
            return;
        }
        if self.netlink.is_none() {
            self.netlink = crate::net::netlink::Netlink::connect().ok();
        }
        let Some(nl) = &self.netlink else {
            return;
        };
        // Bounded: a dump that never answers must not hold the checks' results.
        let limit = std::time::Duration::from_secs(2);
        match tokio::time::timeout(limit, nl.addresses(None)).await {
            Ok(Ok(a)) => self.node.addresses = a.into_iter().map(|a| a.address).collect(),
            Ok(Err(e)) => warn!(error = %e, "cannot read this node's addresses"),
            Err(_) => {
                warn!("reading this node's addresses took more than 2 s: a new netlink connection");
                self.netlink = None;
                return;
            }
        }
        if !self
            .services
            .values()
            .any(|(v, _)| v.forwarding == Forwarding::DirectRouting)
        {
            self.node.neighbours.clear();
            return;
        }
        match tokio::time::timeout(limit, nl.neighbours()).await {
            Ok(Ok(n)) => {
                self.node.neighbours = n.into_iter().map(|(_, ip, mac)| (ip, mac)).collect()
            }
            Ok(Err(e)) => warn!(error = %e, "cannot read the neighbour tables"),
            Err(_) => {
                warn!("reading the neighbour tables took more than 2 s: a new netlink connection");
                self.netlink = None;
            }
        }
    }

    /// Asks the director core for the rules and puts them in force when they changed: a few
    /// map elements when only health, a neighbour or the address's holder changed.
    async fn program(&mut self, nft: Option<&std::path::Path>) {
        self.read_node().await;
        let services: Vec<director::Service<'_>> = self
            .services
            .iter()
            .map(|((vip, _), (vs, health))| director::Service {
                virtual_ip: vip,
                vs,
                up: Self::up(health),
            })
            .collect();
        let (rules, plans) = director::plan(&services, &self.node);
        self.plans = plans;
        self.warnings = forwarding_off(self.services.values().map(|(vs, _)| vs));
        if self.applied.as_ref() == Some(&rules) {
            return;
        }
        let Some(nft) = nft else {
            self.error = (!self.services.is_empty()).then(|| {
                "the nft program (nftables) is not installed on this node: virtual servers need it".to_string()
            });
            return;
        };
        let script = match &self.applied {
            Some(before) => {
                nft::changes(before, &rules).unwrap_or_else(|| nft::full(Some(before), &rules))
            }
            None => nft::full(None, &rules),
        };
        match nft::apply(nft, &script).await {
            Ok(()) => {
                if let Some(before) = &self.applied {
                    forget_clients(nft, nft::purges(before, &rules)).await;
                }
                self.applied = Some(rules);
                self.error = None;
            }
            Err(e) => {
                if self.error.as_ref() != Some(&e) {
                    warn!(error = %e, "cannot program the virtual servers");
                }
                self.error = Some(e);
                // Whatever the kernel holds now, the next round puts the whole set in force.
                if self.applied.is_some() {
                    self.applied = Some(RuleSet {
                        services: Vec::new(),
                    });
                }
            }
        }
    }

    fn latencies(&self) -> Vec<CheckLatency> {
        self.services
            .iter()
            .flat_map(|((vip, key), (vs, health))| {
                vs.reals
                    .iter()
                    .zip(health)
                    .filter(|(r, _)| r.check.is_some())
                    .map(move |(r, h)| CheckLatency {
                        virtual_ip: vip.clone(),
                        virtual_server: key.to_string(),
                        real_server: r.addr.to_string(),
                        latency: h.latency.clone(),
                    })
            })
            .collect()
    }

    fn statuses(&self, have_nft: bool) -> Vec<VirtualServerStatus> {
        self.services
            .iter()
            .zip(&self.plans)
            .map(|(((vip, key), (vs, health)), plan)| VirtualServerStatus {
                virtual_ip: vip.clone(),
                name: key.to_string(),
                up: plan.up(),
                serving: plan.serving.as_str().into(),
                // Direct routing has rules only where the address runs on an interface.
                programmed: have_nft
                    && self.error.is_none()
                    && self.applied.is_some()
                    && plan.routed_here,
                error: self.error.clone().or_else(|| {
                    (vs.forwarding != Forwarding::DirectRouting)
                        .then(|| self.warnings.get(&vs.address.is_ipv4()).cloned())
                        .flatten()
                }),
                real_servers: plan
                    .reals
                    .iter()
                    .zip(health)
                    .map(|(r, h)| RealServerStatus {
                        address: r.addr.to_string(),
                        healthy: r.reach == Reach::Up,
                        result: r.reach.why(r.addr.ip(), &self.node.networks).or_else(|| {
                            h.state
                                .as_ref()
                                .and_then(|s| s.last.as_ref())
                                .map(|o| o.text.clone())
                        }),
                        weight: r.weight,
                        drained: r.drained(),
                        transitions: h.transitions,
                        last_transition_time: Some(rfc3339(h.since)),
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Persistence: the clients of real servers that left a table choose again (IPVS drops a
/// persistence template whose server is gone).
async fn forget_clients(
    nft: &std::path::Path,
    purges: Vec<(&'static str, String, std::collections::BTreeSet<String>)>,
) {
    for (family, map, servers) in purges {
        let json = match nft::list_map(nft, family, &map).await {
            Ok(j) => j,
            Err(e) => {
                warn!(error = %e, %map, "cannot read the persistence records");
                continue;
            }
        };
        // Up to 65,536 records: read off the runtime's threads.
        let keys = tokio::task::spawn_blocking(move || nft::keys_to(&json, &servers))
            .await
            .unwrap_or_default();
        for chunk in keys.chunks(1024) {
            let script = format!(
                "delete element {family} {} {map} {{ {} }}\n",
                nft::TABLE,
                chunk.join(", ")
            );
            if nft::apply(nft, &script).await.is_err() {
                // A record that expired meanwhile fails the whole transaction: one by one.
                for k in chunk {
                    let one = format!("delete element {family} {} {map} {{ {k} }}\n", nft::TABLE);
                    let _ = nft::apply(nft, &one).await;
                }
            }
        }
    }
}

/// Checks one real server until aborted: every `delayLoop`; after a failure, again
/// `delayBeforeRetry` later until `retry` more attempts have failed.
async fn check_loop(
    id: RealId,
    c: RealCheck,
    checker: Box<dyn crate::checks::Checker>,
    results: mpsc::UnboundedSender<(RealId, Outcome, Option<std::time::Duration>)>,
) {
    let mut failures = 0;
    loop {
        let started = std::time::Instant::now();
        let o = checker.run(c.check.timeout).await;
        let took = started.elapsed();
        let wait = director::health::next_attempt(o.ok, &mut failures, &c);
        if results.send((id.clone(), o, Some(took))).is_err() {
            return;
        }
        tokio::time::sleep(wait).await;
    }
}
