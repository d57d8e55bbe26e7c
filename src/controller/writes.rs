//! Every Kubernetes write of the controller: pool routers, per-node configurations, the
//! finalizer, VirtualIP / Service / pool statuses and Events. Each write compares the plan
//! with what the API holds and writes only the difference; a 404 means the object is gone
//! and nothing is left to do. The decisions (what differs, how an Event, an owner reference
//! or a finalizer patch looks) are pure functions below the shell, with their tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use tracing::{info, warn};

use super::conditions::events as kinds;
use super::metrics::Metrics;
use super::plan::{self, FINALIZER, Plan};
use super::{Context, MANAGER, lb};
use crate::api::{
    LABEL_NODE, LABEL_POOL, VirtualIP, VirtualIPNodeConfig, VirtualIPNodeConfigSpec, VirtualIPPool,
};
use crate::k8s::is_not_found;

/// VirtualIPs are cluster-scoped: their Events go here (as for Nodes).
const EVENT_NAMESPACE: &str = "default";
/// Concurrent writes within one pass.
const PARALLEL_WRITES: usize = 8;

/// The VirtualIPs by name, as the pass sees them.
pub(super) type ByName<'a> = HashMap<String, &'a Arc<VirtualIP>>;

/// What an Event says.
#[derive(Debug, Clone, Copy)]
pub(super) struct EventNote<'a> {
    pub(super) warning: bool,
    pub(super) reason: &'a str,
    pub(super) note: &'a str,
    /// [`kinds::ELECT`] or [`kinds::ALLOCATE`].
    pub(super) action: &'static str,
}

/// One `events.k8s.io/v1` Event, named after its object and the moment. (kube-runtime's
/// Recorder folds events of the same reason into one series and keeps the first note, which
/// would hide every reason after the first.)
pub(super) fn event(
    regarding: ObjectReference,
    namespace: Option<String>,
    what: EventNote,
    identity: &str,
    now: Timestamp,
) -> Event {
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
        type_: Some(
            if what.warning {
                kinds::WARNING
            } else {
                kinds::NORMAL
            }
            .into(),
        ),
        reason: Some(what.reason.into()),
        note: Some(what.note.chars().take(1024).collect()),
        action: Some(what.action.into()),
        regarding: Some(regarding),
        reporting_controller: Some(format!("kube-vrrp.io/{MANAGER}")),
        reporting_instance: Some(identity.chars().take(128).collect()),
        ..Default::default()
    }
}

/// An owner reference; `controller` marks the owner that manages the object.
pub(super) fn owner_reference(
    api_version: &str,
    kind: &str,
    name: &str,
    uid: &str,
    controller: bool,
) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: controller.then_some(true),
        ..Default::default()
    }
}

/// The JSON patch that adds our finalizer, guarded by a `test` of the list the cache holds
/// (as kube-runtime's finalizer does): if another controller changed the list meanwhile, the
/// API server rejects the patch and the next pass retries with the list as it is.
pub(super) fn add_finalizer_patch(current: Option<&Vec<String>>) -> serde_json::Value {
    let add = match current {
        Some(f) if !f.is_empty() => {
            serde_json::json!({"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER})
        }
        _ => serde_json::json!({"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}),
    };
    serde_json::json!([
        {"op": "test", "path": "/metadata/finalizers", "value": current},
        add,
    ])
}

/// The JSON patch that removes our finalizer where the cache holds it, guarded by a `test`
/// that it is still there: we fail instead of deleting another controller's finalizer.
pub(super) fn remove_finalizer_patch(current: &[String]) -> Option<serde_json::Value> {
    let i = current.iter().position(|f| f == FINALIZER)?;
    let path = format!("/metadata/finalizers/{i}");
    Some(serde_json::json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]))
}

/// Whether a configuration object already holds a node's part as planned.
pub(super) fn config_up_to_date(
    current: &VirtualIPNodeConfig,
    node: &str,
    part: &[crate::api::NodeVirtualIP],
) -> bool {
    current.spec.virtual_ips == part
        && current.labels().get(LABEL_NODE) == Some(&crate::api::node_label_value(node))
        && current.spec.node.as_deref() == Some(node)
}

/// Whether a Service's condition as written equals the planned one (its transition time
/// aside: it moves only when the status does).
fn same_condition(
    current: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    planned: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
) -> bool {
    match (current, planned) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.status == b.status
                && a.reason == b.reason
                && a.message == b.message
                && a.observed_generation == b.observed_generation
        }
        _ => false,
    }
}

/// One JSON patch applied as kube takes it.
fn json_patch(ops: serde_json::Value) -> Patch<()> {
    Patch::Json(serde_json::from_value(ops).expect("a JSON patch"))
}

impl Context {
    fn count_write(&self) {
        self.metrics.lock().expect("metrics").writes += 1;
    }

    /// Publish: each node's entries in objects of bounded size (the first named after the
    /// node), each replaced whole when it differs, and the objects no longer wanted deleted.
    /// A merge patch replaces the list as a whole and needs no resourceVersion: the agents'
    /// status writes to the same objects never make it conflict.
    pub(super) async fn publish(
        &self,
        planned: BTreeMap<String, Vec<crate::api::NodeVirtualIP>>,
        configs: &[Arc<VirtualIPNodeConfig>],
        nodes: &[Arc<Node>],
    ) -> kube::Result<()> {
        let config_api: Api<VirtualIPNodeConfig> = Api::all(self.client.clone());
        let current: HashMap<String, &Arc<VirtualIPNodeConfig>> =
            configs.iter().map(|c| (c.name_any(), c)).collect();
        let node_uid: HashMap<String, String> = nodes
            .iter()
            .map(|n| (n.name_any(), n.uid().unwrap_or_default()))
            .collect();
        let mut wanted: HashSet<String> = HashSet::new();
        let mut changed = Vec::new();
        for (node, entries) in planned {
            for (i, part) in plan::shard(entries).into_iter().enumerate() {
                let name = plan::shard_name(&node, i);
                wanted.insert(name.clone());
                let existing = current.get(&name);
                if !existing.is_some_and(|c| config_up_to_date(c, &node, &part)) {
                    changed.push((node.clone(), name, part, existing.is_some()));
                }
            }
        }
        let writes = futures::stream::iter(changed)
            .map(|(node, name, entries, exists)| {
                let config_api = config_api.clone();
                let owner = node_uid
                    .get(&node)
                    .map(|uid| vec![owner_reference("v1", "Node", &node, uid, false)]);
                async move {
                    let labels = BTreeMap::from([(
                        LABEL_NODE.to_string(),
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
        for c in configs {
            if !wanted.contains(&c.name_any()) {
                match config_api.delete(&c.name_any(), &Default::default()).await {
                    Ok(_) => {
                        info!(object = %c.name_any(), "configuration deleted (node gone, or fewer shards)")
                    }
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Applies one finalizer patch; a VirtualIP already gone needs none.
    async fn patch_finalizers(&self, vip: &VirtualIP, ops: serde_json::Value) -> kube::Result<()> {
        let api: Api<VirtualIP> = Api::all(self.client.clone());
        match api
            .patch(&vip.name_any(), &PatchParams::default(), &json_patch(ops))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
        self.count_write();
        Ok(())
    }

    /// Our finalizer on each named VirtualIP.
    pub(super) async fn add_finalizers(
        &self,
        names: &[String],
        find: &ByName<'_>,
    ) -> kube::Result<()> {
        let added = futures::stream::iter(names)
            .map(|name| async move {
                let vip = find[name.as_str()];
                let ops = add_finalizer_patch(vip.metadata.finalizers.as_ref());
                self.patch_finalizers(vip, ops).await
            })
            .buffer_unordered(PARALLEL_WRITES)
            .collect::<Vec<_>>()
            .await;
        added.into_iter().collect::<kube::Result<Vec<()>>>()?;
        Ok(())
    }

    /// Our finalizer off a deleted VirtualIP, which lets it go.
    pub(super) async fn remove_finalizer(&self, vip: &VirtualIP) -> kube::Result<()> {
        match remove_finalizer_patch(vip.finalizers()) {
            Some(ops) => self.patch_finalizers(vip, ops).await,
            None => Ok(()),
        }
    }

    /// Status: the controller's fields only; each node's entry belongs to its agent. The
    /// planned Events of each written object go to `events` (only once the status saying the
    /// same is written). Every write is tried; the first error is returned.
    pub(super) async fn write_statuses(
        &self,
        plan: &Plan,
        find: &ByName<'_>,
        events: &mut Vec<Event>,
    ) -> kube::Result<()> {
        let vip_api: Api<VirtualIP> = Api::all(self.client.clone());
        let pp = PatchParams::apply(MANAGER).force();
        let todo = plan.statuses.iter().filter_map(|(name, status)| {
            let vip = *find.get(name)?;
            let current = vip
                .status
                .as_ref()
                .map(plan::controller_part)
                .unwrap_or_default();
            (&current != status).then_some((vip, status))
        });
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
        for (vip, r) in written {
            match r {
                Ok(_) => {
                    self.count_write();
                    for ev in plan.events.iter().filter(|e| e.vip == vip.name_any()) {
                        info!(virtual_ip = %ev.vip, reason = ev.reason, note = %ev.note, "event");
                        let what = EventNote {
                            warning: ev.warning,
                            reason: ev.reason,
                            note: &ev.note,
                            action: kinds::ELECT,
                        };
                        events.push(event(
                            vip.object_ref(&()),
                            None,
                            what,
                            &self.identity,
                            Timestamp::now(),
                        ));
                    }
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Events are best effort and off the pipeline's path: the next pass does not wait.
    pub(super) fn emit(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let client = self.client.clone();
        let metrics: Arc<std::sync::Mutex<Metrics>> = self.metrics.clone();
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

    /// The pools' routers as VirtualIPs (server-side apply: a field the plan drops is
    /// removed), and the ones no longer needed deleted (their finalizer holds them until every
    /// node has let go). Returns every VirtualIP as it is after the writes.
    pub(super) async fn write_routers(
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
                    let owner = owner_reference(
                        crate::api::API_VERSION,
                        "VirtualIPPool",
                        &r.pool,
                        &uid,
                        true,
                    );
                    let patch = serde_json::json!({
                        "apiVersion": crate::api::API_VERSION,
                        "kind": crate::api::KIND,
                        "metadata": {
                            "name": name,
                            "labels": {LABEL_POOL: r.pool},
                            "ownerReferences": [owner],
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
                Err(e) if is_not_found(&e) => {
                    out.remove(&name);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out.into_values().collect())
    }

    /// Each Service's addresses and our condition, where they differ from what is written;
    /// the planned Events of each written Service go to `events`.
    pub(super) async fn write_services(
        &self,
        lb: &lb::LbPlan,
        events: &mut Vec<Event>,
    ) -> kube::Result<()> {
        let services = self.services.state();
        let by_key: HashMap<(String, String), &Arc<Service>> = services
            .iter()
            .map(|s| ((s.namespace().unwrap_or_default(), s.name_any()), s))
            .collect();
        let mut todo = Vec::new();
        for (key, o) in &lb.services {
            let Some(svc) = by_key.get(key) else { continue };
            if same_condition(lb::current_condition(svc), o.condition.as_ref())
                && lb::current_ingress(svc) == o.ingress
            {
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
                        let regarding = svc.object_ref(&());
                        info!(object = %format!("{}/{}", regarding.namespace.as_deref().unwrap_or(""), regarding.name.as_deref().unwrap_or("")), reason, note = %note, "event");
                        let what = EventNote {
                            warning: *warning,
                            reason,
                            note,
                            action: kinds::ALLOCATE,
                        };
                        events.push(event(
                            regarding,
                            svc.namespace(),
                            what,
                            &self.identity,
                            Timestamp::now(),
                        ));
                    }
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Each pool's status where it differs.
    pub(super) async fn write_pools(&self, lb: &lb::LbPlan) -> kube::Result<()> {
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
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at() -> Timestamp {
        "2026-11-22T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn an_event_on_a_cluster_scoped_object_goes_to_the_default_namespace() {
        let mut vip = VirtualIP::new(
            "web",
            yaml_serde::from_str("addresses: [198.51.100.50/24]").unwrap(),
        );
        vip.metadata.uid = Some("u1".into());
        let what = EventNote {
            warning: true,
            reason: "NoMaster",
            note: &"x".repeat(2000),
            action: kinds::ELECT,
        };
        let e = event(vip.object_ref(&()), None, what, &"i".repeat(200), at());
        assert_eq!(
            e.metadata.name.as_deref(),
            Some(format!("web.{:x}", at().as_nanosecond()).as_str())
        );
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.action.as_deref(), Some("Elect"));
        assert_eq!(e.note.as_ref().map(|n| n.len()), Some(1024));
        assert_eq!(e.reporting_instance.as_ref().map(|n| n.len()), Some(128));
        assert_eq!(
            e.reporting_controller.as_deref(),
            Some("kube-vrrp.io/kube-vrrp-controller")
        );
        assert_eq!(e.regarding.and_then(|r| r.uid).as_deref(), Some("u1"));
    }

    #[test]
    fn an_event_on_a_service_stays_in_its_namespace() {
        let regarding = ObjectReference {
            name: Some("svc".into()),
            namespace: Some("shop".into()),
            ..Default::default()
        };
        let what = EventNote {
            warning: false,
            reason: "IPAllocated",
            note: "198.51.100.7",
            action: kinds::ALLOCATE,
        };
        let e = event(regarding, Some("shop".into()), what, "c1", at());
        assert_eq!(e.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(
            (e.type_.as_deref(), e.action.as_deref()),
            (Some("Normal"), Some("Allocate"))
        );
    }

    #[test]
    fn owner_references_mark_the_controller_only_when_asked() {
        let pool = owner_reference("kube-vrrp.io/v1", "VirtualIPPool", "p", "u", true);
        assert_eq!(
            serde_json::to_value(&pool).unwrap(),
            json!({"apiVersion": "kube-vrrp.io/v1", "kind": "VirtualIPPool", "name": "p", "uid": "u", "controller": true})
        );
        let node = owner_reference("v1", "Node", "n1", "u", false);
        assert_eq!(
            serde_json::to_value(&node).unwrap(),
            json!({"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u"})
        );
    }

    #[test]
    fn adding_the_finalizer_tests_the_list_first() {
        assert_eq!(
            add_finalizer_patch(None),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["kube-vrrp.io/release"]},
            ])
        );
        let other = vec!["other.io/keep".to_string()];
        assert_eq!(
            add_finalizer_patch(Some(&other)),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["other.io/keep"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "kube-vrrp.io/release"},
            ])
        );
        // Every patch parses as kube sends it.
        let _ = json_patch(add_finalizer_patch(Some(&other)));
    }

    #[test]
    fn removing_the_finalizer_tests_it_is_still_where_it_was() {
        let list = vec!["other.io/keep".to_string(), FINALIZER.to_string()];
        assert_eq!(
            remove_finalizer_patch(&list),
            Some(json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": "kube-vrrp.io/release"},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ]))
        );
        assert_eq!(remove_finalizer_patch(&list[..1]), None);
    }

    #[test]
    fn a_configuration_is_rewritten_when_entries_label_or_node_differ() {
        let mut c = VirtualIPNodeConfig::new(
            "n1",
            VirtualIPNodeConfigSpec {
                node: Some("n1".into()),
                virtual_ips: Vec::new(),
            },
        );
        assert!(!config_up_to_date(&c, "n1", &[]), "no label yet");
        c.metadata.labels = Some(BTreeMap::from([(
            LABEL_NODE.to_string(),
            crate::api::node_label_value("n1"),
        )]));
        assert!(config_up_to_date(&c, "n1", &[]));
        assert!(!config_up_to_date(&c, "n2", &[]));
        c.spec.node = None;
        assert!(!config_up_to_date(&c, "n1", &[]));
    }

    #[test]
    fn a_service_condition_compares_without_its_transition_time() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let c = |t: &str| Condition {
            type_: crate::api::CONDITION_ANNOUNCED.into(),
            status: "True".into(),
            reason: "Announced".into(),
            message: "m".into(),
            last_transition_time: Time(t.parse().unwrap()),
            observed_generation: Some(1),
        };
        let (a, b) = (c("2026-11-22T00:00:00Z"), c("2026-11-22T00:01:00Z"));
        assert!(same_condition(Some(&a), Some(&b)));
        assert!(same_condition(None, None));
        assert!(!same_condition(Some(&a), None));
        let mut d = b.clone();
        d.status = "False".into();
        assert!(!same_condition(Some(&a), Some(&d)));
    }
}
