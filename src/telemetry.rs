//! Metrics through the `prometheus` crate (tikv's Rust client): the families the agent and
//! the controller read from their state at each scrape, plus one process-wide registry (the
//! process' CPU, memory, file descriptors, start time), encoded by its `TextEncoder` in the
//! text format 0.0.4 that `promtool check metrics` and every Prometheus read. A family
//! without samples is left out, as client libraries do.

use std::sync::OnceLock;

use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, Registry, TextEncoder};

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
}

/// A sample's labels, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Labels(Vec<(String, String)>);

impl Labels {
    /// As the encoder takes them.
    fn pairs(&self) -> Vec<LabelPair> {
        self.0
            .iter()
            .map(|(n, v)| {
                let mut l = LabelPair::default();
                l.set_name(n.clone());
                l.set_value(v.clone());
                l
            })
            .collect()
    }

    /// These labels, then `more`'s.
    pub(crate) fn and(mut self, more: Labels) -> Labels {
        self.0.extend(more.0);
        self
    }
}

/// Labels from `(name, value)` pairs.
pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels(
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect(),
    )
}

/// No labels.
pub(crate) fn none() -> Labels {
    Labels::default()
}

/// A sample's value.
pub(crate) trait Number {
    fn value(&self) -> f64;
}

macro_rules! number {
    ($($t:ty),*) => {$(
        impl Number for $t {
            #[allow(clippy::cast_precision_loss, clippy::cast_lossless)]
            fn value(&self) -> f64 {
                *self as f64
            }
        }
    )*};
}
number!(u8, u16, u32, u64, usize, i32, i64, f64);

impl<N: Number> Number for &N {
    fn value(&self) -> f64 {
        (*self).value()
    }
}

/// `kube_vrrp_build_info{version="..."} 1`: which release a process runs (agent and
/// controller alike).
pub(crate) fn build_info(out: &mut Exposition) {
    out.metric(
        "kube_vrrp_build_info",
        Kind::Gauge,
        "Always 1; the version label is the running release.",
        std::iter::once((labels(&[("version", env!("CARGO_PKG_VERSION"))]), 1u64)),
    );
}

/// The process-wide registry: what the process itself costs (`process_*`).
fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let r = Registry::new();
        // Only Linux has the process collector; elsewhere the page lacks those families.
        #[cfg(target_os = "linux")]
        if let Err(e) = r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )) {
            tracing::warn!(error = %e, "process metrics unavailable");
        }
        r
    })
}

/// An exposition being written.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    families: Vec<MetricFamily>,
}

impl Exposition {
    pub(crate) fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family.
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(match kind {
            Kind::Counter => MetricType::COUNTER,
            Kind::Gauge => MetricType::GAUGE,
        });
        self.families.push(f);
    }

    /// One sample of the family last started (which must be `name`).
    pub(crate) fn sample(&mut self, name: &str, labels: &Labels, value: impl Number) {
        let family = self
            .families
            .last_mut()
            .filter(|f| f.name() == name)
            .unwrap_or_else(|| panic!("sample of {name} outside its family"));
        let mut m = Metric::default();
        m.set_label(labels.pairs());
        let v = value.value();
        match family.get_field_type() {
            MetricType::COUNTER => {
                let mut c = prometheus::proto::Counter::default();
                c.set_value(v);
                m.set_counter(c);
            }
            _ => {
                let mut g = prometheus::proto::Gauge::default();
                g.set_value(v);
                m.set_gauge(g);
            }
        }
        family.mut_metric().push(m);
    }

    /// A histogram family: per labels, the cumulative buckets (upper bound, count), the sum
    /// and the count. Left out without samples.
    pub(crate) fn histogram(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels, Vec<(f64, u64)>, f64, u64)>,
    ) {
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(MetricType::HISTOGRAM);
        for (labels, buckets, sum, count) in samples {
            let mut m = Metric::default();
            m.set_label(labels.pairs());
            let mut h = prometheus::proto::Histogram::default();
            h.set_sample_sum(sum);
            h.set_sample_count(count);
            h.set_bucket(
                buckets
                    .into_iter()
                    .map(|(le, n)| {
                        let mut b = prometheus::proto::Bucket::default();
                        b.set_upper_bound(le);
                        b.set_cumulative_count(n);
                        b
                    })
                    .collect(),
            );
            m.set_histogram(h);
            f.mut_metric().push(m);
        }
        if !f.get_metric().is_empty() {
            self.families.push(f);
        }
    }

    /// A family with its samples.
    pub(crate) fn metric<V: Number>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        samples: impl IntoIterator<Item = (Labels, V)>,
    ) {
        self.family(name, kind, help);
        for (labels, value) in samples {
            self.sample(name, &labels, value);
        }
    }

    /// The names of the families started, with samples or not.
    #[cfg(test)]
    pub(crate) fn names(&self) -> Vec<String> {
        self.families.iter().map(|f| f.name().to_string()).collect()
    }

    /// The text: these families, then the registry's.
    pub(crate) fn finish(self) -> String {
        let mut families: Vec<MetricFamily> = self
            .families
            .into_iter()
            .filter(|f| !f.get_metric().is_empty())
            .collect();
        families.extend(registry().gather());
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            // Only an empty or nameless family fails, and neither gets here.
            tracing::warn!(error = %e, "metrics not encoded");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The families written here, without the registry's process metrics.
    fn own(text: &str) -> String {
        text.lines()
            .filter(|l| !l.contains("process_"))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn a_family_is_help_type_then_samples() {
        let mut e = Exposition::new();
        e.metric(
            "jobs_total",
            Kind::Counter,
            "Jobs run.",
            [
                (none(), 3u64),
                (labels(&[("result", "ok"), ("queue", "a")]), 2),
            ],
        );
        e.metric("up", Kind::Gauge, "1 while up.", [(none(), 1.5)]);
        assert_eq!(
            own(&e.finish()),
            "# HELP jobs_total Jobs run.\n# TYPE jobs_total counter\njobs_total 3\n\
             jobs_total{result=\"ok\",queue=\"a\"} 2\n\
             # HELP up 1 while up.\n# TYPE up gauge\nup 1.5\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Exposition::new();
        e.metric(
            "x",
            Kind::Gauge,
            "a \\ b\nc \"d\"",
            [(labels(&[("check", "say \"hi\"\\\n")]), 1u64)],
        );
        assert_eq!(
            own(&e.finish()),
            "# HELP x a \\\\ b\\nc \"d\"\n# TYPE x gauge\nx{check=\"say \\\"hi\\\"\\\\\\n\"} 1\n"
        );
    }

    #[test]
    fn a_family_without_samples_is_left_out() {
        let mut e = Exposition::new();
        e.metric::<u64>("none", Kind::Gauge, "Nothing yet.", []);
        assert_eq!(own(&e.finish()), "");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_is_measured_too() {
        let text = Exposition::new().finish();
        for family in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("\n{family} ")), "{family}: {text}");
        }
    }
}
