//! The benchmarks' figures, one definition each: percentiles (nearest rank), the median, a
//! JSON summary, and when addresses appear in a namespace.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

/// The `p`th percentile (0 to 100) of sorted values, by nearest rank; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median (the upper one of an even count); NaN when empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `{n, p50, p99, max}` of milliseconds, to a tenth.
pub fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    let r = |x: f64| (x * 10.0).round() / 10.0;
    json!({
        "n": v.len(),
        "p50": r(percentile(&v, 50.0)),
        "p99": r(percentile(&v, 99.0)),
        "max": r(v.last().copied().unwrap_or(f64::NAN)),
    })
}

/// Address → when it first appeared.
pub type Seen = Arc<Mutex<BTreeMap<String, Instant>>>;

/// Records when each address of a family (`inet` or `inet6`) first appears in `ns` (an
/// `ip monitor` child: kill it when done).
pub fn monitor_addresses(ns: &str, family: &'static str, seen: Seen) -> std::process::Child {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "ip", "-o", "monitor", "address"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ip monitor");
    let out = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            let now = Instant::now();
            if line.starts_with("Deleted") {
                continue;
            }
            let mut words = line.split_whitespace();
            while let Some(w) = words.next() {
                if w == family
                    && let Some(a) = words.next()
                {
                    let a = a.split('/').next().unwrap_or_default().to_string();
                    seen.lock().unwrap().entry(a).or_insert(now);
                }
            }
        }
    });
    child
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_and_the_median() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&v, 50.0), 3.0);
        assert_eq!(percentile(&v, 100.0), 5.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 99.0), 5.0);
        assert!(percentile(&[], 50.0).is_nan());
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
        assert!(median(Vec::new()).is_nan());
        assert_eq!(summary(vec![2.0, 1.0])["max"], 2.0);
    }
}
