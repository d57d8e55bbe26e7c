//! `kube-vrrp controller`: watches `VirtualIP`s, `Node`s and the per-node configurations, and
//! on any change runs the pipeline validate → resolve → publish → status ([`plan::plan`], pure)
//! over the whole cluster at once — VRIDs are unique per segment across all objects, so one
//! object cannot be resolved alone. The shell here only compares the plan with what the API
//! holds and writes the difference: nothing is written when nothing changed, so a restarted
//! controller moves no VIP. Two replicas elect one leader on a Lease; the other keeps its caches
//! warm.

pub mod leader;
pub mod plan;
pub mod resolve;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Secret};
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

use crate::api::{SecretKeyRef, VirtualIP, VirtualIPNodeConfig, VirtualIPNodeConfigSpec};
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
        let vips = self.vips.state();
        let nodes = self.nodes.state();
        let configs = self.configs.state();
        let mut secrets = BTreeMap::new();
        for r in plan::secret_refs(&vips) {
            let value = self.read_secret(&r).await;
            secrets.insert(r, value);
        }
        let plan = plan::plan(&World {
            vips: &vips,
            nodes: &nodes,
            configs: &configs,
            secrets: &secrets,
            now: Timestamp::now(),
        });
        let find = |name: &str| vips.iter().find(|v| v.name_any() == name);

        // Publish: one configuration per node, replaced whole when it differs. A merge patch
        // replaces the list as a whole and needs no resourceVersion: the agents' status writes
        // to the same objects never make it conflict.
        let config_api: Api<VirtualIPNodeConfig> = Api::all(self.client.clone());
        let changed: Vec<(&String, &Vec<crate::api::NodeVirtualIP>, bool)> = plan
            .configs
            .iter()
            .filter_map(|(node, entries)| {
                let current = configs.iter().find(|c| &c.name_any() == node);
                match current {
                    Some(c) if &c.spec.virtual_ips == entries => None,
                    Some(_) => Some((node, entries, true)),
                    None => Some((node, entries, false)),
                }
            })
            .collect();
        let writes = futures::stream::iter(changed)
            .map(|(node, entries, exists)| {
                let config_api = config_api.clone();
                let owner = nodes.iter().find(|n| &n.name_any() == node).map(|n| {
                    vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: node.clone(),
                        uid: n.uid().unwrap_or_default(),
                        ..Default::default()
                    }]
                });
                async move {
                    let result = if exists {
                        let patch = serde_json::json!({"spec": {"virtualIPs": entries}});
                        config_api
                            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                    } else {
                        let mut obj = VirtualIPNodeConfig::new(
                            node,
                            VirtualIPNodeConfigSpec {
                                virtual_ips: entries.clone(),
                            },
                        );
                        obj.metadata.owner_references = owner;
                        config_api.create(&PostParams::default(), &obj).await
                    };
                    (node, entries.len(), result)
                }
            })
            .buffer_unordered(PARALLEL_WRITES)
            .collect::<Vec<_>>()
            .await;
        for (node, count, result) in writes {
            result?;
            info!(node = %node, virtual_ips = count, "configuration published");
            self.count_write();
        }
        for c in &configs {
            if !plan.configs.contains_key(&c.name_any()) {
                match config_api.delete(&c.name_any(), &Default::default()).await {
                    Ok(_) => info!(node = %c.name_any(), "node gone: configuration deleted"),
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
        // Events are best effort and off the pipeline's path: the next pass does not wait.
        if !events.is_empty() {
            let api: Api<Event> = Api::namespaced(self.client.clone(), EVENT_NAMESPACE);
            let metrics = self.metrics.clone();
            tokio::spawn(async move {
                let results = futures::stream::iter(events)
                    .map(|e| {
                        let api = api.clone();
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
