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
pub(crate) struct ConfigUpdate {
    /// This node's configuration; `None`: there is none (nothing to run).
    pub config: Option<VirtualIPNodeConfig>,
    /// The watch (re)listed: the API may have missed writes since.
    pub relisted: bool,
}

/// What the event loop tells the API.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Report {
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

pub(crate) fn field_manager(node: &str) -> String {
    format!("kube-vrrp-agent-{node}")
}

/// Watches this node's configuration objects (`<node>` and any `<node>.shard-N`, found by
/// the `kube-vrrp.io/node` label) and hands on their union as one configuration with the
/// first object's metadata.
pub(crate) fn watch_config(client: Client, node: String) -> mpsc::Receiver<ConfigUpdate> {
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

/// A registration as written: the configuration generation applied and the node's addresses.
type Registration = (Option<i64>, Vec<String>);

/// One write: `None` is the registration, `Some(name)` that VirtualIP's entry (with no
/// entry: withdraw it).
type Write = (Option<String>, Option<NodeStatus>);

/// Writes reports until the sender is dropped, then makes one last attempt and returns. Writes
/// are pipelined: each entry goes out as soon as it changes, up to `PARALLEL_WRITES` at once,
/// always with the newest value, so one slow write never holds back the others. The
/// registration is renewed every `heartbeat`, so the controller can tell a silent agent.
pub(crate) async fn write_status(
    client: Client,
    node: String,
    mut rx: watch::Receiver<Report>,
    heartbeat: Duration,
) {
    let writer = StatusWriter {
        vips: Api::all(client.clone()),
        configs: Api::all(client),
        pp: PatchParams::apply(&field_manager(&node)).force(),
        node,
        heartbeat,
    };
    // What the API holds, as far as we know.
    let mut written: BTreeMap<String, NodeStatus> = BTreeMap::new();
    let mut registered: Option<Registration> = None;
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
            for (key, entry) in pending_writes(&report, &written, registered.as_ref()) {
                if flying.len() >= PARALLEL_WRITES {
                    break;
                }
                if !flying.insert(key.clone()) {
                    continue; // its newest value goes out when the write in flight returns
                }
                let writer = writer.clone();
                let generation = (report.config_generation, report.addresses.clone());
                in_flight.push(async move {
                    let result = writer
                        .write(key.as_deref(), entry.as_ref(), &generation)
                        .await;
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
        let retry = sleep_until(retry_at);
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

/// Sleeps until `at`; never returns without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// What `report` needs written, given what the API holds: the registration first (when it
/// changed or is due), then changed entries, then withdrawn ones.
fn pending_writes(
    report: &Report,
    written: &BTreeMap<String, NodeStatus>,
    registered: Option<&Registration>,
) -> Vec<Write> {
    let mut todo: Vec<Write> = Vec::new();
    if registered != Some(&(report.config_generation, report.addresses.clone())) {
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
    todo
}

/// The registration in the configuration's status, as applied at `now`.
fn registration_patch(
    generation: &Registration,
    heartbeat: Duration,
    now: String,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": crate::api::API_VERSION,
        "kind": "VirtualIPNodeConfig",
        "status": {
            "agent": format!("kube-vrrp/{}", env!("CARGO_PKG_VERSION")),
            "observedGeneration": generation.0,
            "heartbeatTime": now,
            "heartbeatSeconds": heartbeat.as_secs().max(1),
            "startedTime": started_time(),
            "addresses": generation.1,
        },
    })
}

/// This node's entry of a VirtualIP's `status.nodes[]`: applying no entry withdraws the one
/// this manager owned.
fn entry_patch(entry: Option<&NodeStatus>) -> serde_json::Value {
    let status = match entry {
        Some(e) => serde_json::json!({"nodes": [e]}),
        None => serde_json::json!({}),
    };
    serde_json::json!({
        "apiVersion": crate::api::API_VERSION,
        "kind": crate::api::KIND,
        "status": status,
    })
}

/// What every status write needs.
#[derive(Clone)]
struct StatusWriter {
    vips: Api<VirtualIP>,
    configs: Api<VirtualIPNodeConfig>,
    pp: PatchParams,
    node: String,
    heartbeat: Duration,
}

impl StatusWriter {
    /// One write (see [`Write`]); a VirtualIP that is gone needs no entry.
    async fn write(
        &self,
        key: Option<&str>,
        entry: Option<&NodeStatus>,
        generation: &Registration,
    ) -> Result<(), kube::Error> {
        match key {
            None => {
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                let patch = registration_patch(generation, self.heartbeat, now);
                self.configs
                    .patch_status(&self.node, &self.pp, &Patch::Apply(&patch))
                    .await
                    .map(|_| ())
            }
            Some(name) => {
                let patch = entry_patch(entry);
                match self
                    .vips
                    .patch_status(name, &self.pp, &Patch::Apply(&patch))
                    .await
                {
                    Ok(_) => Ok(()),
                    // Gone: nothing left to report on.
                    Err(e) if crate::k8s::is_not_found(&e) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(node: &str, priority: u8) -> NodeStatus {
        serde_json::from_value(serde_json::json!({"node": node, "priority": priority})).unwrap()
    }

    fn report(entries: &[(&str, u8)]) -> Report {
        Report {
            entries: entries
                .iter()
                .map(|(vip, p)| (vip.to_string(), entry("n1", *p)))
                .collect(),
            config_generation: Some(3),
            epoch: 0,
            addresses: vec!["10.0.0.1".into()],
        }
    }

    #[test]
    fn the_registration_goes_first_then_changed_entries_then_withdrawn_ones() {
        let r = report(&[("a", 100), ("b", 100)]);
        let written = BTreeMap::from([
            ("a".to_string(), entry("n1", 100)),
            ("b".to_string(), entry("n1", 90)),
            ("gone".to_string(), entry("n1", 100)),
        ]);
        let registration: Registration = (Some(3), vec!["10.0.0.1".into()]);
        assert_eq!(
            pending_writes(&r, &written, Some(&registration)),
            vec![
                (Some("b".to_string()), Some(entry("n1", 100))),
                (Some("gone".to_string()), None),
            ]
        );
        let older: Registration = (Some(2), vec!["10.0.0.1".into()]);
        let todo = pending_writes(&r, &BTreeMap::new(), Some(&older));
        assert_eq!(
            todo[0],
            (None, None),
            "a new generation is registered first"
        );
        assert_eq!(todo.len(), 3);
        assert_eq!(pending_writes(&r, &BTreeMap::new(), None)[0], (None, None));
        let written: BTreeMap<_, _> = r.entries.clone();
        assert!(pending_writes(&r, &written, Some(&registration)).is_empty());
    }

    #[test]
    fn an_entry_is_applied_alone_and_withdrawn_by_applying_none() {
        let e = entry("n1", 100);
        assert_eq!(
            entry_patch(Some(&e)),
            serde_json::json!({
                "apiVersion": "kube-vrrp.io/v1alpha1",
                "kind": "VirtualIP",
                "status": {"nodes": [{"node": "n1", "priority": 100}]},
            })
        );
        assert_eq!(entry_patch(None)["status"], serde_json::json!({}));
    }

    #[test]
    fn the_registration_says_generation_addresses_and_heartbeat() {
        let p = registration_patch(
            &(Some(7), vec!["10.0.0.1".into()]),
            Duration::from_millis(500),
            "2026-01-01T00:00:00Z".into(),
        );
        assert_eq!(p["kind"], "VirtualIPNodeConfig");
        let s = &p["status"];
        assert_eq!(s["observedGeneration"], 7);
        assert_eq!(s["heartbeatTime"], "2026-01-01T00:00:00Z");
        assert_eq!(s["heartbeatSeconds"], 1, "at least a second");
        assert_eq!(s["addresses"], serde_json::json!(["10.0.0.1"]));
    }
}
