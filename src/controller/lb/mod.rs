//! `type: LoadBalancer` Services on VRRP, without I/O: allocate each Service its addresses from
//! a `VirtualIPPool`, group the addresses onto a few shared virtual routers per pool (VirtualIPs
//! the controller owns), and say in each Service's status which node answers for it.
//!
//! * Allocations live in the Services themselves (`status.loadBalancer.ingress`): a restarted
//!   controller reads them back and keeps every one that is still allowed, oldest Service
//!   first, before it allocates anything new. An address is never given twice, except to
//!   Services that may share it (MetalLB's rules: the same `kube-vrrp.io/allow-shared-ip`
//!   key, no port in common, and `externalTrafficPolicy: Local` only with the same selector).
//! * Grouping: a Cluster-policy address goes to router `index % spread` of its pool and
//!   family, where `index` is its position in the pool, in sets of `spread` routers of at
//!   most [`ROUTER_ADDRESSES`] addresses each (so the first 4,096 addresses of a pool with
//!   spread 2 ride on 2 routers). Each router ranks the nodes by rendezvous hashing of its name
//!   and the node's: masters spread over nodes, and a node joining or leaving moves only the
//!   routers it ranks first on. `externalTrafficPolicy: Local` Services get one router per
//!   namespace and selector (Services of one selector have their endpoints on the same
//!   nodes), whose `activeNodes` are the nodes with a ready endpoint of every one of them:
//!   a master that loses its last endpoint hands over by tracker, not by a restart.
//! * The routers' addresses are host routes (/32, /128) listed after the first as
//!   `excludedAddresses` (keepalived `virtual_ipaddress_excluded`): advertisements stay one
//!   address long.
//!
//! The pipeline, one room per stage: `pools` (which pools are usable; a pool's ranges and
//! rules are [`crate::model::pool`]'s) → `services` (which Services are ours, what each asks
//! for) → `allocation` (keep, then allocate from a `cursor`, with `sharing` rules) →
//! `endpoints` and `grouping` (routers and their nodes) → `status` (what each Service and
//! pool says).

mod allocation;
mod cursor;
mod endpoints;
mod grouping;
mod pools;
mod services;
mod sharing;
mod status;
mod types;

pub(crate) use services::{current_condition, current_ingress};
pub use types::{LbPlan, LbWorld, Router, ServiceOutcome};

use crate::api::VirtualIPPoolStatus;

/// The whole Service side for one moment of the world.
pub fn plan(world: &LbWorld) -> LbPlan {
    let mut out = LbPlan::default();

    // 1. Pools: parse, check the VRRP settings as a router would use them, refuse overlaps.
    // An invalid pool is frozen: its routers and addresses stay as they are.
    let pools = pools::Pools::read(world.pools);
    for (name, problem) in &pools.frozen {
        out.frozen.insert(name.clone());
        out.pools.insert(
            name.clone(),
            VirtualIPPoolStatus {
                problem: Some(problem.clone()),
                ..Default::default()
            },
        );
    }

    // 2. Services: ours, oldest first, and what each asks for; the ones no longer ours lose
    // our condition.
    let requests = services::read(world.services, world.classless);
    for key in requests.released {
        out.services.insert(
            key,
            ServiceOutcome {
                ingress: Vec::new(),
                condition: None,
                events: Vec::new(),
            },
        );
    }

    // 3. Addresses: keep what each Service has while it is allowed, then allocate what is
    // missing; users' VirtualIPs' addresses are never given.
    let reserved = allocation::reserved(world.vips);
    let allocation = allocation::allocate(&pools, &reserved, &requests.parsed, requests.invalid);

    // 4. Routers: every address onto its pool's routers, Local ones active where the
    // Services have ready endpoints.
    let ready = endpoints::ready_nodes(world.slices);
    let grouping = grouping::group(&pools, &allocation.holders, &ready);
    out.routers = grouping::routers(&grouping, &pools, world.nodes);

    // 5. Statuses: who answers for each Service's addresses; each pool's usage.
    let decided = status::Decided {
        pools: &pools,
        parsed: &requests.parsed,
        allocation: &allocation,
        grouping: &grouping,
        routers: &out.routers,
        observed: status::observed_routers(world.vips),
        now: world.now,
    };
    decided.services(world.services, &mut out.services);
    for (i, pool) in pools.usable.iter().enumerate() {
        out.pools.insert(pool.name.clone(), decided.pool(i));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{VirtualIPPool, VirtualIPPoolSpec};
    use k8s_openapi::api::core::v1::{Node, Service};
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::jiff::Timestamp;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    fn svc(i: usize) -> Arc<Service> {
        Arc::new(Service {
            metadata: ObjectMeta {
                name: Some(format!("s{i:05}")),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                ports: Some(vec![ServicePort {
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        })
    }

    fn node(n: &str) -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta {
                name: Some(n.into()),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    fn run(services: usize, classless: bool) -> LbPlan {
        let pool = Arc::new(VirtualIPPool::new(
            "p",
            VirtualIPPoolSpec {
                addresses: vec!["2001:db8:1::/112".into(), "198.51.100.64/30".into()],
                auto_assign: true,
                service_allocation: None,
                spread: None,
                vrrp: Default::default(),
            },
        ));
        plan(&LbWorld {
            pools: &[pool],
            services: &(0..services).map(svc).collect::<Vec<_>>(),
            slices: &[],
            vips: &[],
            nodes: &[node("n1"), node("n2")],
            classless,
            now: Timestamp::now(),
        })
    }

    #[test]
    fn any_number_of_services_rides_on_a_bounded_number_of_routers_spread_over_nodes() {
        // IPv4 first: the /30's 4 addresses, then the Services get nothing more of IPv4.
        let p = run(4, true);
        assert_eq!(p.routers.len(), 2, "{:?}", p.routers.keys());
        let first = |r: &Router| r.spec.priorities[0].node.clone();
        let tops: BTreeSet<String> = p.routers.values().map(first).collect();
        assert_eq!(tops.len(), 2, "each router puts another node first");
        let p = run(5, true);
        let refused = &p.services[&("default".to_string(), "s00004".to_string())];
        assert!(refused.ingress.is_empty());
        let c = refused.condition.as_ref().unwrap();
        assert_eq!(c.reason, "AllocationFailed");
        assert!(c.message.contains("no free IPv4 address"), "{}", c.message);
        // Not ours: class-less Services when the controller serves no class-less ones.
        assert!(run(3, false).services.is_empty());
    }

    #[test]
    fn a_router_holds_at_most_its_share_and_advertises_one_address() {
        let pool = Arc::new(VirtualIPPool::new(
            "p",
            VirtualIPPoolSpec {
                addresses: vec!["2001:db8:1::/112".into()],
                auto_assign: true,
                service_allocation: None,
                spread: None,
                vrrp: Default::default(),
            },
        ));
        let services: Vec<Arc<Service>> = (0..5000)
            .map(|i| {
                let mut s = (*svc(i)).clone();
                s.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into()]);
                Arc::new(s)
            })
            .collect();
        let p = plan(&LbWorld {
            pools: &[pool],
            services: &services,
            slices: &[],
            vips: &[],
            nodes: &[node("n1"), node("n2")],
            classless: true,
            now: Timestamp::now(),
        });
        // 2 routers per 4,096 addresses: 5,000 take 4.
        assert_eq!(
            p.routers.keys().collect::<Vec<_>>(),
            ["p-ipv6-0", "p-ipv6-1", "p-ipv6-2", "p-ipv6-3"]
        );
        for r in p.routers.values() {
            assert_eq!(r.spec.addresses.len(), 1);
            assert!(r.spec.excluded_addresses.len() < grouping::ROUTER_ADDRESSES as usize);
        }
        let held: usize = p
            .routers
            .values()
            .map(|r| 1 + r.spec.excluded_addresses.len())
            .sum();
        assert_eq!(held, 5000);
    }
}
