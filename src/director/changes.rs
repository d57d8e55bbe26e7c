//! What changed in a virtual server's real servers between two configurations, in words for
//! the log: an operator who drains a server (`weight: 0`) or adds one sees it named, not
//! only "reloading". Pure.

use crate::model::virtualserver::VirtualServer;

/// Each real server added, removed or reweighted from `before` (none: a new virtual server)
/// to `after`, in `after`'s order, then the removed ones.
pub(crate) fn between(before: Option<&VirtualServer>, after: &VirtualServer) -> Vec<String> {
    let Some(before) = before else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in &after.reals {
        match before.reals.iter().find(|b| b.addr == r.addr) {
            None => out.push(format!("{} added (weight {})", r.addr, r.weight)),
            Some(b) if b.weight != r.weight => out.push(format!(
                "{} weight {}→{}{}",
                r.addr,
                b.weight,
                r.weight,
                match (b.weight, r.weight) {
                    (_, 0) => " (drained: no new connections, established ones stay)",
                    (0, _) => " (back from drain)",
                    _ => "",
                }
            )),
            Some(_) => {}
        }
    }
    for b in &before.reals {
        if !after.reals.iter().any(|r| r.addr == b.addr) {
            out.push(format!("{} removed", b.addr));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::virtualserver::RealServer;

    fn vs(reals: &[(u8, u32)]) -> VirtualServer {
        let mut v = crate::director::tests::vs(
            crate::api::Forwarding::Nat,
            crate::api::Scheduler::WeightedRoundRobin,
            &[],
        );
        v.reals = reals
            .iter()
            .map(|(i, w)| RealServer {
                addr: format!("198.51.100.{i}:80").parse().unwrap(),
                weight: *w,
                check: None,
                inhibit: None,
            })
            .collect();
        v
    }

    #[test]
    fn each_change_is_named_with_its_server() {
        let before = vs(&[(21, 3), (22, 1), (23, 0)]);
        let after = vs(&[(21, 0), (22, 1), (23, 2), (24, 1)]);
        assert_eq!(
            between(Some(&before), &after),
            [
                "198.51.100.21:80 weight 3→0 (drained: no new connections, established ones stay)",
                "198.51.100.23:80 weight 0→2 (back from drain)",
                "198.51.100.24:80 added (weight 1)",
            ]
        );
        assert_eq!(
            between(Some(&after), &before),
            [
                "198.51.100.21:80 weight 0→3 (back from drain)",
                "198.51.100.23:80 weight 2→0 (drained: no new connections, established ones stay)",
                "198.51.100.24:80 removed",
            ]
        );
        assert!(between(Some(&after), &after).is_empty());
        assert!(between(None, &after).is_empty());
    }
}
