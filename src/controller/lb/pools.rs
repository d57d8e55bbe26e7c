//! `VirtualIPPool`s: which are usable (valid by [`crate::model::pool`]'s rules, no overlap
//! with an older pool) and which are frozen as they are; where an address sits in a pool.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use crate::api::VirtualIPPool;
use crate::model::pool::{Range, from_int, parse_pool, parse_range, to_int};
use crate::vrrp::Family;

/// Default number of routers per pool and family that share out the masters.
pub(crate) const DEFAULT_SPREAD: u8 = 2;

/// A usable pool.
pub(crate) struct Pool<'a> {
    pub name: String,
    pub obj: &'a VirtualIPPool,
    pub ranges: Vec<Range>,
    /// Routers per set of its Cluster-policy addresses (1 to 16).
    pub spread: u128,
}

impl Pool<'_> {
    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// Position among the pool's addresses of its family.
    pub(super) fn index_of(&self, ip: IpAddr) -> Option<u128> {
        let n = to_int(ip);
        let mut before = 0u128;
        for r in self.ranges_of(Family::of(&ip)) {
            if r.contains(ip) {
                return Some(before + (n - r.start));
            }
            before = before.saturating_add(r.end - r.start + 1);
        }
        None
    }

    pub(super) fn has(&self, f: Family) -> bool {
        self.ranges.iter().any(|r| r.family == f)
    }

    /// The pool's ranges of one family, in the order the pool lists them.
    pub(super) fn ranges_of(&self, f: Family) -> Vec<&Range> {
        self.ranges.iter().filter(|r| r.family == f).collect()
    }

    /// Whether its `serviceAllocation` lets `svc` take addresses from it.
    pub(super) fn allows(&self, svc: &Service) -> bool {
        let Some(a) = &self.obj.spec.service_allocation else {
            return true;
        };
        let ns = svc.namespace().unwrap_or_default();
        (a.namespaces.is_empty() || a.namespaces.contains(&ns))
            && a.service_selector
                .iter()
                .all(|(k, v)| svc.labels().get(k) == Some(v))
    }

    /// Addresses of both families, saturating at `u64::MAX`.
    pub(super) fn total(&self) -> u64 {
        self.ranges
            .iter()
            .map(|r| u64::try_from(r.size()).unwrap_or(u64::MAX))
            .fold(0u64, u64::saturating_add)
    }
}

/// Every pool not being deleted, read oldest first: the usable ones, and the frozen ones
/// (invalid now: their routers and addresses stay as they are, last known good).
pub(crate) struct Pools<'a> {
    pub usable: Vec<Pool<'a>>,
    /// Frozen pool name → what is wrong with it.
    pub frozen: BTreeMap<String, String>,
    /// The frozen pools' ranges that still parse: their addresses stay with whom they are.
    frozen_ranges: Vec<Range>,
}

impl<'a> Pools<'a> {
    /// Parses and checks every pool; a pool overlapping an older usable one is frozen.
    pub(super) fn read(all: &'a [Arc<VirtualIPPool>]) -> Pools<'a> {
        let mut order: Vec<&Arc<VirtualIPPool>> = all
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        order.sort_by_key(|p| {
            (
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                p.name_any(),
            )
        });
        let mut out = Pools {
            usable: Vec::new(),
            frozen: BTreeMap::new(),
            frozen_ranges: Vec::new(),
        };
        for p in order {
            let name = p.name_any();
            let checked = parse_pool(p).and_then(|ranges| match overlap(&ranges, &out.usable) {
                Some(problem) => Err(problem),
                None => Ok(ranges),
            });
            match checked {
                Ok(ranges) => out.usable.push(Pool {
                    name,
                    obj: p,
                    ranges,
                    spread: u128::from(p.spec.spread.unwrap_or(DEFAULT_SPREAD).clamp(1, 16)),
                }),
                Err(problem) => {
                    out.frozen_ranges
                        .extend(p.spec.addresses.iter().filter_map(|a| parse_range(a).ok()));
                    out.frozen.insert(name, problem);
                }
            }
        }
        out
    }

    /// The usable pool holding `ip`, as an index into `usable`.
    pub(super) fn pool_of(&self, ip: IpAddr) -> Option<usize> {
        self.usable.iter().position(|p| p.contains(ip))
    }

    /// The usable pool of that name, as an index into `usable`.
    pub(super) fn position(&self, name: &str) -> Option<usize> {
        self.usable.iter().position(|p| p.name == name)
    }

    pub(super) fn is_frozen(&self, name: &str) -> bool {
        self.frozen.contains_key(name)
    }

    /// Whether `ip` is in a frozen pool.
    pub(super) fn in_frozen(&self, ip: IpAddr) -> bool {
        self.frozen_ranges.iter().any(|r| r.contains(ip))
    }
}

/// The first of `ranges` that overlaps a range of an older usable pool, said as a problem.
fn overlap(ranges: &[Range], older: &[Pool]) -> Option<String> {
    for r in ranges {
        for other in older {
            if let Some(o) = other.ranges.iter().find(|o| r.overlaps(o)) {
                return Some(format!(
                    "spec.addresses: {}-{} overlaps pool {:?} ({}-{})",
                    from_int(r.family, r.start),
                    from_int(r.family, r.end),
                    other.name,
                    from_int(o.family, o.start),
                    from_int(o.family, o.end)
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ServiceAllocation;
    use crate::model::pool::check_pool;
    use crate::model::pool::tests::{ip, pool};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn the_younger_of_two_overlapping_pools_is_frozen_and_its_addresses_stay_put() {
        let all = [
            pool(
                "young",
                &["198.51.100.2-198.51.100.5", "2001:db8::/126"],
                20,
            ),
            pool("old", &["198.51.100.0/30"], 10),
            pool("bad", &["198.51.100.300"], 5),
        ];
        let pools = Pools::read(&all);
        assert_eq!(
            pools
                .usable
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["old"]
        );
        assert_eq!(
            pools.frozen["young"],
            "spec.addresses: 198.51.100.2-198.51.100.5 overlaps pool \"old\" (198.51.100.0-198.51.100.3)"
        );
        assert!(pools.frozen["bad"].starts_with("spec.addresses: "));
        assert!(pools.is_frozen("young") && !pools.is_frozen("old"));
        assert!(pools.in_frozen(ip("198.51.100.5")));
        assert!(pools.in_frozen(ip("2001:db8::1")));
        assert_eq!(pools.pool_of(ip("198.51.100.1")), Some(0));
        assert_eq!(pools.pool_of(ip("198.51.100.5")), None);
        assert_eq!(pools.position("old"), Some(0));
        assert_eq!(pools.position("young"), None);
    }

    #[test]
    fn a_pool_being_deleted_is_neither_usable_nor_frozen() {
        let mut p = (*pool("p", &["198.51.100.0/30"], 1)).clone();
        p.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(2).unwrap()));
        let all = [Arc::new(p)];
        let pools = Pools::read(&all);
        assert!(pools.usable.is_empty() && pools.frozen.is_empty());
    }

    #[test]
    fn index_counts_across_ranges_of_one_family_and_total_both() {
        let all = [pool(
            "p",
            &[
                "198.51.100.0/30",
                "2001:db8::/127",
                "198.51.100.10-198.51.100.11",
            ],
            1,
        )];
        let pools = Pools::read(&all);
        let p = &pools.usable[0];
        assert_eq!(p.index_of(ip("198.51.100.3")), Some(3));
        assert_eq!(p.index_of(ip("198.51.100.11")), Some(5));
        assert_eq!(p.index_of(ip("2001:db8::1")), Some(1));
        assert_eq!(p.index_of(ip("198.51.100.9")), None);
        assert_eq!(p.total(), 8);
        assert!(p.has(Family::V6));
        assert_eq!(p.ranges_of(Family::V4).len(), 2);
        assert_eq!(p.spread, u128::from(DEFAULT_SPREAD));
        assert_eq!(
            check_pool(&all[0]).unwrap(),
            "6 IPv4 and 2 IPv6 address(es)"
        );
    }

    #[test]
    fn service_allocation_limits_namespaces_and_labels() {
        let mut p = (*pool("p", &["198.51.100.0/30"], 1)).clone();
        p.spec.service_allocation = Some(ServiceAllocation {
            namespaces: vec!["web".into()],
            service_selector: [("tier".to_string(), "front".to_string())].into(),
        });
        let all = [Arc::new(p)];
        let pools = Pools::read(&all);
        let svc = |ns: &str, tier: Option<&str>| Service {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                labels: tier.map(|t| [("tier".to_string(), t.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(pools.usable[0].allows(&svc("web", Some("front"))));
        assert!(!pools.usable[0].allows(&svc("web", Some("back"))));
        assert!(!pools.usable[0].allows(&svc("web", None)));
        assert!(!pools.usable[0].allows(&svc("db", Some("front"))));
    }
}
