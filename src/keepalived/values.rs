//! keepalived values → kube-vrrp values: seconds → duration texts, keepalived names (instances,
//! scripts, file names) → DNS names for VirtualIPs and health checks.

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
