//! Endpoints: on which nodes each Service has a ready endpoint, from its EndpointSlices
//! (what an `externalTrafficPolicy: Local` router's `activeNodes` are made of).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

use super::types::ServiceKey;

/// The label an EndpointSlice names its Service by.
const SERVICE_NAME: &str = "kubernetes.io/service-name";

/// (namespace, Service) → nodes with a ready endpoint (an endpoint whose readiness is
/// unknown counts as ready, as Kubernetes says consumers should).
pub(crate) fn ready_nodes(slices: &[Arc<EndpointSlice>]) -> HashMap<ServiceKey, BTreeSet<String>> {
    let mut ready: HashMap<ServiceKey, BTreeSet<String>> = HashMap::new();
    for s in slices {
        let Some(svc) = s.labels().get(SERVICE_NAME) else {
            continue;
        };
        let set = ready
            .entry((s.namespace().unwrap_or_default(), svc.clone()))
            .or_default();
        for e in s.endpoints.iter().flatten() {
            let is_ready = e.conditions.as_ref().and_then(|c| c.ready) != Some(false);
            if let (true, Some(n)) = (is_ready, &e.node_name) {
                set.insert(n.clone());
            }
        }
    }
    ready
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// A slice of Service `default/{service}` with endpoints (node, ready).
    pub(crate) fn slice(
        service: Option<&str>,
        endpoints: &[(Option<&str>, Option<bool>)],
    ) -> Arc<EndpointSlice> {
        Arc::new(EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some("default".into()),
                labels: service.map(|s| [(SERVICE_NAME.to_string(), s.to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: Some(
                endpoints
                    .iter()
                    .map(|(node, ready)| Endpoint {
                        addresses: vec!["10.0.0.1".into()],
                        node_name: node.map(Into::into),
                        conditions: Some(EndpointConditions {
                            ready: *ready,
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ports: None,
        })
    }

    #[test]
    fn ready_or_unknown_endpoints_with_a_node_count_across_slices() {
        let slices = [
            slice(
                Some("web"),
                &[(Some("n1"), Some(true)), (Some("n2"), Some(false))],
            ),
            slice(Some("web"), &[(Some("n3"), None), (None, Some(true))]),
            slice(Some("idle"), &[(Some("n1"), Some(false))]),
            slice(None, &[(Some("n9"), Some(true))]),
        ];
        let ready = ready_nodes(&slices);
        let key = |s: &str| ("default".to_string(), s.to_string());
        assert_eq!(
            ready[&key("web")]
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["n1", "n3"]
        );
        assert!(ready[&key("idle")].is_empty(), "known, with no ready node");
        assert_eq!(ready.len(), 2, "a slice naming no Service is ignored");
    }
}
