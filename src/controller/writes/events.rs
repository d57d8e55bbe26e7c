//! Events: one `events.k8s.io/v1` Event per planned note, built here and sent best effort.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tracing::warn;

use super::PARALLEL_WRITES;
use crate::controller::conditions::events as kinds;
use crate::controller::metrics::Metrics;
use crate::controller::{Context, MANAGER};

/// VirtualIPs are cluster-scoped: their Events go here (as for Nodes).
const EVENT_NAMESPACE: &str = "default";

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

impl Context {
    /// Events are best effort and off the pipeline's path: the next pass does not wait.
    pub(in crate::controller) fn emit(&self, events: Vec<Event>) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::VirtualIP;
    use kube::Resource;

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
}
