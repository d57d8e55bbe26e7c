//! `kube-vrrp controller`: watches `VirtualIP`s, `Node`s and the per-node configurations, and
//! on any change runs the pipeline validate → resolve → publish → status ([`plan::plan`], pure)
//! over the whole cluster at once — VRIDs are unique per segment across all objects, so one
//! object cannot be resolved alone. The shell here only compares the plan with what the API
//! holds and writes the difference: nothing is written when nothing changed, so a restarted
//! controller moves no VIP. Two replicas elect one leader on a Lease; the other keeps its caches
//! warm.

pub(crate) mod conditions;
pub(crate) mod lb;
pub(crate) mod leader;
mod metrics;
pub(crate) mod plan;
pub(crate) mod resolve;
mod writes;

/// The controller's two pure planners, the one part of it another crate uses: e2e's
/// scale-bench times a whole pass (Services → routers, then every node's entries) at
/// thousands of Services and hundreds of nodes.
pub mod planners {
    pub use super::lb::{LbPlan, LbWorld, Router, ServiceOutcome, plan as plan_services};
    pub use super::plan::{FINALIZER, Plan, World, controller_part, plan, shard, shard_name};
}

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::api::{SecretKeyRef, VirtualIP, VirtualIPNodeConfig, VirtualIPPool};
use metrics::Metrics;
use plan::{SecretValue, World};

/// The field manager of everything the controller writes.
pub const MANAGER: &str = "kube-vrrp-controller";
const LEASE_RENEW: Duration = Duration::from_secs(2);
/// A pass without a change writes nothing; it notices silent agents and rereads Secrets.
const RESYNC: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_secs(1);

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

/// What a pass reads (the watched stores) and writes through (the client): the controller's
/// connection to the cluster.
struct Context {
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
    /// What each VirtualIP's status last announced, as written by this controller.
    announced: Mutex<BTreeMap<String, plan::Announced>>,
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
    let ctx = Context {
        vips: mirror(Api::all(client.clone()), notify.clone()),
        nodes: mirror(Api::all(client.clone()), notify.clone()),
        configs: mirror(Api::all(client.clone()), notify.clone()),
        pools: mirror(Api::all(client.clone()), notify.clone()),
        services: mirror(Api::all(client.clone()), notify.clone()),
        slices: mirror(Api::all(client.clone()), notify.clone()),
        classless: opts.classless,
        identity: opts.identity.clone(),
        metrics: Arc::default(),
        announced: Mutex::default(),
        client: client.clone(),
    };
    if let Some(listener) = listener {
        let metrics = ctx.metrics.clone();
        tokio::spawn(crate::http::serve(listener, move |path| {
            let body = metrics.lock().expect("metrics").render();
            async move {
                match path.as_str() {
                    "/metrics" => ("200 OK", crate::http::PROMETHEUS, body),
                    // The process answers: its loops are tokio tasks of this runtime.
                    "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
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
        let _ = ctx.vips.wait_until_ready().await;
        let _ = ctx.nodes.wait_until_ready().await;
        let _ = ctx.configs.wait_until_ready().await;
        let _ = ctx.pools.wait_until_ready().await;
        let _ = ctx.services.wait_until_ready().await;
        let _ = ctx.slices.wait_until_ready().await;
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
                ctx.metrics.lock().expect("metrics").leader = now;
                if now && !was {
                    // Another leader may have announced anything meanwhile: the statuses
                    // as cached are the record from here.
                    ctx.announced.lock().expect("announced").clear();
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
            let result = ctx.reconcile().await;
            let mut m = ctx.metrics.lock().expect("metrics");
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

impl Context {
    async fn read_secret(&self, r: &SecretKeyRef) -> SecretValue {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &r.namespace);
        let secret = api
            .get_opt(&r.name)
            .await
            .map_err(|e| match e {
                kube::Error::Api(s) if s.code == 403 => format!(
                    "the controller may not read Secrets in namespace {:?} (Secret {}/{}): \
                     add {:?} to the chart's controller.secretNamespaces, or move the Secret",
                    r.namespace, r.namespace, r.name, r.namespace
                ),
                e => format!("cannot read Secret {}/{}: {e}", r.namespace, r.name),
            })?
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

    /// The Secret keys the objects name, each read once.
    async fn read_secrets(&self, vips: &[Arc<VirtualIP>]) -> BTreeMap<SecretKeyRef, SecretValue> {
        let mut secrets = BTreeMap::new();
        for r in plan::secret_refs(vips) {
            let value = self.read_secret(&r).await;
            secrets.insert(r, value);
        }
        secrets
    }

    /// One pass of the pipeline: Services and pools ([`lb::plan`]) → pool routers →
    /// Secrets → [`plan::plan`] → configurations → finalizers → statuses → Events → released
    /// finalizers. Every step writes only what differs (see [`writes`]).
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

        let secrets = self.read_secrets(&vips).await;
        let announced = self.announced.lock().expect("announced").clone();
        let mut plan = plan::plan(&World {
            vips: &vips,
            nodes: &nodes,
            configs: &configs,
            secrets: &secrets,
            announced: &announced,
            now: Timestamp::now(),
        });
        let find: writes::ByName = vips.iter().map(|v| (v.name_any(), v)).collect();

        self.publish(std::mem::take(&mut plan.configs), &configs, &nodes)
            .await?;
        // After publishing (the data plane goes first): an object deleted before its finalizer
        // is set simply leaves the configurations on the next pass. The finalizer patch is
        // guarded by a `test` of the cached list, so a stale cache fails it: the pass still
        // writes every status and fails afterwards, and the next pass retries.
        let finalizers = self.add_finalizers(&plan.add_finalizer, &find).await.err();

        let mut events = Vec::new();
        let mut first_error = self.write_statuses(&plan, &find, &mut events).await.err();
        if let Some(e) = finalizers {
            first_error.get_or_insert(e);
        }
        if let Err(e) = self.write_services(&lb, &mut events).await {
            first_error.get_or_insert(e);
        }
        if let Err(e) = self.write_pools(&lb).await {
            first_error.get_or_insert(e);
        }
        self.emit(events);
        if let Some(e) = first_error {
            return Err(e);
        }
        self.metrics.lock().expect("metrics").phases = metrics::phases(&plan.statuses);

        for name in &plan.release {
            let vip = find[name.as_str()];
            info!(virtual_ip = %name, "released on every node: removing the finalizer");
            self.remove_finalizer(vip).await?;
        }
        Ok(())
    }
}
