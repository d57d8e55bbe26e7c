//! The Prometheus text exposition format (version 0.0.4), written one way for the agent and
//! the controller: `# HELP` and `# TYPE` lines per family, then its samples, with label
//! values and help text escaped as the format requires.

use std::fmt::{Display, Write};

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A label value escaped: backslash, double quote and line feed.
pub(crate) fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text escaped: backslash and line feed.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Labels as they go between the braces: `name="value",…`, values escaped. Two rendered
/// sets join with a comma.
pub(crate) fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"{}\"", escape_label(value));
    }
    out
}

/// `kube_vrrp_build_info{version="..."} 1`: which release a process runs (agent and
/// controller alike).
pub(crate) fn build_info(out: &mut Exposition) {
    out.metric(
        "kube_vrrp_build_info",
        Kind::Gauge,
        "Always 1; the version label is the running release.",
        std::iter::once((labels(&[("version", env!("CARGO_PKG_VERSION"))]), 1)),
    );
}

/// An exposition being written.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    out: String,
}

impl Exposition {
    pub(crate) fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(
            self.out,
            "# HELP {name} {}\n# TYPE {name} {}",
            escape_help(help),
            kind.as_str()
        );
    }

    /// One sample; `labels` as [`labels`] renders them, empty for none.
    pub(crate) fn sample(&mut self, name: &str, labels: &str, value: impl Display) {
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
    }

    /// A family with its samples.
    pub(crate) fn metric<V: Display>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        samples: impl IntoIterator<Item = (String, V)>,
    ) {
        self.family(name, kind, help);
        for (labels, value) in samples {
            self.sample(name, &labels, value);
        }
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_is_help_type_then_samples() {
        let mut e = Exposition::new();
        e.metric(
            "jobs_total",
            Kind::Counter,
            "Jobs run.",
            [
                (String::new(), 3),
                (labels(&[("result", "ok"), ("queue", "a")]), 2),
            ],
        );
        e.metric("up", Kind::Gauge, "1 while up.", [(String::new(), 1.5)]);
        assert_eq!(
            e.finish(),
            "# HELP jobs_total Jobs run.\n# TYPE jobs_total counter\njobs_total 3\n\
             jobs_total{result=\"ok\",queue=\"a\"} 2\n\
             # HELP up 1 while up.\n# TYPE up gauge\nup 1.5\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(
            labels(&[("check", "say \"hi\"\\\n")]),
            "check=\"say \\\"hi\\\"\\\\\\n\""
        );
        let mut e = Exposition::new();
        e.family("x", Kind::Gauge, "a \\ b\nc \"d\"");
        assert_eq!(e.finish(), "# HELP x a \\\\ b\\nc \"d\"\n# TYPE x gauge\n");
    }

    #[test]
    fn a_family_without_samples_still_says_what_it_is() {
        let mut e = Exposition::new();
        e.metric::<u64>("none", Kind::Gauge, "Nothing yet.", []);
        assert_eq!(e.finish(), "# HELP none Nothing yet.\n# TYPE none gauge\n");
    }
}
