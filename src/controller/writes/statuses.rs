//! Status patches: the controller's part of each VirtualIP's status, each LoadBalancer
//! Service's addresses and condition, each pool's status. Objects written get their planned
//! Events.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use tracing::info;

use super::events::{EventNote, event};
use super::{ByName, PARALLEL_WRITES};
use crate::api::{VirtualIP, VirtualIPPool};
use crate::controller::conditions::events as kinds;
use crate::controller::plan::{self, Plan};
use crate::controller::{Context, MANAGER, lb};
use crate::k8s::is_not_found;

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

impl Context {
    /// Status: the controller's fields only; each node's entry belongs to its agent. The
    /// planned Events of each written object go to `events` (only once the status saying the
    /// same is written). Every write is tried; the first error is returned.
    pub(in crate::controller) async fn write_statuses(
        &self,
        plan: &Plan,
        find: &ByName<'_>,
        events: &mut Vec<Event>,
    ) -> kube::Result<()> {
        let vip_api: Api<VirtualIP> = Api::all(self.client.clone());
        let pp = PatchParams::apply(MANAGER).force();
        {
            // What is already there is announced; what is gone is forgotten.
            let mut announced = self.announced.lock().expect("announced");
            announced.retain(|name, _| plan.statuses.contains_key(name));
            for (name, status) in &plan.statuses {
                let shown = find
                    .get(name)
                    .and_then(|v| v.status.as_ref())
                    .map(plan::controller_part);
                if shown.as_ref() == Some(status)
                    && let Some(a) = plan.announced.get(name)
                {
                    announced.insert(name.clone(), a.clone());
                }
            }
        }
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
                    if let Some(a) = plan.announced.get(&vip.name_any()) {
                        self.announced
                            .lock()
                            .expect("announced")
                            .insert(vip.name_any(), a.clone());
                    }
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

    /// Each Service's addresses and our condition, where they differ from what is written;
    /// the planned Events of each written Service go to `events`.
    pub(in crate::controller) async fn write_services(
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
    pub(in crate::controller) async fn write_pools(&self, lb: &lb::LbPlan) -> kube::Result<()> {
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
