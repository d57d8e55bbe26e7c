//! What the director decides about health, apart from the checks themselves: which real
//! servers keep their health over a new configuration, and when a real server is checked
//! next (keepalived's `delay_loop`, `retry`, `delay_before_retry`). Pure.

use std::time::Duration;

use crate::model::virtualserver::{RealCheck, VirtualServer};

/// For each real server of `after`, the one of `before` whose health it keeps: the same
/// address checked the same way. A changed check starts afresh.
pub(crate) fn carried(before: Option<&VirtualServer>, after: &VirtualServer) -> Vec<Option<usize>> {
    after
        .reals
        .iter()
        .map(|r| {
            let b = before?;
            let i = b.reals.iter().position(|o| o.addr == r.addr)?;
            (b.reals[i].check == r.check).then_some(i)
        })
        .collect()
}

/// The wait before the next attempt, given this one's result and the failures in a row so
/// far (updated): `delayLoop` after a success or once `retry` more attempts have failed,
/// `delayBeforeRetry` between the attempts of a failing server.
pub(crate) fn next_attempt(ok: bool, failures: &mut u32, c: &RealCheck) -> Duration {
    if ok {
        *failures = 0;
        return c.check.interval;
    }
    *failures += 1;
    if *failures < c.check.fall {
        c.retry_delay
    } else {
        c.check.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::VirtualIpSpec;
    use crate::vrrp::VirtualAddress;

    fn vs(yaml: &str) -> VirtualServer {
        let s: VirtualIpSpec = yaml_serde::from_str(yaml).unwrap();
        let addrs: Vec<VirtualAddress> = s.addresses.iter().map(|a| a.parse().unwrap()).collect();
        crate::model::virtualserver::validate(&s, &addrs, false)
            .unwrap()
            .remove(0)
    }

    const HEAD: &str =
        "addresses: [198.51.100.50/24]\nvirtualServers:\n- address: 198.51.100.50\n  port: 80\n";

    #[test]
    fn health_is_kept_for_the_same_server_checked_the_same_way() {
        let before = vs(&format!(
            "{HEAD}  realServers: [{{address: 198.51.100.21}}, {{address: 198.51.100.22}}]\n  check: {{tcp: {{}}}}\n"
        ));
        // Reordered, one added: each keeps its own.
        let after = vs(&format!(
            "{HEAD}  realServers: [{{address: 198.51.100.23}}, {{address: 198.51.100.22}}, {{address: 198.51.100.21, weight: 5}}]\n  check: {{tcp: {{}}}}\n"
        ));
        assert_eq!(carried(Some(&before), &after), [None, Some(1), Some(0)]);
        // Another check: afresh.
        let other = vs(&format!(
            "{HEAD}  realServers: [{{address: 198.51.100.21}}]\n  check: {{delayLoop: 1s, tcp: {{}}}}\n"
        ));
        assert_eq!(carried(Some(&before), &other), [None]);
        assert_eq!(carried(None, &before), [None, None]);
    }

    #[test]
    fn a_failing_server_is_retried_then_checked_at_the_loop() {
        let v = vs(&format!(
            "{HEAD}  realServers: [{{address: 198.51.100.21}}]\n  check: {{delayLoop: 5s, retry: 2, delayBeforeRetry: 1s, tcp: {{}}}}\n"
        ));
        let c = v.reals[0].check.clone().unwrap();
        let mut failures = 0;
        let s = Duration::from_secs;
        let waits: Vec<Duration> = [false, false, false, false, true, false]
            .into_iter()
            .map(|ok| next_attempt(ok, &mut failures, &c))
            .collect();
        // retry 2: two retries a second apart, then down and back to the loop.
        assert_eq!(waits, [s(1), s(1), s(5), s(5), s(5), s(1)]);
    }
}

/// Upper bounds of the check latency histogram's buckets, in seconds: Prometheus's default
/// buckets with 1 ms and 2.5 ms added below (a check on a LAN takes about a millisecond).
pub(crate) const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How long a real server's checks took: a histogram (per bucket, not cumulative; the last
/// entry counts those above every bound).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Latency {
    pub buckets: Vec<u64>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl Latency {
    pub(crate) fn observe(&mut self, took: Duration) {
        if self.buckets.len() != LATENCY_BUCKETS.len() + 1 {
            self.buckets = vec![0; LATENCY_BUCKETS.len() + 1];
        }
        let s = took.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i] += 1;
        self.sum_seconds += s;
        self.count += 1;
    }

    /// (upper bound, how many took at most that long), as Prometheus's `le` buckets.
    pub(crate) fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        LATENCY_BUCKETS
            .iter()
            .zip(self.buckets.iter().chain(std::iter::repeat(&0)))
            .map(|(b, n)| {
                total += n;
                (*b, total)
            })
            .collect()
    }
}

#[cfg(test)]
mod latency_tests {
    use super::*;

    #[test]
    fn latencies_fall_in_their_buckets_and_add_up() {
        let mut l = Latency::default();
        for ms in [0, 3, 3, 40, 20_000] {
            l.observe(Duration::from_millis(ms));
        }
        assert_eq!(l.count, 5);
        assert!((l.sum_seconds - 20.046).abs() < 1e-9);
        let c = l.cumulative();
        assert_eq!(c[0], (0.001, 1));
        assert_eq!(c[2], (0.005, 3));
        assert_eq!(c[5], (0.05, 4));
        // 20 s is above every bound: only in the count (+Inf).
        assert_eq!(c.last(), Some(&(10.0, 4)));
    }
}

/// One real server's check latency, for /status and /metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheckLatency {
    pub virtual_ip: String,
    pub virtual_server: String,
    pub real_server: String,
    pub latency: Latency,
}
