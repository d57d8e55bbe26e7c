//! Giving Services their addresses, oldest Service first: first keep every address a
//! Service already has while it is still allowed, then allocate what is missing (a requested
//! address, an address shared under the Service's key, or the first free one of the first
//! pool that allows it). A new Service gets all its required families or nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use super::cursor::Cursor;
use super::pools::Pools;
use super::services::{Wants, current_ingress};
use super::sharing::{Holder, Holders, SharedAddresses};
use super::types::ServiceKey;
use crate::api::{LABEL_POOL, VirtualIP};
use crate::vrrp::{Family, VirtualAddress};

/// Who has what once every Service has been served.
pub(crate) struct Allocation {
    pub holders: Holders,
    /// Service → its address of each family it got.
    pub assigned: BTreeMap<ServiceKey, BTreeMap<Family, IpAddr>>,
    /// Service → why it is not (fully) served.
    pub failures: BTreeMap<ServiceKey, String>,
}

/// Addresses of users' VirtualIPs: never allocated (the routers' own are ours).
pub(crate) fn reserved(vips: &[Arc<VirtualIP>]) -> HashSet<IpAddr> {
    let mut reserved = HashSet::new();
    for v in vips {
        if v.labels().contains_key(LABEL_POOL) {
            continue;
        }
        for a in v
            .spec
            .addresses
            .iter()
            .chain(v.spec.excluded_addresses.iter())
        {
            if let Ok(va) = a.parse::<VirtualAddress>() {
                reserved.insert(va.address);
            }
        }
    }
    reserved
}

/// Serves `parsed` (ours, oldest first); `failures` holds the Services already refused.
pub(crate) fn allocate(
    pools: &Pools,
    reserved: &HashSet<IpAddr>,
    parsed: &[(&Arc<Service>, Wants)],
    mut failures: BTreeMap<ServiceKey, String>,
) -> Allocation {
    let mut holders = Holders::default();
    let mut assigned = BTreeMap::new();
    for (svc, w) in parsed {
        let kept = keep(svc, w, pools, reserved, &mut holders);
        assigned.insert(w.holder.service.clone(), kept);
    }
    let mut allocator = Allocator {
        pools,
        reserved,
        shared: SharedAddresses::of(&holders, pools),
        holders,
        cursors: HashMap::new(),
    };
    for (svc, w) in parsed {
        let key = w.holder.service.clone();
        let mut got = assigned.remove(&key).unwrap_or_default();
        if let Some(e) = allocator.complete(svc, w, &mut got) {
            // All or nothing for a new Service; one that has addresses keeps them.
            if current_ingress(svc).is_empty() {
                allocator.holders.release(&key, got.values());
                got.clear();
            }
            failures.insert(key.clone(), e);
        }
        assigned.insert(key, got);
    }
    Allocation {
        holders: allocator.holders,
        assigned,
        failures,
    }
}

/// The Service's current addresses it may keep (one per family it wants), now held by it.
fn keep(
    svc: &Service,
    w: &Wants,
    pools: &Pools,
    reserved: &HashSet<IpAddr>,
    holders: &mut Holders,
) -> BTreeMap<Family, IpAddr> {
    let mut kept = BTreeMap::new();
    for ip in current_ingress(svc) {
        let f = Family::of(&ip);
        if !w.families.contains(&f) || kept.contains_key(&f) {
            continue;
        }
        if let Some(r) = w.requested.get(&f)
            && *r != ip
        {
            continue;
        }
        let allowed = pools.in_frozen(ip)
            || pools.pool_of(ip).is_some_and(|i| {
                let pool = &pools.usable[i];
                pool.allows(svc) && w.pool.as_ref().is_none_or(|p| *p == pool.name)
            });
        if !allowed || reserved.contains(&ip) || holders.admits(&ip, &w.holder).is_err() {
            continue;
        }
        holders.add(ip, &w.holder);
        kept.insert(f, ip);
    }
    kept
}

/// The allocation pass: who holds what so far, and where each pool's search for a free
/// address of each family stands.
struct Allocator<'p, 'a> {
    pools: &'p Pools<'a>,
    reserved: &'p HashSet<IpAddr>,
    holders: Holders,
    shared: SharedAddresses,
    /// (pool index, family) → the search's place (it only moves forward within a pass).
    cursors: HashMap<(usize, Family), Cursor>,
}

impl Allocator<'_, '_> {
    /// Adds to `got` an address of each family the Service still misses, or says why not.
    fn complete(
        &mut self,
        svc: &Service,
        w: &Wants,
        got: &mut BTreeMap<Family, IpAddr>,
    ) -> Option<String> {
        for (n, f) in w.families.iter().enumerate() {
            if got.contains_key(f) {
                continue;
            }
            let candidates = match self.candidates(svc, w, *f) {
                Ok(c) => c,
                Err(e) => return Some(e),
            };
            let found = match w.requested.get(f) {
                Some(ip) => match self.check_requested(w, &candidates, *ip) {
                    Ok(()) => Some(*ip),
                    Err(e) => return Some(e),
                },
                // Share first, when the key allows and an address of the key fits.
                None => self
                    .shared
                    .find(&candidates, *f, &w.holder, &self.holders)
                    .or_else(|| self.first_free(&candidates, *f)),
            };
            match found {
                Some(ip) => {
                    self.take(ip, &w.holder);
                    got.insert(*f, ip);
                }
                None if n < w.required => return Some(self.exhausted(&candidates, *f)),
                None => {}
            }
        }
        None
    }

    /// The pools (indexes, in order) the Service may take a family-`f` address from: the
    /// one it names, the one holding the address it asks for, or every auto-assigning pool
    /// that allows it and has that family.
    fn candidates(&self, svc: &Service, w: &Wants, f: Family) -> Result<Vec<usize>, String> {
        let pools = &self.pools.usable;
        match (&w.pool, w.requested.get(&f)) {
            (Some(name), _) => match self.pools.position(name) {
                Some(i) if pools[i].allows(svc) => Ok(vec![i]),
                Some(_) => Err(format!("pool {name:?} does not allow this Service")),
                None if self.pools.is_frozen(name) => {
                    Err(format!("pool {name:?} is invalid: see its status"))
                }
                None => Err(format!("pool {name:?} does not exist")),
            },
            (None, Some(ip)) => match self.pools.pool_of(*ip) {
                Some(i) if pools[i].allows(svc) => Ok(vec![i]),
                Some(i) => Err(format!(
                    "{ip} is in pool {:?}, which does not allow this Service",
                    pools[i].name
                )),
                None => Err(format!("{ip} is in no usable VirtualIPPool")),
            },
            (None, None) => Ok((0..pools.len())
                .filter(|i| {
                    pools[*i].obj.spec.auto_assign && pools[*i].allows(svc) && pools[*i].has(f)
                })
                .collect()),
        }
    }

    /// Whether the Service may have the address it asks for.
    fn check_requested(&self, w: &Wants, candidates: &[usize], ip: IpAddr) -> Result<(), String> {
        if !candidates
            .iter()
            .any(|i| self.pools.usable[*i].contains(ip))
        {
            return Err(format!(
                "{ip} is not in pool {:?}",
                w.pool.as_deref().unwrap_or("")
            ));
        }
        if self.reserved.contains(&ip) {
            return Err(format!("{ip} is held by a VirtualIP"));
        }
        self.holders
            .admits(&ip, &w.holder)
            .map_err(|e| format!("{ip} cannot be given: {e}"))
    }

    /// The first free, usable family-`f` address of the first of `candidates` that has one.
    fn first_free(&mut self, candidates: &[usize], f: Family) -> Option<IpAddr> {
        let Allocator {
            pools,
            reserved,
            holders,
            cursors,
            ..
        } = self;
        for &i in candidates {
            let ranges = pools.usable[i].ranges_of(f);
            let cursor = cursors
                .entry((i, f))
                .or_insert_with(|| Cursor::start(&ranges));
            let found = cursor.find(f, &ranges, |ip| {
                !holders.is_held(&ip) && !reserved.contains(&ip) && usable(ip)
            });
            if found.is_some() {
                return found;
            }
        }
        None
    }

    fn take(&mut self, ip: IpAddr, holder: &Holder) {
        self.holders.add(ip, holder);
        if let (Some(i), Some(k)) = (self.pools.pool_of(ip), holder.key.clone()) {
            self.shared.note(i, k, ip);
        }
    }

    /// Why no family-`f` address could be found in `candidates`.
    fn exhausted(&self, candidates: &[usize], f: Family) -> String {
        let pools = &self.pools.usable;
        if candidates.is_empty() {
            return format!("no VirtualIPPool with {f} addresses allows this Service");
        }
        let total: u64 = candidates.iter().map(|i| pools[*i].total()).sum();
        format!(
            "no free {f} address in {} ({total} addresses, all in use)",
            candidates
                .iter()
                .map(|i| format!("pool {:?}", pools[*i].name))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Whether the address may be a virtual address at all, as a host route (not unspecified,
/// loopback, multicast, broadcast or link-local).
fn usable(ip: IpAddr) -> bool {
    crate::model::address::check_virtual_address(&VirtualAddress {
        address: ip,
        prefix_len: if Family::of(&ip) == Family::V4 {
            32
        } else {
            128
        },
    })
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ANNOTATION_IPS, ANNOTATION_POOL, ANNOTATION_SHARED, VirtualIPPool};
    use crate::controller::lb::services::tests::{lb_service, with_ingress};
    use crate::controller::lb::services::wants;
    use crate::model::pool::tests::{ip, pool};

    /// Allocates for these Services (ours, oldest first) from these pools.
    fn run(pools: &[Arc<VirtualIPPool>], services: &[Service], reserved: &[&str]) -> Allocation {
        let services: Vec<Arc<Service>> = services.iter().cloned().map(Arc::new).collect();
        let parsed: Vec<(&Arc<Service>, Wants)> = services
            .iter()
            .map(|s| (s, wants(s).expect("readable")))
            .collect();
        let reserved: HashSet<IpAddr> = reserved.iter().map(|s| ip(s)).collect();
        allocate(&Pools::read(pools), &reserved, &parsed, BTreeMap::new())
    }

    fn got(a: &Allocation, name: &str) -> Vec<IpAddr> {
        a.assigned[&("default".to_string(), name.to_string())]
            .values()
            .copied()
            .collect()
    }

    fn failure<'a>(a: &'a Allocation, name: &str) -> Option<&'a str> {
        a.failures
            .get(&("default".to_string(), name.to_string()))
            .map(String::as_str)
    }

    #[test]
    fn an_existing_address_is_kept_before_new_services_take_the_first_free() {
        let pools = [pool("p", &["198.51.100.0/29"], 1)];
        // 198.51.100.0 is the /29's network address but usable as a /32.
        let young_has = with_ingress(lb_service("young", 20, &[]), &["198.51.100.0"]);
        let a = run(&pools, &[lb_service("old", 10, &[]), young_has], &[]);
        assert_eq!(got(&a, "young"), [ip("198.51.100.0")], "kept");
        assert_eq!(got(&a, "old"), [ip("198.51.100.1")], "the first free one");
    }

    #[test]
    fn a_pool_without_the_familys_addresses_refuses_instead_of_panicking() {
        // An IPv6-only pool named by a Service that wants IPv4 (the default family).
        let pools = [pool("v6", &["2001:db8::/125"], 1)];
        let a = run(
            &pools,
            &[lb_service("web", 1, &[(ANNOTATION_POOL, "v6")])],
            &[],
        );
        assert!(got_none(&a, "web"), "no address of a family the pool lacks");
        let why = failure(&a, "web").expect("the Service is told why");
        assert!(why.contains("IPv4"), "{why}");
    }

    fn got_none(a: &Allocation, name: &str) -> bool {
        a.assigned
            .get(&("default".to_string(), name.to_string()))
            .is_none_or(|m| m.is_empty())
    }

    #[test]
    fn an_address_no_longer_allowed_is_not_kept() {
        let pools = [pool("p", &["198.51.100.0/29"], 1)];
        // Outside every pool, and one of a user's VirtualIPs.
        let outside = with_ingress(lb_service("a", 1, &[]), &["203.0.113.1"]);
        let reserved = with_ingress(lb_service("b", 2, &[]), &["198.51.100.3"]);
        // Another pool named than the one holding it.
        let moved = with_ingress(
            lb_service("c", 3, &[(ANNOTATION_POOL, "q")]),
            &["198.51.100.4"],
        );
        let a = run(&pools, &[outside, reserved, moved], &["198.51.100.3"]);
        assert_eq!(got(&a, "a"), [ip("198.51.100.0")]);
        assert_eq!(got(&a, "b"), [ip("198.51.100.1")]);
        assert_eq!(failure(&a, "c"), Some("pool \"q\" does not exist"));
        assert!(
            got(&a, "c").is_empty(),
            "a Service with addresses keeps only what it may"
        );
    }

    #[test]
    fn requested_addresses_are_given_or_refused_with_the_reason() {
        let pools = [pool("p", &["198.51.100.0/29"], 1)];
        let a = run(
            &pools,
            &[
                lb_service("mine", 1, &[(ANNOTATION_IPS, "198.51.100.5")]),
                lb_service("taken", 2, &[(ANNOTATION_IPS, "198.51.100.5")]),
                lb_service("vip", 3, &[(ANNOTATION_IPS, "198.51.100.6")]),
                lb_service("nowhere", 4, &[(ANNOTATION_IPS, "203.0.113.1")]),
            ],
            &["198.51.100.6"],
        );
        assert_eq!(got(&a, "mine"), [ip("198.51.100.5")]);
        assert!(
            failure(&a, "taken")
                .unwrap()
                .starts_with("198.51.100.5 cannot be given")
        );
        assert_eq!(
            failure(&a, "vip"),
            Some("198.51.100.6 is held by a VirtualIP")
        );
        assert_eq!(
            failure(&a, "nowhere"),
            Some("203.0.113.1 is in no usable VirtualIPPool")
        );
    }

    #[test]
    fn services_with_one_key_share_an_address_when_their_ports_differ() {
        let pools = [pool("p", &["198.51.100.0/29"], 1)];
        let shared = |name: &str, age: i64, port: i32| {
            let mut s = lb_service(name, age, &[(ANNOTATION_SHARED, "k")]);
            s.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = port;
            s
        };
        let a = run(
            &pools,
            &[shared("a", 1, 80), shared("b", 2, 443), shared("c", 3, 80)],
            &[],
        );
        assert_eq!(got(&a, "a"), [ip("198.51.100.0")]);
        assert_eq!(got(&a, "b"), [ip("198.51.100.0")], "shared");
        assert_eq!(
            got(&a, "c"),
            [ip("198.51.100.1")],
            "port 80 clashes: another address"
        );
        assert_eq!(a.holders.of(&ip("198.51.100.0")).len(), 2);
    }

    #[test]
    fn a_new_service_gets_every_required_family_or_nothing() {
        let pools = [pool("p", &["198.51.100.0/31"], 1)];
        let mut dual = lb_service("dual", 1, &[]);
        dual.spec.as_mut().unwrap().ip_families = Some(vec!["IPv4".into(), "IPv6".into()]);
        let mut prefer = dual.clone();
        prefer.metadata.name = Some("prefer".into());
        prefer.spec.as_mut().unwrap().ip_family_policy = Some("PreferDualStack".into());
        let a = run(&pools, &[dual, prefer], &[]);
        assert!(got(&a, "dual").is_empty(), "its IPv4 address is given back");
        assert_eq!(
            failure(&a, "dual"),
            Some("no VirtualIPPool with IPv6 addresses allows this Service")
        );
        assert_eq!(
            got(&a, "prefer"),
            [ip("198.51.100.0")],
            "the IPv4 one it freed"
        );
        assert_eq!(failure(&a, "prefer"), None);
        // Exhausted: the pool is named with its size.
        let a = run(
            &pools,
            &[
                lb_service("a", 1, &[]),
                lb_service("b", 2, &[]),
                lb_service("c", 3, &[]),
            ],
            &[],
        );
        assert_eq!(
            failure(&a, "c"),
            Some("no free IPv4 address in pool \"p\" (2 addresses, all in use)")
        );
    }

    #[test]
    fn users_virtual_ips_reserve_their_addresses_but_pool_routers_do_not() {
        let spec: crate::api::VirtualIpSpec = serde_json::from_str(
            r#"{"addresses":["198.51.100.1/24"],"excludedAddresses":["2001:db8::1/64"]}"#,
        )
        .unwrap();
        let user = VirtualIP::new("user", spec.clone());
        let mut router = VirtualIP::new("p-ipv4-0", spec);
        router.metadata.labels = Some([(LABEL_POOL.to_string(), "p".to_string())].into());
        let r = reserved(&[Arc::new(user), Arc::new(router)]);
        assert_eq!(r, HashSet::from([ip("198.51.100.1"), ip("2001:db8::1")]));
    }
}
