//! `kube-vrrp controller`: watches `VirtualIP`s, `Node`s and the per-node configurations, and
//! on any change runs the pipeline validate → resolve → publish → status ([`plan::plan`], pure)
//! over the whole cluster at once — VRIDs are unique per segment across all objects, so one
//! object cannot be resolved alone. The shell here only compares the plan with what the API
//! holds and writes the difference: nothing is written when nothing changed, so a restarted
//! controller moves no VIP. Two replicas elect one leader on a Lease; the other keeps its caches
//! warm.

pub mod conditions;
pub mod lb;
pub mod leader;
pub mod plan;
pub mod resolve;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::api::{
    LABEL_POOL, SecretKeyRef, VirtualIP, VirtualIPNodeConfig, VirtualIPNodeConfigSpec,
    VirtualIPPool,
};
use plan::{FINALIZER, World};

/// The field manager of everything the controller writes.
pub const MANAGER: &str = "kube-vrrp-controller";
const LEASE_RENEW: Duration = Duration::from_secs(2);
/// A pass without a change writes nothing; it notices silent agents and rereads Secrets.
const RESYNC: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_secs(1);
/// VirtualIPs are cluster-scoped: their Events go here (as for Nodes).
const EVENT_NAMESPACE: &str = "default";
/// Concurrent writes within one pass.
const PARALLEL_WRITES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("cannot reach the Kubernetes API: {0}")]
    Client(#[from] kube::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Options of `kube-vrrp controller`.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: Option<SocketAddr>,
    /// Namespace of the leader-election Lease.
    pub namespace: String,
    pub lease_name: String,
    /// This replica's name in the Lease.
    pub identity: String,
    pub lease_duration: Duration,
    /// Serve LoadBalancer Services that name no `loadBalancerClass`.
    pub classless: bool,
}

#[derive(Debug, Default)]
struct Metrics {
    leader: bool,
    reconciles: u64,
    reconcile_errors: u64,
    writes: u64,
    events: u64,
    last_reconcile_seconds: f64,
    phases: BTreeMap<String, u64>,
}

impl Metrics {
    fn render(&self) -> String {
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, String)>| {
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in lines {
                if labels.is_empty() {
                    s.push_str(&format!("{name} {value}\n"));
                } else {
                    s.push_str(&format!("{name}{{{labels}}} {value}\n"));
                }
            }
        };
        let one = |v: String| vec![(String::new(), v)];
        metric(
            "kube_vrrp_controller_leader",
            "gauge",
            "1 while this replica holds the lease.",
            one(u8::from(self.leader).to_string()),
        );
        metric(
            "kube_vrrp_controller_reconciles_total",
            "counter",
            "Pipeline runs over the whole cluster.",
            one(self.reconciles.to_string()),
        );
        metric(
            "kube_vrrp_controller_reconcile_errors_total",
            "counter",
            "Pipeline runs that failed to write (retried).",
            one(self.reconcile_errors.to_string()),
        );
        metric(
            "kube_vrrp_controller_writes_total",
            "counter",
            "Objects written (configurations, statuses, finalizers).",
            one(self.writes.to_string()),
        );
        metric(
            "kube_vrrp_controller_events_total",
            "counter",
            "Events emitted.",
            one(self.events.to_string()),
        );
        metric(
            "kube_vrrp_controller_last_reconcile_seconds",
            "gauge",
            "Duration of the last pipeline run.",
            one(format!("{:.6}", self.last_reconcile_seconds)),
        );
        metric(
            "kube_vrrp_virtualips",
            "gauge",
            "VirtualIPs by phase.",
            self.phases
                .iter()
                .map(|(p, n)| (format!("phase=\"{p}\""), n.to_string()))
                .collect(),
        );
        s
    }
}

/// Mirrors every object of `api` into a store and pokes `notify` on each change.
fn mirror<K>(api: Api<K>, notify: Arc<Notify>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(_) => notify.notify_one(),
                Err(e) => {
                    warn!(kind = %K::kind(&()), error = %crate::logging::watch_error(&e), "watch failed; retrying")
                }
            }
        }
    });
    store
}

struct Shell {
    client: Client,
    vips: Store<VirtualIP>,
    nodes: Store<Node>,
    configs: Store<VirtualIPNodeConfig>,
    pools: Store<VirtualIPPool>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    classless: bool,
    identity: String,
    metrics: Arc<Mutex<Metrics>>,
}

/// Runs the controller until SIGTERM / SIGINT.
pub async fn run(opts: Options) -> Result<(), ControllerError> {
    let client = Client::try_default().await?;
    let listener = match opts.listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ControllerError::Listen { addr, source })?,
        ),
        None => None,
    };
    let notify = Arc::new(Notify::new());
    let shell = Shell {
        vips: mirror(Api::all(client.clone()), notify.clone()),
        nodes: mirror(Api::all(client.clone()), notify.clone()),
        configs: mirror(Api::all(client.clone()), notify.clone()),
        pools: mirror(Api::all(client.clone()), notify.clone()),
        services: mirror(Api::all(client.clone()), notify.clone()),
        slices: mirror(Api::all(client.clone()), notify.clone()),
        classless: opts.classless,
        identity: opts.identity.clone(),
        metrics: Arc::default(),
        client: client.clone(),
    };
    if let Some(listener) = listener {
        let metrics = shell.metrics.clone();
        tokio::spawn(crate::http::serve(listener, move |path| {
            let body = metrics.lock().expect("metrics").render();
            async move {
                match path.as_str() {
                    "/metrics" => ("200 OK", crate::http::PROMETHEUS, body),
                    _ => crate::http::not_found("try /metrics"),
                }
            }
        }));
    }
    let mut elector = leader::Elector::new(
        client,
        &opts.namespace,
        &opts.lease_name,
        &opts.identity,
        opts.lease_duration,
    );
    let mut term = signal(SignalKind::terminate()).expect("signal handler");
    let mut int = signal(SignalKind::interrupt()).expect("signal handler");
    info!(identity = %opts.identity, "waiting for the caches");
    let ready = async {
        let _ = shell.vips.wait_until_ready().await;
        let _ = shell.nodes.wait_until_ready().await;
        let _ = shell.configs.wait_until_ready().await;
        let _ = shell.pools.wait_until_ready().await;
        let _ = shell.services.wait_until_ready().await;
        let _ = shell.slices.wait_until_ready().await;
    };
    tokio::select! {
        _ = ready => {}
        _ = term.recv() => return Ok(()),
        _ = int.recv() => return Ok(()),
    }
    info!("caches ready");
    let mut lease_tick = tokio::time::interval(LEASE_RENEW);
    let mut resync = tokio::time::interval(RESYNC);
    let mut dirty = true;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let retry = async {
            match retry_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = notify.notified() => dirty = true,
            _ = lease_tick.tick() => {
                let was = elector.is_leader();
                let now = elector.tick().await;
                shell.metrics.lock().expect("metrics").leader = now;
                if now && !was {
                    dirty = true;
                }
            }
            _ = resync.tick() => dirty = true,
            _ = retry => { retry_at = None; dirty = true; }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
        if dirty && retry_at.is_none() && elector.is_leader() {
            let started = std::time::Instant::now();
            let result = shell.reconcile().await;
            let mut m = shell.metrics.lock().expect("metrics");
            m.reconciles += 1;
            m.last_reconcile_seconds = started.elapsed().as_secs_f64();
            match result {
                Ok(()) => dirty = false,
                Err(e) => {
                    m.reconcile_errors += 1;
                    error!(error = %e, "reconcile failed; retrying");
                    retry_at = Some(tokio::time::Instant::now() + RETRY);
                }
            }
        }
    }
    info!("stopping");
    elector.release().await;
    Ok(())
}

impl Shell {
    async fn read_secret(&self, r: &SecretKeyRef) -> Result<String, String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &r.namespace);
        let secret = api
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("cannot read Secret {}/{}: {e}", r.namespace, r.name))?
            .ok_or_else(|| format!("Secret {}/{} not found", r.namespace, r.name))?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|b| b.0.clone())
            .ok_or_else(|| format!("Secret {}/{} has no key {:?}", r.namespace, r.name, r.key))?;
        String::from_utf8(bytes).map_err(|_| {
            format!(
                "key {:?} of Secret {}/{} is not text",
                r.key, r.namespace, r.name
            )
        })
    }

    fn count_write(&self) {
        self.metrics.lock().expect("metrics").writes += 1;
    }

    async fn set_finalizers(&self, vip: &VirtualIP, finalizers: Vec<String>) -> kube::Result<()> {
        let api: Api<VirtualIP> = Api::all(self.client.clone());
        let patch = serde_json::json!({"metadata": {"finalizers": finalizers}});
        match api
            .patch(
                &vip.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
        self.count_write();
        Ok(())
    }

    async fn reconcile(&self) -> kube::Result<()> {
        let stored = self.vips.state();
        let nodes = self.nodes.state();
        let configs = self.configs.state();

        // Services first: their addresses become the pools' routers (VirtualIPs), written
        // before the VirtualIP side plans with them, so one pass carries a new Service's
        // address to the nodes.
        let lb = lb::plan(&lb::LbWorld {
            pools: &self.pools.state(),
            services: &self.services.state(),
            slices: &self.slices.state(),
            vips: &stored,
            nodes: &nodes,
            classless: self.classless,
            now: Timestamp::now(),
        });
        let vips = self.write_routers(&lb, &stored).await?;

        let mut secrets = BTreeMap::new();
        for r in plan::secret_refs(&vips) {
            let value = self.read_secret(&r).await;
            secrets.insert(r, value);
        }
        let mut plan = plan::plan(&World {
            vips: &vips,
            nodes: &nodes,
            configs: &configs,
            secrets: &secrets,
            now: Timestamp::now(),
        });
        let by_name: HashMap<String, &Arc<VirtualIP>> =
            vips.iter().map(|v| (v.name_any(), v)).collect();
        let find = |name: &str| by_name.get(name).copied();

        // Publish: each node's entries in objects of bounded size (the first named after
        // the node), each replaced whole when it differs. A merge patch replaces the list as
        // a whole and needs no resourceVersion: the agents' status writes to the same objects
        // never make it conflict.
        let config_api: Api<VirtualIPNodeConfig> = Api::all(self.client.clone());
        let current: HashMap<String, &Arc<VirtualIPNodeConfig>> =
            configs.iter().map(|c| (c.name_any(), c)).collect();
        let node_uid: HashMap<String, String> = nodes
            .iter()
            .map(|n| (n.name_any(), n.uid().unwrap_or_default()))
            .collect();
        let mut wanted: HashSet<String> = HashSet::new();
        let mut changed = Vec::new();
        for (node, entries) in std::mem::take(&mut plan.configs) {
            for (i, part) in plan::shard(entries).into_iter().enumerate() {
                let name = plan::shard_name(&node, i);
                wanted.insert(name.clone());
                let label = crate::api::node_label_value(&node);
                let same = current.get(&name).is_some_and(|c| {
                    c.spec.virtual_ips == part
                        && c.labels().get(crate::api::LABEL_NODE) == Some(&label)
                        && c.spec.node.as_deref() == Some(node.as_str())
                });
                if !same {
                    changed.push((
                        node.clone(),
                        name,
                        part,
                        current.contains_key(&plan::shard_name(&node, i)),
                    ));
                }
            }
        }
        let writes = futures::stream::iter(changed)
            .map(|(node, name, entries, exists)| {
                let config_api = config_api.clone();
                let owner = node_uid.get(&node).map(|uid| {
                    vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: node.clone(),
                        uid: uid.clone(),
                        ..Default::default()
                    }]
                });
                async move {
                    let labels = BTreeMap::from([(
                        crate::api::LABEL_NODE.to_string(),
                        crate::api::node_label_value(&node),
                    )]);
                    let result = if exists {
                        let patch = serde_json::json!({
                            "metadata": {"labels": labels},
                            "spec": {"node": node, "virtualIPs": entries},
                        });
                        config_api
                            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                    } else {
                        let mut obj = VirtualIPNodeConfig::new(
                            &name,
                            VirtualIPNodeConfigSpec {
                                node: Some(node.clone()),
                                virtual_ips: entries.clone(),
                            },
                        );
                        obj.metadata.labels = Some(labels);
                        obj.metadata.owner_references = owner;
                        config_api.create(&PostParams::default(), &obj).await
                    };
                    (name, entries.len(), result)
                }
            })
            .buffer_unordered(PARALLEL_WRITES)
            .collect::<Vec<_>>()
            .await;
        for (name, count, result) in writes {
            result?;
            info!(object = %name, virtual_ips = count, "configuration published");
            self.count_write();
        }
        for c in &configs {
            if !wanted.contains(&c.name_any()) {
                match config_api.delete(&c.name_any(), &Default::default()).await {
                    Ok(_) => {
                        info!(object = %c.name_any(), "configuration deleted (node gone, or fewer shards)")
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
        }

        // After publishing (the data plane goes first): an object deleted before its finalizer
        // is set simply leaves the configurations on the next pass.
        let finalizers = futures::stream::iter(&plan.add_finalizer)
            .map(|name| async move {
                let vip = find(name).expect("planned from vips");
                let mut f = vip.finalizers().to_vec();
                f.push(FINALIZER.into());
                self.set_finalizers(vip, f).await
            })
            .buffer_unordered(PARALLEL_WRITES)
            .collect::<Vec<_>>()
            .await;
        finalizers.into_iter().collect::<kube::Result<Vec<()>>>()?;

        // Status: the controller's fields only; each node's entry belongs to its agent.
        let vip_api: Api<VirtualIP> = Api::all(self.client.clone());
        let pp = PatchParams::apply(MANAGER).force();
        let mut phases: BTreeMap<String, u64> = BTreeMap::new();
        let mut todo = Vec::new();
        for (name, status) in &plan.statuses {
            if let Some(p) = status.phase {
                *phases.entry(format!("{p:?}")).or_default() += 1;
            }
            let Some(vip) = find(name) else { continue };
            let current = vip
                .status
                .as_ref()
                .map(plan::controller_part)
                .unwrap_or_default();
            if &current != status {
                todo.push((vip, status));
            }
        }
        let written = futures::stream::iter(todo)
            .map(|(vip, status)| {
                let vip_api = vip_api.clone();
                let pp = pp.clone();
                async move {
                    let patch = serde_json::json!({
                        "apiVersion": crate::api::API_VERSION,
                        "kind": crate::api::KIND,
                        "status": status,
                    });
                    let r = vip_api
                        .patch_status(&vip.name_any(), &pp, &Patch::Apply(&patch))
                        .await;
                    (vip, r)
                }
            })
            .buffer_unordered(PARALLEL_WRITES)
            .collect::<Vec<_>>()
            .await;
        let mut first_error = None;
        let mut events = Vec::new();
        for (vip, r) in written {
            match r {
                Ok(_) => {
                    self.count_write();
                    // Events only once the status saying the same is written.
                    for ev in plan.events.iter().filter(|e| e.vip == vip.name_any()) {
                        events.push(self.event(vip, ev));
                    }
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Err(e) = self.write_services(&lb, &mut events).await {
            first_error.get_or_insert(e);
        }
        if let Err(e) = self.write_pools(&lb).await {
            first_error.get_or_insert(e);
        }
        // Events are best effort and off the pipeline's path: the next pass does not wait.
        if !events.is_empty() {
            let client = self.client.clone();
            let metrics = self.metrics.clone();
            tokio::spawn(async move {
                let results = futures::stream::iter(events)
                    .map(|e| {
                        let api: Api<Event> = Api::namespaced(
                            client.clone(),
                            e.metadata.namespace.as_deref().unwrap_or(EVENT_NAMESPACE),
                        );
                        async move { api.create(&PostParams::default(), &e).await }
                    })
                    .buffer_unordered(PARALLEL_WRITES)
                    .collect::<Vec<_>>()
                    .await;
                for r in results {
                    match r {
                        Ok(_) => metrics.lock().expect("metrics").events += 1,
                        Err(e) => {
                            warn!(error = %crate::logging::kube_error(&e), "event not recorded")
                        }
                    }
                }
            });
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        self.metrics.lock().expect("metrics").phases = phases;

        for name in &plan.release {
            let vip = find(name).expect("planned from vips");
            info!(virtual_ip = %name, "released on every node: removing the finalizer");
            let f = vip
                .finalizers()
                .iter()
                .filter(|f| *f != FINALIZER)
                .cloned()
                .collect();
            self.set_finalizers(vip, f).await?;
        }
        Ok(())
    }

    /// The pools' routers as VirtualIPs (server-side apply: a field the plan drops is
    /// removed), and the ones no longer needed deleted (their finalizer holds them until every
    /// node has let go). Returns every VirtualIP as it is after the writes.
    async fn write_routers(
        &self,
        lb: &lb::LbPlan,
        stored: &[Arc<VirtualIP>],
    ) -> kube::Result<Vec<Arc<VirtualIP>>> {
        let api: Api<VirtualIP> = Api::all(self.client.clone());
        let pool_uid: HashMap<String, String> = self
            .pools
            .state()
            .iter()
            .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
            .collect();
        let mut out: BTreeMap<String, Arc<VirtualIP>> =
            stored.iter().map(|v| (v.name_any(), v.clone())).collect();
        let todo: Vec<(&String, &lb::Router)> = lb
            .routers
            .iter()
            .filter(|(name, r)| {
                out.get(*name)
                    .is_none_or(|v| v.spec != r.spec || v.labels().get(LABEL_POOL) != Some(&r.pool))
            })
            .collect();
        let pp = PatchParams::apply(MANAGER).force();
        let written = futures::stream::iter(todo)
            .map(|(name, r)| {
                let api = api.clone();
                let pp = pp.clone();
                let uid = pool_uid.get(&r.pool).cloned().unwrap_or_default();
                async move {
                    let patch = serde_json::json!({
                        "apiVersion": crate::api::API_VERSION,
                        "kind": crate::api::KIND,
                        "metadata": {
                            "name": name,
                            "labels": {LABEL_POOL: r.pool},
                            "ownerReferences": [{
                                "apiVersion": crate::api::API_VERSION,
                                "kind": "VirtualIPPool",
                                "name": r.pool,
                                "uid": uid,
                                "controller": true,
                            }],
                        },
                        "spec": r.spec,
                    });
                    (name, api.patch(name, &pp, &Patch::Apply(&patch)).await)
                }
            })
            .buffer_unordered(PARALLEL_WRITES)
            .collect::<Vec<_>>()
            .await;
        for (name, r) in written {
            let v = r?;
            info!(virtual_ip = %name, addresses = v.spec.addresses.len() + v.spec.excluded_addresses.len(), "pool router written");
            self.count_write();
            out.insert(name.clone(), Arc::new(v));
        }
        for v in stored {
            let Some(pool) = v.labels().get(LABEL_POOL) else {
                continue;
            };
            let name = v.name_any();
            if lb.frozen.contains(pool)
                || lb.routers.contains_key(&name)
                || v.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            match api.delete(&name, &Default::default()).await {
                Ok(either) => {
                    info!(virtual_ip = %name, "pool router no longer needed: deleted");
                    self.count_write();
                    match either.left() {
                        Some(obj) => out.insert(name, Arc::new(obj)),
                        None => out.remove(&name),
                    };
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    out.remove(&name);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out.into_values().collect())
    }

    /// Each Service's addresses and our condition, where they differ from what is written;
    /// the planned Events of each written Service go to `events`.
    async fn write_services(&self, lb: &lb::LbPlan, events: &mut Vec<Event>) -> kube::Result<()> {
        let services = self.services.state();
        let by_key: HashMap<(String, String), &Arc<Service>> = services
            .iter()
            .map(|s| ((s.namespace().unwrap_or_default(), s.name_any()), s))
            .collect();
        let mut todo = Vec::new();
        for (key, o) in &lb.services {
            let Some(svc) = by_key.get(key) else { continue };
            let cur = lb::current_condition(svc);
            let same_condition = match (cur, &o.condition) {
                (None, None) => true,
                (Some(a), Some(b)) => {
                    a.status == b.status
                        && a.reason == b.reason
                        && a.message == b.message
                        && a.observed_generation == b.observed_generation
                }
                _ => false,
            };
            if same_condition && lb::current_ingress(svc) == o.ingress {
                continue;
            }
            let mut conditions: Vec<serde_json::Value> = svc
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .filter(|c| c.type_ != crate::api::CONDITION_ANNOUNCED)
                .map(|c| serde_json::to_value(c).expect("condition serializes"))
                .collect();
            if let Some(c) = &o.condition {
                conditions.push(serde_json::to_value(c).expect("condition serializes"));
            }
            let load_balancer = if o.ingress.is_empty() {
                serde_json::json!({"ingress": null})
            } else {
                serde_json::json!({"ingress": o.ingress.iter().map(|ip| serde_json::json!({"ip": ip.to_string(), "ipMode": "VIP"})).collect::<Vec<_>>()})
            };
            let patch = serde_json::json!({"status": {"loadBalancer": load_balancer, "conditions": conditions}});
            todo.push((*svc, o, patch));
        }
        let written = futures::stream::iter(todo)
            .map(|(svc, o, patch)| {
                let api: Api<Service> =
                    Api::namespaced(self.client.clone(), &svc.namespace().unwrap_or_default());
                async move {
                    let r = api
                        .patch_status(
                            &svc.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await;
                    (svc, o, r)
                }
            })
            .buffer_unordered(PARALLEL_WRITES)
            .collect::<Vec<_>>()
            .await;
        let mut first_error = None;
        for (svc, o, r) in written {
            match r {
                Ok(_) => {
                    self.count_write();
                    for (warning, reason, note) in &o.events {
                        events.push(self.event_on(
                            svc.object_ref(&()),
                            svc.namespace(),
                            *warning,
                            reason,
                            note,
                        ));
                    }
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn write_pools(&self, lb: &lb::LbPlan) -> kube::Result<()> {
        let api: Api<VirtualIPPool> = Api::all(self.client.clone());
        let pp = PatchParams::apply(MANAGER).force();
        for p in self.pools.state() {
            let name = p.name_any();
            let Some(status) = lb.pools.get(&name) else {
                continue;
            };
            if p.status.as_ref() == Some(status) {
                continue;
            }
            let patch = serde_json::json!({
                "apiVersion": crate::api::API_VERSION,
                "kind": "VirtualIPPool",
                "status": status,
            });
            match api.patch_status(&name, &pp, &Patch::Apply(&patch)).await {
                Ok(_) => self.count_write(),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn event_on(
        &self,
        regarding: k8s_openapi::api::core::v1::ObjectReference,
        namespace: Option<String>,
        warning: bool,
        reason: &str,
        note: &str,
    ) -> Event {
        info!(object = %format!("{}/{}", regarding.namespace.as_deref().unwrap_or(""), regarding.name.as_deref().unwrap_or("")), reason, note = %note, "event");
        let now = Timestamp::now();
        Event {
            metadata: kube::api::ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or("object"),
                    now.as_nanosecond()
                )),
                namespace: Some(namespace.unwrap_or_else(|| EVENT_NAMESPACE.into())),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            reason: Some(reason.into()),
            note: Some(note.chars().take(1024).collect()),
            action: Some("Allocate".into()),
            regarding: Some(regarding),
            reporting_controller: Some(format!("kube-vrrp.io/{MANAGER}")),
            reporting_instance: Some(self.identity.chars().take(128).collect()),
            ..Default::default()
        }
    }

    /// One `events.k8s.io/v1` Event per master change. (kube-runtime's Recorder folds
    /// events of the same reason into one series and keeps the first note, which would hide
    /// every reason after the first.)
    fn event(&self, vip: &VirtualIP, ev: &plan::PlannedEvent) -> Event {
        info!(virtual_ip = %ev.vip, reason = ev.reason, note = %ev.note, "event");
        let now = Timestamp::now();
        Event {
            metadata: kube::api::ObjectMeta {
                name: Some(format!("{}.{:x}", ev.vip, now.as_nanosecond())),
                namespace: Some(EVENT_NAMESPACE.into()),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(if ev.warning { "Warning" } else { "Normal" }.into()),
            reason: Some(ev.reason.into()),
            note: Some(ev.note.chars().take(1024).collect()),
            action: Some("Elect".into()),
            regarding: Some(vip.object_ref(&())),
            reporting_controller: Some(format!("kube-vrrp.io/{MANAGER}")),
            reporting_instance: Some(self.identity.chars().take(128).collect()),
            ..Default::default()
        }
    }
}
