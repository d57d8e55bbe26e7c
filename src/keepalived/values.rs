//! keepalived values → kube-vrrp values: seconds → duration texts, keepalived names (instances,
//! scripts, file names) → DNS names for VirtualIPs and health checks, and numbers read with a
//! warning at their line when they cannot be (never a silent default).

use std::time::Duration;

use super::parser::Stmt;
use super::report::Report;

/// keepalived seconds (integer or decimal) → a duration text.
pub(crate) fn seconds(text: &str) -> Option<String> {
    let v: f64 = text.parse().ok()?;
    if !(v.is_finite() && v >= 0.0) {
        return None;
    }
    let ms = (v * 1000.0).round() as u64;
    Some(if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    })
}

/// A DNS name from a keepalived name (VI_1 → vi-1).
pub(crate) fn dns_name(s: &str) -> String {
    let mut out: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "vip".into()
    } else {
        out.chars().take(63).collect()
    }
}

/// `c`'s first argument as a number, or a warning with its line (the default stays).
pub(crate) fn number<T: std::str::FromStr>(c: &Stmt, report: &mut Report) -> Option<T> {
    let text = c.arg(1).unwrap_or_default();
    let n = text.parse().ok();
    if n.is_none() {
        report.warning(
            &c.at,
            format!(
                "{} {text:?}: not a whole number in range: not carried over (the default is used)",
                c.key()
            ),
        );
    }
    n
}

/// `c`'s first argument in seconds, within what the field accepts: outside it, the nearest
/// bound with a note (keepalived's `delay_before_retry 0` retries at once: the shortest
/// delay is the closest); not a number, a warning and the default.
pub(crate) fn duration(
    c: &Stmt,
    min: Duration,
    max: Duration,
    report: &mut Report,
) -> Option<Duration> {
    let text = c.arg(1).unwrap_or_default();
    let Some(d) = text
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
    else {
        report.warning(
            &c.at,
            format!(
                "{} {text:?}: not a number of seconds: not carried over (the default is used)",
                c.key()
            ),
        );
        return None;
    };
    let d = Duration::from_millis(d.as_millis() as u64);
    let bounded = d.clamp(min, max.max(min));
    if bounded != d {
        report.note(
            &c.at,
            format!(
                "{} {text}: carried as {}, the nearest a check accepts ({} to {})",
                c.key(),
                crate::units::format_duration(bounded),
                crate::units::format_duration(min),
                crate::units::format_duration(max.max(min))
            ),
        );
    }
    Some(bounded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_become_whole_seconds_or_milliseconds() {
        assert_eq!(seconds("1").as_deref(), Some("1s"));
        assert_eq!(seconds("0.1").as_deref(), Some("100ms"));
        assert_eq!(seconds("2.25").as_deref(), Some("2250ms"));
        assert_eq!(seconds("60").as_deref(), Some("60s"));
        assert_eq!(seconds("0").as_deref(), Some("0s"));
    }

    #[test]
    fn seconds_that_are_not_become_nothing() {
        for bad in ["", "x", "-1", "inf", "NaN", "1s"] {
            assert_eq!(seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_become_dns_names() {
        assert_eq!(dns_name("VI_1"), "vi-1");
        assert_eq!(dns_name("chk__nginx"), "chk-nginx");
        assert_eq!(dns_name("_VI.1_"), "vi-1");
        assert_eq!(dns_name("__"), "vip");
        assert_eq!(dns_name(&"a".repeat(70)).len(), 63);
    }
}
