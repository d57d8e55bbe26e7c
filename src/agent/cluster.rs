//! The agent's two links to the Kubernetes API in cluster mode, both off the VRRP path:
//!
//! * a watcher of this node's `VirtualIPNodeConfig` (resolved by the controller), which feeds
//!   the event loop over a channel;
//! * a status writer, which the event loop feeds through a `watch` channel (it never blocks:
//!   the newest report replaces an unsent one, so bursts coalesce) and which applies this node's
//!   entry of each `VirtualIP`'s `status.nodes[]` by server-side apply under its own field
//!   manager, plus its registration in the configuration's status. Failed writes are retried
//!   with backoff; after the watch had to relist (an API outage) every entry is written again.
//!
//! When the API is away, VRRP goes on with the last configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::api::{NodeStatus, VirtualIP, VirtualIPNodeConfig};

const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Concurrent status writes.
const PARALLEL_WRITES: usize = 8;

/// What the event loop hears from the API.
#[derive(Debug)]
pub struct ConfigUpdate {
    /// This node's configuration; `None`: there is none (nothing to run).
    pub config: Option<VirtualIPNodeConfig>,
    /// The watch (re)listed: the API may have missed writes since.
    pub relisted: bool,
}

/// What the event loop tells the API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// VirtualIP name → this node's entry.
    pub entries: BTreeMap<String, NodeStatus>,
    /// The configuration generation applied (registration in the config's status).
    pub config_generation: Option<i64>,
    /// Bumped on every relist: everything is written again.
    pub epoch: u64,
    /// Where this node's advertisements come from (registration).
    pub addresses: Vec<String>,
}

/// When this process started, as the registration says.
fn started_time() -> &'static str {
    static STARTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STARTED.get_or_init(|| k8s_openapi::jiff::Timestamp::now().to_string())
}

pub fn field_manager(node: &str) -> String {
    format!("kube-vrrp-agent-{node}")
}

/// Watches this node's configuration objects (`<node>` and any `<node>.shard-N`, found by
/// the `kube-vrrp.io/node` label) and hands on their union as one configuration with the
/// first object's metadata.
pub fn watch_config(client: Client, node: String) -> mpsc::Receiver<ConfigUpdate> {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let api: Api<VirtualIPNodeConfig> = Api::all(client);
        let cfg = watcher::Config::default().labels(&format!(
            "{}={}",
            crate::api::LABEL_NODE,
            crate::api::node_label_value(&node)
        ));
        let mut stream = std::pin::pin!(watcher(api, cfg).default_backoff());
        let mut objects: BTreeMap<String, VirtualIPNodeConfig> = BTreeMap::new();
        let mut listing: Option<BTreeMap<String, VirtualIPNodeConfig>> = None;
        let mine = |c: &VirtualIPNodeConfig| c.spec.node.as_deref().is_none_or(|n| n == node);
        while let Some(ev) = stream.next().await {
            let relisted = match ev {
                Ok(watcher::Event::Init) => {
                    listing = Some(BTreeMap::new());
                    continue;
                }
                Ok(watcher::Event::InitApply(c)) => {
                    if mine(&c) {
                        listing.get_or_insert_default().insert(c.name_any(), c);
                    }
                    continue;
                }
                Ok(watcher::Event::InitDone) => {
                    objects = listing.take().unwrap_or_default();
                    true
                }
                Ok(watcher::Event::Apply(c)) => {
                    if !mine(&c) {
                        continue;
                    }
                    objects.insert(c.name_any(), c);
                    false
                }
                Ok(watcher::Event::Delete(c)) => {
                    objects.remove(&c.name_any());
                    false
                }
                Err(e) => {
                    warn!(error = %crate::logging::watch_error(&e), "configuration watch failed; VRRP goes on, retrying");
                    continue;
                }
            };
            let update = ConfigUpdate {
                config: merge(&node, &objects),
                relisted,
            };
            if tx.send(update).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// The union of a node's configuration objects: the first object (named after the node)
/// gives the metadata and status; the entries of all of them, sorted by name.
fn merge(
    node: &str,
    objects: &BTreeMap<String, VirtualIPNodeConfig>,
) -> Option<VirtualIPNodeConfig> {
    if objects.is_empty() {
        return None;
    }
    if objects.len() == 1 {
        return objects.values().next().cloned();
    }
    let mut out = objects
        .get(node)
        .or_else(|| objects.values().next())
        .cloned()
        .expect("not empty");
    out.spec.virtual_ips = objects
        .values()
        .flat_map(|c| c.spec.virtual_ips.iter().cloned())
        .collect();
    out.spec.virtual_ips.sort_by(|a, b| a.name.cmp(&b.name));
    Some(out)
}

/// Writes reports until the sender is dropped, then makes one last attempt and returns. Writes
/// are pipelined: each entry goes out as soon as it changes, up to `PARALLEL_WRITES` at once,
/// always with the newest value, so one slow write never holds back the others. The
/// registration is renewed every `heartbeat`, so the controller can tell a silent agent.
pub async fn write_status(
    client: Client,
    node: String,
    mut rx: watch::Receiver<Report>,
    heartbeat: Duration,
) {
    let vips: Api<VirtualIP> = Api::all(client.clone());
    let configs: Api<VirtualIPNodeConfig> = Api::all(client);
    let manager = field_manager(&node);
    let pp = PatchParams::apply(&manager).force();
    // What the API holds, as far as we know.
    let mut written: BTreeMap<String, NodeStatus> = BTreeMap::new();
    let mut registered: Option<(Option<i64>, Vec<String>)> = None;
    let mut epoch = 0;
    let mut flying: std::collections::BTreeSet<Option<String>> = Default::default();
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut backoff = Duration::from_millis(200);
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut closing = false;
    let mut closing_failures = 0;
    let mut beat = tokio::time::interval(heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let report = rx.borrow_and_update().clone();
        if report.epoch != epoch {
            epoch = report.epoch;
            written.clear();
            registered = None;
        }
        if retry_at.is_none() && closing_failures == 0 {
            // The registration first, then changed entries, then withdrawn ones.
            let mut todo: Vec<(Option<String>, Option<NodeStatus>)> = Vec::new();
            if registered != Some((report.config_generation, report.addresses.clone())) {
                todo.push((None, None));
            }
            todo.extend(
                report
                    .entries
                    .iter()
                    .filter(|(k, v)| written.get(*k) != Some(v))
                    .map(|(k, v)| (Some(k.clone()), Some(v.clone()))),
            );
            todo.extend(
                written
                    .keys()
                    .filter(|k| !report.entries.contains_key(*k))
                    .map(|k| (Some(k.clone()), None)),
            );
            for (key, entry) in todo {
                if flying.len() >= PARALLEL_WRITES {
                    break;
                }
                if !flying.insert(key.clone()) {
                    continue; // its newest value goes out when the write in flight returns
                }
                let (vips, configs, pp, node) =
                    (vips.clone(), configs.clone(), pp.clone(), node.clone());
                let generation = (report.config_generation, report.addresses.clone());
                in_flight.push(async move {
                    let result = match &key {
                        None => {
                            let patch = serde_json::json!({
                                "apiVersion": crate::api::API_VERSION,
                                "kind": "VirtualIPNodeConfig",
                                "status": {
                                    "agent": format!("kube-vrrp/{}", env!("CARGO_PKG_VERSION")),
                                    "observedGeneration": generation.0,
                                    "heartbeatTime": k8s_openapi::jiff::Timestamp::now().to_string(),
                                    "heartbeatSeconds": heartbeat.as_secs().max(1),
                                    "startedTime": started_time(),
                                    "addresses": generation.1,
                                },
                            });
                            configs
                                .patch_status(&node, &pp, &Patch::Apply(&patch))
                                .await
                                .map(|_| ())
                        }
                        Some(name) => {
                            // Applying no entry withdraws the one this manager owned.
                            let status = match &entry {
                                Some(e) => serde_json::json!({"nodes": [e]}),
                                None => serde_json::json!({}),
                            };
                            let patch = serde_json::json!({
                                "apiVersion": crate::api::API_VERSION,
                                "kind": crate::api::KIND,
                                "status": status,
                            });
                            match vips.patch_status(name, &pp, &Patch::Apply(&patch)).await {
                                Ok(_) => Ok(()),
                                // Gone: nothing left to report on.
                                Err(e) if crate::k8s::is_not_found(&e) => Ok(()),
                                Err(e) => Err(e),
                            }
                        }
                    };
                    (key, entry, result, generation)
                });
            }
        }
        if closing && (in_flight.is_empty()) {
            if closing_failures > 0 {
                warn!(failed = closing_failures, "final status not fully written");
            } else {
                info!("final status written");
            }
            return;
        }
        let retry = async {
            match retry_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some((key, entry, result, generation)) = in_flight.next(), if !in_flight.is_empty() => {
                flying.remove(&key);
                match result {
                    Ok(()) => {
                        backoff = Duration::from_millis(200);
                        match (key, entry) {
                            (None, _) => registered = Some(generation),
                            (Some(name), Some(e)) => { written.insert(name, e); }
                            (Some(name), None) => { written.remove(&name); }
                        }
                    }
                    Err(e) => {
                        if closing {
                            closing_failures += 1;
                        } else if retry_at.is_none() {
                            warn!(what = %key.as_deref().unwrap_or("registration"), error = %crate::logging::kube_error(&e),
                                  "status not written; retrying");
                            retry_at = Some(tokio::time::Instant::now() + backoff);
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                }
            }
            changed = rx.changed(), if !closing => {
                if changed.is_err() {
                    // One last attempt at once, backoff or not.
                    closing = true;
                    retry_at = None;
                }
            }
            _ = retry => retry_at = None,
            _ = beat.tick(), if !closing => registered = None,
        }
    }
}
