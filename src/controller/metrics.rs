//! The controller's metrics: what the run loop and the writes count, and their Prometheus
//! exposition on `/metrics`.

use std::collections::BTreeMap;

use crate::api::VirtualIPStatus;
use crate::telemetry::{Exposition, Kind, labels, none};

/// Counters and gauges of one controller replica.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) leader: bool,
    pub(crate) reconciles: u64,
    pub(crate) reconcile_errors: u64,
    pub(crate) writes: u64,
    pub(crate) events: u64,
    pub(crate) last_reconcile_seconds: f64,
    /// VirtualIPs by phase (`Ready`, `Degraded`, …).
    pub(crate) phases: BTreeMap<String, u64>,
}

impl Metrics {
    pub(crate) fn render(&self) -> String {
        let mut e = Exposition::new();
        crate::telemetry::build_info(&mut e);
        let one = |v: f64| [(none(), v)];
        e.metric(
            "kube_vrrp_controller_leader",
            Kind::Gauge,
            "1 while this replica holds the lease.",
            one(f64::from(u8::from(self.leader))),
        );
        e.metric(
            "kube_vrrp_controller_reconciles_total",
            Kind::Counter,
            "Pipeline runs over the whole cluster.",
            one(self.reconciles as f64),
        );
        e.metric(
            "kube_vrrp_controller_reconcile_errors_total",
            Kind::Counter,
            "Pipeline runs that failed to write (retried).",
            one(self.reconcile_errors as f64),
        );
        e.metric(
            "kube_vrrp_controller_writes_total",
            Kind::Counter,
            "Objects written (configurations, statuses, finalizers).",
            one(self.writes as f64),
        );
        e.metric(
            "kube_vrrp_controller_events_total",
            Kind::Counter,
            "Events emitted.",
            one(self.events as f64),
        );
        e.metric(
            "kube_vrrp_controller_last_reconcile_seconds",
            Kind::Gauge,
            "Duration of the last pipeline run.",
            one(self.last_reconcile_seconds),
        );
        e.metric(
            "kube_vrrp_virtualips",
            Kind::Gauge,
            "VirtualIPs by phase.",
            self.phases
                .iter()
                .map(|(p, n)| (labels(&[("phase", p)]), n)),
        );
        e.finish()
    }
}

/// VirtualIPs by phase, as the `kube_vrrp_virtualips` gauge counts them.
pub(crate) fn phases(statuses: &BTreeMap<String, VirtualIPStatus>) -> BTreeMap<String, u64> {
    let mut phases: BTreeMap<String, u64> = BTreeMap::new();
    for p in statuses.values().filter_map(|s| s.phase) {
        *phases.entry(format!("{p:?}")).or_default() += 1;
    }
    phases
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Phase;

    #[test]
    fn phases_are_counted_by_name() {
        let with = |phase| VirtualIPStatus {
            phase,
            ..Default::default()
        };
        let statuses = BTreeMap::from([
            ("a".to_string(), with(Some(Phase::Ready))),
            ("b".to_string(), with(Some(Phase::Ready))),
            ("c".to_string(), with(Some(Phase::SplitBrain))),
            ("d".to_string(), with(None)),
        ]);
        assert_eq!(
            phases(&statuses),
            BTreeMap::from([("Ready".to_string(), 2), ("SplitBrain".to_string(), 1)])
        );
    }

    #[test]
    fn renders_every_family_with_phases_as_labels() {
        let m = Metrics {
            leader: true,
            reconciles: 7,
            last_reconcile_seconds: 0.25,
            phases: BTreeMap::from([("Degraded".into(), 1), ("Ready".into(), 3)]),
            ..Default::default()
        };
        let text = m.render();
        assert!(text.starts_with("# HELP kube_vrrp_build_info "));
        assert!(text.contains(&format!(
            "kube_vrrp_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(text.contains(
            "# HELP kube_vrrp_controller_leader 1 while this replica holds the lease.\n\
             # TYPE kube_vrrp_controller_leader gauge\nkube_vrrp_controller_leader 1\n"
        ));
        assert!(text.contains("kube_vrrp_controller_reconciles_total 7\n"));
        assert!(text.contains("kube_vrrp_controller_last_reconcile_seconds 0.25\n"));
        assert!(text.contains(
            "# TYPE kube_vrrp_virtualips gauge\nkube_vrrp_virtualips{phase=\"Degraded\"} 1\n\
             kube_vrrp_virtualips{phase=\"Ready\"} 3\n"
        ));
        // Eight families of the controller's, then the process' own.
        assert_eq!(text.matches("# TYPE kube_vrrp_").count(), 8);
        assert!(text.contains("# TYPE process_resident_memory_bytes gauge\n"));
    }
}
