//! Grouping the given addresses onto a few routers per pool (VirtualIPs the controller owns)
//! and ranking the nodes of each router.
//!
//! A Cluster-policy address goes to router `index % spread` of its pool and family, where
//! `index` is its position in the pool, in sets of `spread` routers of at most
//! [`ROUTER_ADDRESSES`] addresses each. `externalTrafficPolicy: Local` addresses get one
//! router per namespace and selector, active only on nodes with a ready endpoint of every
//! Service on it. Each router ranks the nodes by rendezvous hashing of its seed and the node's
//! name, rotated by its number, so masters spread over the nodes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

use super::pools::{Pool, Pools};
use super::sharing::Holders;
use super::types::{Router, ServiceKey};
use crate::api::{ActiveNodes, NodePriority};
use crate::model::pool::{from_int, router_spec, to_int};
use crate::vrrp::Family;

/// Most addresses one router holds: its VirtualIP and each node's entry stay near 100 KB.
pub(crate) const ROUTER_ADDRESSES: u128 = 2048;
/// Nodes ranked explicitly per router (priority 200 down); the others get 100.
const RANKED: usize = 100;

/// One router's addresses and what its VirtualIP is made from.
pub(crate) struct Group {
    /// Index into the usable pools.
    pub pool: usize,
    pub addrs: BTreeSet<u128>,
    pub family: Family,
    /// `externalTrafficPolicy: Local`: namespace and selector.
    pub local: Option<String>,
    /// Local only: nodes with a ready endpoint of every Service on the router.
    pub active: Option<BTreeSet<String>>,
    /// A Service on it, named when no node is active.
    pub first_service: ServiceKey,
    /// Rendezvous seed and rotation of its node order.
    pub seed: String,
    pub rotate: usize,
}

/// Every router and which router holds each address.
pub(crate) struct Grouping {
    /// Router (VirtualIP) name → its group.
    pub groups: BTreeMap<String, Group>,
    pub router_of: HashMap<IpAddr, String>,
}

/// Where an address of `pool` goes: (router name, rendezvous seed, rotation).
pub(crate) fn place(pool: &Pool, ip: IpAddr, local: Option<&str>) -> (String, String, usize) {
    let seed = format!("{}-{}", pool.name, Family::of(&ip).as_key());
    match local {
        Some(l) => {
            let h = fnv(&[l]) as u32;
            (format!("{seed}-local-{h:08x}"), seed, h as usize)
        }
        None => {
            let idx = pool.index_of(ip).unwrap_or(0);
            let set = idx / (pool.spread * ROUTER_ADDRESSES);
            let n = set * pool.spread + idx % pool.spread;
            (
                format!("{seed}-{n}"),
                seed,
                usize::try_from(n).unwrap_or_default(),
            )
        }
    }
}

/// Puts every held address of a usable pool on its router (a frozen pool's are left out).
pub(crate) fn group(
    pools: &Pools,
    holders: &Holders,
    ready: &HashMap<ServiceKey, BTreeSet<String>>,
) -> Grouping {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut router_of: HashMap<IpAddr, String> = HashMap::new();
    for (ip, hs) in holders.iter() {
        let Some(i) = pools.pool_of(*ip) else {
            continue;
        }; // a frozen pool's
        let local = hs[0].local.clone();
        let (name, seed, rotate) = place(&pools.usable[i], *ip, local.as_deref());
        let g = groups.entry(name.clone()).or_insert_with(|| Group {
            pool: i,
            addrs: BTreeSet::new(),
            family: Family::of(ip),
            local: local.clone(),
            active: None,
            first_service: hs[0].service.clone(),
            seed,
            rotate,
        });
        g.addrs.insert(to_int(*ip));
        if local.is_some() {
            for h in hs {
                let nodes = ready.get(&h.service).cloned().unwrap_or_default();
                g.active = Some(match g.active.take() {
                    None => nodes,
                    Some(a) => a.intersection(&nodes).cloned().collect(),
                });
            }
        }
        router_of.insert(*ip, name);
    }
    Grouping { groups, router_of }
}

/// The VirtualIP of each router: the pool's settings, its addresses, and, when the pool sets
/// no priorities, the eligible nodes ranked for it.
pub(crate) fn routers(
    grouping: &Grouping,
    pools: &Pools,
    nodes: &[Arc<Node>],
) -> BTreeMap<String, Router> {
    let node_names: Vec<String> = nodes.iter().map(|n| n.name_any()).collect();
    let mut out = BTreeMap::new();
    for (name, g) in &grouping.groups {
        let pool = &pools.usable[g.pool];
        let addrs: Vec<IpAddr> = g.addrs.iter().map(|n| from_int(g.family, *n)).collect();
        let mut spec = router_spec(pool.obj, &addrs);
        if spec.priorities.is_empty() {
            let eligible: Vec<&str> = nodes
                .iter()
                .zip(&node_names)
                .filter(|(n, _)| {
                    spec.node_selector
                        .iter()
                        .all(|(k, v)| n.labels().get(k) == Some(v))
                })
                .map(|(_, name)| name.as_str())
                .collect();
            spec.priorities = spread_priorities(&g.seed, g.rotate, &eligible);
        }
        if g.local.is_some() {
            spec.active_nodes = Some(ActiveNodes {
                nodes: g.active.iter().flatten().cloned().collect(),
                reason: Some(format!(
                    "no ready endpoint of Service {}/{} on the node (externalTrafficPolicy Local)",
                    g.first_service.0, g.first_service.1
                )),
            });
        }
        out.insert(
            name.clone(),
            Router {
                pool: pool.name.clone(),
                spec,
            },
        );
    }
    out
}

/// FNV-1a over the parts, each followed by a zero byte.
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Rendezvous ranking of the nodes by `seed`, rotated by `rotate`: routers 0, 1, 2... of a
/// pool and family (one seed) each put another node first, and a node joining or leaving
/// shifts the order only around its own place.
fn spread_priorities(seed: &str, rotate: usize, nodes: &[&str]) -> Vec<NodePriority> {
    let mut ranked: Vec<(u64, &str)> = nodes.iter().map(|n| (fnv(&[seed, n]), *n)).collect();
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    if !ranked.is_empty() {
        let k = rotate % ranked.len();
        ranked.rotate_left(k);
    }
    ranked
        .iter()
        .take(RANKED)
        .enumerate()
        .map(|(i, (_, n))| NodePriority {
            node: n.to_string(),
            priority: 200 - i as u8,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::lb::sharing::Holder;
    use crate::model::pool::tests::{ip, pool};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn holder(name: &str, local: Option<&str>) -> Holder {
        Holder {
            service: ("default".into(), name.into()),
            key: Some("k".into()),
            ports: vec![("TCP".into(), 80)],
            local: local.map(Into::into),
        }
    }

    #[test]
    fn cluster_addresses_go_round_robin_in_sets_of_spread_routers() {
        let all = [pool("p", &["2001:db8::/112", "198.51.100.0/24"], 1)];
        let pools = Pools::read(&all);
        let p = &pools.usable[0];
        let name = |s: &str| place(p, ip(s), None).0;
        assert_eq!(name("198.51.100.0"), "p-ipv4-0");
        assert_eq!(name("198.51.100.1"), "p-ipv4-1");
        assert_eq!(name("198.51.100.2"), "p-ipv4-0");
        // Spread 2: the first 4,096 addresses ride on routers 0 and 1, the next on 2 and 3.
        assert_eq!(name("2001:db8::fff"), "p-ipv6-1");
        assert_eq!(name("2001:db8::1000"), "p-ipv6-2");
        assert_eq!(name("2001:db8::1001"), "p-ipv6-3");
        let (_, seed, rotate) = place(p, ip("2001:db8::1001"), None);
        assert_eq!((seed.as_str(), rotate), ("p-ipv6", 3));
        // Local: one router per selector, whatever the address.
        let (a, _, _) = place(p, ip("198.51.100.0"), Some("default/app=x"));
        let (b, _, _) = place(p, ip("198.51.100.1"), Some("default/app=x"));
        let (c, _, _) = place(p, ip("198.51.100.1"), Some("default/app=y"));
        assert!(a.starts_with("p-ipv4-local-") && a.len() == "p-ipv4-local-".len() + 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn local_routers_are_active_where_every_service_on_them_has_a_ready_endpoint() {
        let all = [pool("p", &["198.51.100.0/24"], 1)];
        let pools = Pools::read(&all);
        let mut holders = Holders::default();
        holders.add(ip("198.51.100.10"), &holder("a", Some("default/app=x")));
        holders.add(ip("198.51.100.10"), &holder("b", Some("default/app=x")));
        holders.add(ip("198.51.100.11"), &holder("c", None));
        holders.add(ip("203.0.113.1"), &holder("d", None)); // in no usable pool
        let key = |s: &str| ("default".to_string(), s.to_string());
        let set = |ns: &[&str]| ns.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        let ready = HashMap::from([
            (key("a"), set(&["n1", "n2"])),
            (key("b"), set(&["n2", "n3"])),
        ]);
        let grouping = group(&pools, &holders, &ready);
        assert_eq!(grouping.groups.len(), 2);
        assert_eq!(grouping.router_of.len(), 2);
        assert_eq!(grouping.router_of[&ip("198.51.100.11")], "p-ipv4-1");
        let local = &grouping.groups[&grouping.router_of[&ip("198.51.100.10")]];
        assert_eq!(local.active, Some(set(&["n2"])));
        assert_eq!(grouping.groups["p-ipv4-1"].active, None);

        let node = |n: &str| {
            Arc::new(Node {
                metadata: ObjectMeta {
                    name: Some(n.into()),
                    ..Default::default()
                },
                ..Default::default()
            })
        };
        let routers = routers(&grouping, &pools, &[node("n1"), node("n2"), node("n3")]);
        let r = &routers[&grouping.router_of[&ip("198.51.100.10")]];
        assert_eq!(r.pool, "p");
        assert_eq!(r.spec.addresses, ["198.51.100.10/32"]);
        assert_eq!(r.spec.active_nodes.as_ref().unwrap().nodes, ["n2"]);
        assert_eq!(r.spec.priorities.len(), 3);
        assert!(routers["p-ipv4-1"].spec.active_nodes.is_none());
    }

    #[test]
    fn rendezvous_ranking_rotates_and_moves_little_when_a_node_leaves() {
        let nodes = ["n1", "n2", "n3", "n4"];
        let order = |rotate: usize, nodes: &[&str]| {
            spread_priorities("p-ipv4", rotate, nodes)
                .into_iter()
                .map(|p| p.node)
                .collect::<Vec<_>>()
        };
        let r0 = order(0, &nodes);
        let r1 = order(1, &nodes);
        assert_eq!(r0[1..], r1[..3], "rotated by one");
        assert_eq!(
            spread_priorities("p-ipv4", 0, &nodes)
                .iter()
                .map(|p| p.priority)
                .collect::<Vec<_>>(),
            [200, 199, 198, 197]
        );
        // Without the last-ranked node, the others keep their order.
        let without: Vec<&str> = nodes.iter().copied().filter(|n| *n != r0[3]).collect();
        assert_eq!(order(0, &without), r0[..3]);
        assert!(spread_priorities("p-ipv4", 5, &[]).is_empty());
        let many: Vec<String> = (0..150).map(|i| format!("n{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let ranked = spread_priorities("p-ipv4", 0, &many);
        assert_eq!(ranked.len(), RANKED);
        assert_eq!(ranked.last().unwrap().priority, 101);
    }
}
