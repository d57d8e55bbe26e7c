//! Every Kubernetes write of the controller: pool routers, per-node configurations, the
//! finalizer, VirtualIP / Service / pool statuses and Events. Each write compares the plan
//! with what the API holds and writes only the difference; a 404 means the object is gone
//! and nothing is left to do. The decisions (what differs, how an Event, an owner reference
//! or a finalizer patch looks) are pure functions below the shell, with their tests.

//!
//! By job: `configs` (per-node configurations), `routers` (the pools' VirtualIPs),
//! `finalizer`, `statuses` (VirtualIP, Service and pool statuses) and `events`; owner
//! references and what every write shares here.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::Context;
use crate::api::VirtualIP;

mod configs;
mod events;
mod finalizer;
mod routers;
mod statuses;

/// Concurrent writes within one pass.
const PARALLEL_WRITES: usize = 8;

/// The VirtualIPs by name, as the pass sees them.
pub(super) type ByName<'a> = HashMap<String, &'a Arc<VirtualIP>>;

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

impl Context {
    fn count_write(&self) {
        self.metrics.lock().expect("metrics").writes += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
