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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{
    ANNOTATION_IPS, ANNOTATION_POOL, ANNOTATION_SHARED, ActiveNodes, CONDITION_ANNOUNCED,
    LABEL_POOL, LOAD_BALANCER_CLASS, NodePriority, PoolRouter, VirtualIP, VirtualIPPool,
    VirtualIPPoolStatus, VirtualIpSpec,
};
use crate::vrrp::{Family, VirtualAddress};

/// Most addresses one router holds: its VirtualIP and each node's entry stay near 100 KB.
pub const ROUTER_ADDRESSES: u128 = 2048;
/// Default number of routers per pool and family that share out the masters.
pub const DEFAULT_SPREAD: u8 = 2;
/// Nodes ranked explicitly per router (priority 200 down); the others get 100.
const RANKED: usize = 100;

/// Everything the Service side of the controller reads.
pub struct LbWorld<'a> {
    pub pools: &'a [Arc<VirtualIPPool>],
    pub services: &'a [Arc<Service>],
    pub slices: &'a [Arc<EndpointSlice>],
    /// Every VirtualIP: the users' (their addresses are never allocated) and the pools'
    /// routers (their status says who is master).
    pub vips: &'a [Arc<VirtualIP>],
    pub nodes: &'a [Arc<Node>],
    /// Serve LoadBalancer Services that name no class.
    pub classless: bool,
    pub now: Timestamp,
}

/// One router to hold, as a VirtualIP owned by `pool`.
#[derive(Debug, Clone, PartialEq)]
pub struct Router {
    pub pool: String,
    pub spec: VirtualIpSpec,
}

/// What a Service's status should say.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceOutcome {
    /// The addresses, IPv4 first; empty: none.
    pub ingress: Vec<IpAddr>,
    /// Our condition; `None`: remove it (the Service is not ours any more).
    pub condition: Option<Condition>,
    /// Emitted once the status saying the same is written: (warning, reason, note).
    pub events: Vec<(bool, &'static str, String)>,
}

#[derive(Debug, Default)]
pub struct LbPlan {
    /// VirtualIP name → the router it should be.
    pub routers: BTreeMap<String, Router>,
    /// Pools whose routers are left as they are (the pool is invalid now: last known good).
    pub frozen: BTreeSet<String>,
    /// (namespace, name) → status, for every Service that is ours or was.
    pub services: BTreeMap<(String, String), ServiceOutcome>,
    pub pools: BTreeMap<String, VirtualIPPoolStatus>,
}

/// A pool's addresses of one family: inclusive ranges as integers (IPv4 in the low bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    family: Family,
    start: u128,
    end: u128,
}

fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_int(family: Family, n: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4((n as u32).into()),
        Family::V6 => IpAddr::V6(n.into()),
    }
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    }
}

/// "198.51.100.64/26", "198.51.100.200-198.51.100.220" or one address.
fn parse_range(text: &str) -> Result<Range, String> {
    let t = text.trim();
    if let Some((a, b)) = t.split_once('-') {
        let a: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: {a:?} is not an IP address"))?;
        let b: IpAddr = b
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: {b:?} is not an IP address"))?;
        if a.is_ipv4() != b.is_ipv4() {
            return Err(format!("{text:?} mixes IPv4 and IPv6"));
        }
        let (s, e) = (to_int(a), to_int(b));
        if s > e {
            return Err(format!("{text:?} ends before it starts"));
        }
        return Ok(Range {
            family: Family::of(&a),
            start: s,
            end: e,
        });
    }
    let (addr, len) = match t.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (t, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{text:?} is not a CIDR, a range or an address"))?;
    let bits = if ip.is_ipv4() { 32u32 } else { 128 };
    let len: u32 = match len {
        Some(l) => l
            .parse()
            .ok()
            .filter(|l| *l <= bits)
            .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {bits}"))?,
        None => bits,
    };
    let host_bits = bits - len;
    let mask: u128 = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let start = to_int(ip) & !mask;
    if start != to_int(ip) {
        return Err(format!(
            "{text:?} has host bits set: write {}/{len}",
            from_int(Family::of(&ip), start)
        ));
    }
    Ok(Range {
        family: Family::of(&ip),
        start,
        end: start | mask,
    })
}

/// A pool's address ranges, or what is wrong with it: its addresses, or its VRRP settings
/// as every router of it would use them (the same rules as a VirtualIP's).
fn parse_pool(p: &VirtualIPPool) -> Result<Vec<Range>, String> {
    let ranges = p
        .spec
        .addresses
        .iter()
        .map(|a| parse_range(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("spec.addresses: {e}"))?;
    for f in [Family::V4, Family::V6] {
        let Some(r) = ranges.iter().find(|r| r.family == f) else {
            continue;
        };
        let probe = router_spec(p, &[from_int(f, r.end)]);
        crate::model::spec::validate(p.name_any(), probe, crate::model::spec::VridRule::Allocated)
            .map_err(|(field, e)| format!("{}: {e}", field.replacen("spec.", "spec.vrrp.", 1)))?;
    }
    Ok(ranges)
}

/// Checks one pool on its own (`kube-vrrp check --cluster`): a summary, or the problem.
pub fn check_pool(p: &VirtualIPPool) -> Result<String, String> {
    let ranges = parse_pool(p)?;
    let count = |f: Family| {
        ranges
            .iter()
            .filter(|r| r.family == f)
            .map(|r| (r.end - r.start).saturating_add(1))
            .fold(0u128, u128::saturating_add)
    };
    Ok(format!(
        "{} IPv4 and {} IPv6 address(es)",
        count(Family::V4),
        count(Family::V6)
    ))
}

/// A usable pool.
struct Pool<'a> {
    name: String,
    obj: &'a VirtualIPPool,
    ranges: Vec<Range>,
    spread: u128,
}

impl Pool<'_> {
    fn contains(&self, ip: IpAddr) -> bool {
        let (f, n) = (Family::of(&ip), to_int(ip));
        self.ranges
            .iter()
            .any(|r| r.family == f && r.start <= n && n <= r.end)
    }

    /// Position among the pool's addresses of its family.
    fn index_of(&self, ip: IpAddr) -> Option<u128> {
        let (f, n) = (Family::of(&ip), to_int(ip));
        let mut before = 0u128;
        for r in self.ranges.iter().filter(|r| r.family == f) {
            if r.start <= n && n <= r.end {
                return Some(before + (n - r.start));
            }
            before = before.saturating_add(r.end - r.start + 1);
        }
        None
    }

    fn has(&self, f: Family) -> bool {
        self.ranges.iter().any(|r| r.family == f)
    }

    fn allows(&self, svc: &Service) -> bool {
        let Some(a) = &self.obj.spec.service_allocation else {
            return true;
        };
        let ns = svc.namespace().unwrap_or_default();
        (a.namespaces.is_empty() || a.namespaces.contains(&ns))
            && a.service_selector
                .iter()
                .all(|(k, v)| svc.labels().get(k) == Some(v))
    }

    fn total(&self) -> u64 {
        self.ranges
            .iter()
            .map(|r| u64::try_from((r.end - r.start).saturating_add(1)).unwrap_or(u64::MAX))
            .fold(0u64, u64::saturating_add)
    }
}

/// The VirtualIP settings of a pool's router holding `addrs` (sorted, at least one).
fn router_spec(pool: &VirtualIPPool, addrs: &[IpAddr]) -> VirtualIpSpec {
    let v = &pool.spec.vrrp;
    VirtualIpSpec {
        addresses: vec![host(addrs[0])],
        excluded_addresses: Arc::new(addrs[1..].iter().map(|a| host(*a)).collect()),
        interface: v.interface.clone(),
        virtual_router_id: None,
        version: v.version,
        advert_interval: v.advert_interval.clone(),
        max_learned_interval: None,
        preempt: v.preempt,
        preempt_delay: v.preempt_delay.clone(),
        node_selector: v.node_selector.clone(),
        priorities: v.priorities.clone(),
        default_priority: 100,
        unicast: v.unicast,
        unicast_peers: Vec::new(),
        virtual_mac: v.virtual_mac,
        accept_mode: false,
        garp: v.garp.clone(),
        authentication: None,
        health_checks: v.health_checks.clone(),
        track_interfaces: v.track_interfaces.clone(),
        notify: None,
        leave_cordoned_nodes: v.leave_cordoned_nodes,
        active_nodes: None,
    }
}

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

/// Who may share an address.
#[derive(Debug, Clone)]
struct Holder {
    service: (String, String),
    key: Option<String>,
    ports: Vec<(String, i32)>,
    /// `externalTrafficPolicy: Local`: namespace and selector.
    local: Option<String>,
}

fn compatible(new: &Holder, holders: &[Holder]) -> Result<(), String> {
    let Some(first) = holders.first() else {
        return Ok(());
    };
    let who = format!("{}/{}", first.service.0, first.service.1);
    if new.key.is_none() || holders.iter().any(|h| h.key != new.key) {
        return Err(format!(
            "it is used by Service {who} (Services share an address only with the same {ANNOTATION_SHARED} key)"
        ));
    }
    for h in holders {
        if let Some((p, n)) = new.ports.iter().find(|p| h.ports.contains(p)) {
            return Err(format!(
                "port {p}/{n} is also a port of Service {}/{}, which uses it",
                h.service.0, h.service.1
            ));
        }
        if h.local != new.local {
            return Err(format!(
                "Service {}/{} uses it, and externalTrafficPolicy Local shares only with the same policy and selector",
                h.service.0, h.service.1
            ));
        }
    }
    Ok(())
}

/// What a Service asks for.
struct Wants {
    families: Vec<Family>,
    /// Families that must be served (the rest: PreferDualStack, if a pool has them).
    required: usize,
    requested: BTreeMap<Family, IpAddr>,
    pool: Option<String>,
    holder: Holder,
}

fn wants(svc: &Service) -> Result<Wants, String> {
    let empty = Default::default();
    let spec: &k8s_openapi::api::core::v1::ServiceSpec = svc.spec.as_ref().unwrap_or(&empty);
    let ann = svc.annotations();
    let mut requested = BTreeMap::new();
    let text = ann
        .get(ANNOTATION_IPS)
        .cloned()
        .or(spec.load_balancer_ip.clone())
        .unwrap_or_default();
    for t in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let ip: IpAddr = t.parse().map_err(|_| {
            format!("{ANNOTATION_IPS} (or spec.loadBalancerIP): {t:?} is not an IP address")
        })?;
        if requested.insert(Family::of(&ip), ip).is_some() {
            return Err(format!(
                "{ANNOTATION_IPS}: one address per family, {t} is the second {}",
                Family::of(&ip)
            ));
        }
    }
    let mut families: Vec<Family> = spec
        .ip_families
        .iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        })
        .collect();
    if families.is_empty() {
        families = requested.keys().copied().collect();
    }
    if families.is_empty() {
        families.push(Family::V4);
    }
    if let Some(f) = requested.keys().find(|f| !families.contains(f)) {
        return Err(format!(
            "an {f} address is asked for, but spec.ipFamilies does not include {f}"
        ));
    }
    let required = match spec.ip_family_policy.as_deref() {
        Some("PreferDualStack") => 1,
        _ => families.len(),
    };
    let local = (spec.external_traffic_policy.as_deref() == Some("Local")).then(|| {
        let sel: Vec<String> = spec
            .selector
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let ns = svc.namespace().unwrap_or_default();
        if sel.is_empty() {
            // No selector: endpoints are the Service's own business.
            format!("{ns}/service={}", svc.name_any())
        } else {
            format!("{ns}/{}", sel.join(","))
        }
    });
    let mut ports: Vec<(String, i32)> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| (p.protocol.clone().unwrap_or_else(|| "TCP".into()), p.port))
        .collect();
    ports.sort();
    Ok(Wants {
        families,
        required,
        requested,
        pool: ann.get(ANNOTATION_POOL).cloned(),
        holder: Holder {
            service: (svc.namespace().unwrap_or_default(), svc.name_any()),
            key: ann.get(ANNOTATION_SHARED).cloned(),
            ports,
            local,
        },
    })
}

/// Whether `svc` is a LoadBalancer Service kube-vrrp serves.
pub fn is_ours(svc: &Service, classless: bool) -> bool {
    let Some(spec) = &svc.spec else { return false };
    spec.type_.as_deref() == Some("LoadBalancer")
        && svc.metadata.deletion_timestamp.is_none()
        && match spec.load_balancer_class.as_deref() {
            Some(c) => c == LOAD_BALANCER_CLASS,
            None => classless,
        }
}

pub fn current_ingress(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

pub fn current_condition(svc: &Service) -> Option<&Condition> {
    svc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == CONDITION_ANNOUNCED)
}

/// The whole Service side for one moment of the world.
pub fn plan(world: &LbWorld) -> LbPlan {
    let mut out = LbPlan::default();

    // Pools: parse, check the VRRP settings as a router would use them, refuse overlaps.
    let mut order: Vec<&Arc<VirtualIPPool>> = world
        .pools
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    order.sort_by_key(|p| {
        (
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.name_any(),
        )
    });
    let mut pools: Vec<Pool> = Vec::new();
    for p in order {
        let name = p.name_any();
        let (ranges, mut problem) = match parse_pool(p) {
            Ok(r) => (r, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        if problem.is_none() {
            'overlap: for r in &ranges {
                for other in &pools {
                    if let Some(o) = other
                        .ranges
                        .iter()
                        .find(|o| o.family == r.family && o.start <= r.end && r.start <= o.end)
                    {
                        problem = Some(format!(
                            "spec.addresses: {}-{} overlaps pool {:?} ({}-{})",
                            from_int(r.family, r.start),
                            from_int(r.family, r.end),
                            other.name,
                            from_int(o.family, o.start),
                            from_int(o.family, o.end)
                        ));
                        break 'overlap;
                    }
                }
            }
        }
        match problem {
            Some(problem) => {
                out.frozen.insert(name.clone());
                out.pools.insert(
                    name,
                    VirtualIPPoolStatus {
                        problem: Some(problem),
                        ..Default::default()
                    },
                );
            }
            None => pools.push(Pool {
                name,
                obj: p,
                ranges,
                spread: u128::from(p.spec.spread.unwrap_or(DEFAULT_SPREAD).clamp(1, 16)),
            }),
        }
    }
    let pool_of = |ip: IpAddr| pools.iter().position(|p| p.contains(ip));

    // Addresses of users' VirtualIPs are never allocated; the routers' are ours.
    let mut reserved: HashSet<IpAddr> = HashSet::new();
    for v in world.vips {
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
    // A frozen pool's addresses stay with whom they are.
    let frozen_ranges: Vec<Range> = world
        .pools
        .iter()
        .filter(|p| out.frozen.contains(&p.name_any()))
        .flat_map(|p| p.spec.addresses.iter().filter_map(|a| parse_range(a).ok()))
        .collect();
    let in_frozen = |ip: IpAddr| {
        let (f, n) = (Family::of(&ip), to_int(ip));
        frozen_ranges
            .iter()
            .any(|r| r.family == f && r.start <= n && n <= r.end)
    };

    // Services: ours, oldest first.
    let mut services: Vec<&Arc<Service>> = world.services.iter().collect();
    services.sort_by(|a, b| {
        fn key(s: &Service) -> (Option<Timestamp>, Option<&str>, Option<&str>) {
            (
                s.metadata.creation_timestamp.as_ref().map(|t| t.0),
                s.metadata.namespace.as_deref(),
                s.metadata.name.as_deref(),
            )
        }
        key(a).cmp(&key(b))
    });
    let mut holders: HashMap<IpAddr, Vec<Holder>> = HashMap::new();
    let mut assigned: BTreeMap<(String, String), BTreeMap<Family, IpAddr>> = BTreeMap::new();
    let mut failures: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut parsed: Vec<(&Arc<Service>, Wants)> = Vec::new();
    for svc in services {
        let key = (svc.namespace().unwrap_or_default(), svc.name_any());
        if !is_ours(svc, world.classless) {
            if current_condition(svc).is_some() {
                out.services.insert(
                    key,
                    ServiceOutcome {
                        ingress: Vec::new(),
                        condition: None,
                        events: Vec::new(),
                    },
                );
            }
            continue;
        }
        match wants(svc) {
            Ok(w) => parsed.push((svc, w)),
            Err(e) => {
                failures.insert(key, e);
            }
        }
    }

    // 1. Keep what each Service has, when it is still allowed (oldest first).
    for (svc, w) in &parsed {
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
            let frozen = in_frozen(ip);
            let allowed = frozen
                || pool_of(ip).is_some_and(|i| {
                    pools[i].allows(svc) && w.pool.as_ref().is_none_or(|p| *p == pools[i].name)
                });
            if !allowed || reserved.contains(&ip) {
                continue;
            }
            let hs = holders.get(&ip).map(Vec::as_slice).unwrap_or_default();
            if compatible(&w.holder, hs).is_err() {
                continue;
            }
            holders.entry(ip).or_default().push(w.holder.clone());
            kept.insert(f, ip);
        }
        assigned.insert(w.holder.service.clone(), kept);
    }

    // 2. Allocate what is missing, oldest first: the first free address of the first pool
    // that allows the Service (cursors only move forward within a pass).
    let mut cursors: HashMap<(usize, Family), (usize, u128)> = HashMap::new();
    let mut shared: HashMap<(usize, String), Vec<IpAddr>> = HashMap::new();
    for (ip, hs) in &holders {
        if let (Some(i), Some(k)) = (pool_of(*ip), hs.first().and_then(|h| h.key.clone())) {
            shared.entry((i, k)).or_default().push(*ip);
        }
    }
    for (svc, w) in &parsed {
        let key = w.holder.service.clone();
        let mut got = assigned.remove(&key).unwrap_or_default();
        let mut error = None;
        for (n, f) in w.families.iter().enumerate() {
            if got.contains_key(f) {
                continue;
            }
            let candidates: Vec<usize> = match (&w.pool, w.requested.get(f)) {
                (Some(name), _) => match pools.iter().position(|p| &p.name == name) {
                    Some(i) if pools[i].allows(svc) => vec![i],
                    Some(_) => {
                        error = Some(format!("pool {name:?} does not allow this Service"));
                        break;
                    }
                    None if out.frozen.contains(name) => {
                        error = Some(format!("pool {name:?} is invalid: see its status"));
                        break;
                    }
                    None => {
                        error = Some(format!("pool {name:?} does not exist"));
                        break;
                    }
                },
                (None, Some(ip)) => match pool_of(*ip) {
                    Some(i) if pools[i].allows(svc) => vec![i],
                    Some(i) => {
                        error = Some(format!(
                            "{ip} is in pool {:?}, which does not allow this Service",
                            pools[i].name
                        ));
                        break;
                    }
                    None => {
                        error = Some(format!("{ip} is in no usable VirtualIPPool"));
                        break;
                    }
                },
                (None, None) => (0..pools.len())
                    .filter(|i| {
                        pools[*i].obj.spec.auto_assign && pools[*i].allows(svc) && pools[*i].has(*f)
                    })
                    .collect(),
            };
            let mut found = None;
            if let Some(ip) = w.requested.get(f) {
                if !candidates.iter().any(|i| pools[*i].contains(*ip)) {
                    error = Some(format!(
                        "{ip} is not in pool {:?}",
                        w.pool.as_deref().unwrap_or("")
                    ));
                    break;
                }
                if reserved.contains(ip) {
                    error = Some(format!("{ip} is held by a VirtualIP"));
                    break;
                }
                let hs = holders.get(ip).map(Vec::as_slice).unwrap_or_default();
                if let Err(e) = compatible(&w.holder, hs) {
                    error = Some(format!("{ip} cannot be given: {e}"));
                    break;
                }
                found = Some(*ip);
            } else {
                // Share first, when the key allows and an address of the key fits.
                if let Some(k) = &w.holder.key {
                    found = candidates.iter().find_map(|i| {
                        shared.get(&(*i, k.clone()))?.iter().copied().find(|ip| {
                            Family::of(ip) == *f
                                && compatible(
                                    &w.holder,
                                    holders.get(ip).map(Vec::as_slice).unwrap_or_default(),
                                )
                                .is_ok()
                        })
                    });
                }
                if found.is_none() {
                    for &i in &candidates {
                        let pool = &pools[i];
                        let ranges: Vec<&Range> =
                            pool.ranges.iter().filter(|r| r.family == *f).collect();
                        let cur = cursors.entry((i, *f)).or_insert((0, ranges[0].start));
                        while cur.0 < ranges.len() {
                            let r = ranges[cur.0];
                            if cur.1 > r.end {
                                cur.0 += 1;
                                if cur.0 < ranges.len() {
                                    cur.1 = ranges[cur.0].start;
                                }
                                continue;
                            }
                            let ip = from_int(*f, cur.1);
                            let usable = !holders.contains_key(&ip)
                                && !reserved.contains(&ip)
                                && crate::model::address::check_virtual_address(&VirtualAddress {
                                    address: ip,
                                    prefix_len: if f == &Family::V4 { 32 } else { 128 },
                                })
                                .is_ok();
                            if usable {
                                found = Some(ip);
                                break;
                            }
                            cur.1 += 1;
                        }
                        if found.is_some() {
                            break;
                        }
                    }
                }
            }
            match found {
                Some(ip) => {
                    holders.entry(ip).or_default().push(w.holder.clone());
                    if let (Some(i), Some(k)) = (pool_of(ip), w.holder.key.clone()) {
                        let list = shared.entry((i, k)).or_default();
                        if !list.contains(&ip) {
                            list.push(ip);
                        }
                    }
                    got.insert(*f, ip);
                }
                None if n < w.required => {
                    let used: u64 = candidates.iter().map(|i| pools[*i].total()).sum();
                    error = Some(if candidates.is_empty() {
                        format!("no VirtualIPPool with {f} addresses allows this Service")
                    } else {
                        format!(
                            "no free {f} address in {} ({used} addresses, all in use)",
                            candidates
                                .iter()
                                .map(|i| format!("pool {:?}", pools[*i].name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
                    break;
                }
                None => {}
            }
        }
        if let Some(e) = error {
            // All or nothing for a new Service; one that has addresses keeps them.
            if current_ingress(svc).is_empty() {
                for ip in got.values() {
                    if let Some(hs) = holders.get_mut(ip) {
                        hs.retain(|h| h.service != key);
                        if hs.is_empty() {
                            holders.remove(ip);
                        }
                    }
                }
                got.clear();
            }
            failures.insert(key.clone(), e);
        }
        assigned.insert(key, got);
    }

    // Endpoints: (namespace, service) → nodes with a ready endpoint.
    let mut ready: HashMap<(String, String), BTreeSet<String>> = HashMap::new();
    for s in world.slices {
        let Some(svc) = s.labels().get("kubernetes.io/service-name") else {
            continue;
        };
        let set = ready
            .entry((s.namespace().unwrap_or_default(), svc.clone()))
            .or_default();
        for e in s.endpoints.iter().flatten() {
            let is_ready = e.conditions.as_ref().and_then(|c| c.ready) != Some(false);
            if let (true, Some(n)) = (is_ready, &e.node_name) {
                set.insert(n.clone());
            }
        }
    }

    // Routers: group every address.
    struct Group {
        pool: usize,
        addrs: BTreeSet<u128>,
        family: Family,
        local: Option<String>,
        active: Option<BTreeSet<String>>,
        first_service: (String, String),
        /// Rendezvous seed and rotation of its node order.
        seed: String,
        rotate: usize,
    }
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut router_of: HashMap<IpAddr, String> = HashMap::new();
    let mut services_per_pool: BTreeMap<usize, u64> = BTreeMap::new();
    for (ip, hs) in &holders {
        let Some(i) = pool_of(*ip) else { continue }; // a frozen pool's
        let pool = &pools[i];
        let f = Family::of(ip);
        let local = hs[0].local.clone();
        let seed = format!("{}-{}", pool.name, family_name(f));
        let (name, rotate) = match &local {
            Some(l) => {
                let h = fnv(&[l]) as u32;
                (format!("{seed}-local-{h:08x}"), h as usize)
            }
            None => {
                let idx = pool.index_of(*ip).unwrap_or(0);
                let set = idx / (pool.spread * ROUTER_ADDRESSES);
                let n = set * pool.spread + idx % pool.spread;
                (
                    format!("{seed}-{n}"),
                    usize::try_from(n).unwrap_or_default(),
                )
            }
        };
        let g = groups.entry(name.clone()).or_insert_with(|| Group {
            pool: i,
            addrs: BTreeSet::new(),
            family: f,
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
    for (key, got) in &assigned {
        if let Some(ip) = got.values().next()
            && let Some(i) = pool_of(*ip)
        {
            *services_per_pool.entry(i).or_default() += 1;
        }
        let _ = key;
    }
    let node_names: Vec<String> = world.nodes.iter().map(|n| n.name_any()).collect();
    for (name, g) in &groups {
        let pool = &pools[g.pool];
        let addrs: Vec<IpAddr> = g.addrs.iter().map(|n| from_int(g.family, *n)).collect();
        let mut spec = router_spec(pool.obj, &addrs);
        if spec.priorities.is_empty() {
            let eligible: Vec<&str> = world
                .nodes
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
        out.routers.insert(
            name.clone(),
            Router {
                pool: pool.name.clone(),
                spec,
            },
        );
    }

    // What each router's VirtualIP says now (written by the VirtualIP side).
    let vip_status: HashMap<String, &VirtualIP> = world
        .vips
        .iter()
        .filter(|v| v.labels().contains_key(LABEL_POOL))
        .map(|v| (v.name_any(), v.as_ref()))
        .collect();

    // Services' statuses.
    for (svc, w) in &parsed {
        let key = w.holder.service.clone();
        let ingress: Vec<IpAddr> = assigned
            .get(&key)
            .map(|got| got.values().copied().collect())
            .unwrap_or_default();
        let (status, reason, message) = match failures.get(&key) {
            Some(e) if ingress.is_empty() => (false, "AllocationFailed", e.clone()),
            _ if ingress.is_empty() => (
                false,
                "AllocationFailed",
                "no address could be given".to_string(),
            ),
            failure => {
                let mut parts = Vec::new();
                let mut all = true;
                let mut reason = "Announced";
                for ip in &ingress {
                    let router = router_of.get(ip).cloned().unwrap_or_default();
                    let vip = vip_status.get(&router);
                    let master = vip.and_then(|v| v.status.as_ref()?.master.clone());
                    let vrid = vip.and_then(|v| v.status.as_ref()?.virtual_router_id);
                    let nowhere = out
                        .routers
                        .get(&router)
                        .and_then(|r| r.spec.active_nodes.as_ref())
                        .is_some_and(|a| a.nodes.is_empty());
                    let at = match vrid {
                        Some(id) => format!("VirtualIP {router}, VRID {id}"),
                        None => format!("VirtualIP {router}"),
                    };
                    match master {
                        _ if nowhere => {
                            all = false;
                            reason = "NoReadyEndpoints";
                            parts.push(format!(
                                "no node has a ready endpoint: {ip} is announced nowhere ({at})"
                            ));
                        }
                        Some(m) => parts.push(format!("{m} answers for {ip} ({at})")),
                        None => {
                            all = false;
                            if reason == "Announced" {
                                reason = "NoMaster";
                            }
                            parts.push(format!("no node answers for {ip} yet ({at})"));
                        }
                    }
                }
                if let Some(e) = failure {
                    parts.push(format!("not served: {e}"));
                }
                (all, reason, parts.join("; "))
            }
        };
        let old = current_condition(svc);
        let mut events = Vec::new();
        let cur = current_ingress(svc);
        if ingress != cur && !ingress.is_empty() {
            let from: Vec<String> = ingress
                .iter()
                .filter(|ip| !cur.contains(ip))
                .map(|ip| {
                    let pool = pool_of(*ip)
                        .map(|i| pools[i].name.clone())
                        .unwrap_or_default();
                    format!("{ip} from pool {pool}")
                })
                .collect();
            if !from.is_empty() {
                events.push((false, "IPAllocated", from.join(", ")));
            }
        }
        let changed = old.is_none_or(|c| {
            c.status != if status { "True" } else { "False" }
                || c.reason != reason
                || c.message != message
        });
        if changed {
            events.push((!status && reason != "NoMaster", reason, message.clone()));
        }
        let condition = Condition {
            type_: CONDITION_ANNOUNCED.into(),
            status: if status { "True" } else { "False" }.into(),
            reason: reason.into(),
            message,
            observed_generation: svc.metadata.generation,
            last_transition_time: match old {
                Some(c) if c.status == if status { "True" } else { "False" } => {
                    c.last_transition_time.clone()
                }
                _ => Time(world.now),
            },
        };
        out.services.insert(
            key,
            ServiceOutcome {
                ingress,
                condition: Some(condition),
                events,
            },
        );
    }
    // Services we could not even read.
    for (key, e) in &failures {
        if out.services.contains_key(key) {
            continue;
        }
        let svc = world
            .services
            .iter()
            .find(|s| s.namespace().unwrap_or_default() == key.0 && s.name_any() == key.1)
            .expect("failure of a listed Service");
        let old = current_condition(svc);
        let changed = old.is_none_or(|c| c.message != *e || c.status != "False");
        out.services.insert(
            key.clone(),
            ServiceOutcome {
                ingress: Vec::new(),
                condition: Some(Condition {
                    type_: CONDITION_ANNOUNCED.into(),
                    status: "False".into(),
                    reason: "Invalid".into(),
                    message: e.clone(),
                    observed_generation: svc.metadata.generation,
                    last_transition_time: match old {
                        Some(c) if c.status == "False" => c.last_transition_time.clone(),
                        _ => Time(world.now),
                    },
                }),
                events: if changed {
                    vec![(true, "Invalid", e.clone())]
                } else {
                    Vec::new()
                },
            },
        );
    }

    // Pools' statuses.
    for (i, pool) in pools.iter().enumerate() {
        let used = holders.keys().filter(|ip| pool_of(**ip) == Some(i)).count() as u64;
        let total = pool.total();
        let mut routers = Vec::new();
        let mut masters: BTreeMap<String, u64> = BTreeMap::new();
        for (name, g) in groups.iter().filter(|(_, g)| g.pool == i) {
            let st = vip_status.get(name).and_then(|v| v.status.as_ref());
            let master = st.and_then(|s| s.master.clone());
            if let Some(m) = &master {
                *masters.entry(m.clone()).or_default() += g.addrs.len() as u64;
            }
            routers.push(PoolRouter {
                name: name.clone(),
                family: g.family.to_string(),
                addresses: g.addrs.len() as u64,
                virtual_router_id: st.and_then(|s| s.virtual_router_id),
                master,
                local: g.local.clone(),
            });
        }
        let summary = routers
            .iter()
            .map(|r| {
                format!(
                    "{}={}({})",
                    r.name,
                    r.master.as_deref().unwrap_or("-"),
                    r.addresses
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let refused = parsed
            .iter()
            .filter(|(svc, w)| {
                failures.contains_key(&w.holder.service)
                    && (w.pool.as_deref() == Some(&pool.name)
                        || (w.pool.is_none() && pool.obj.spec.auto_assign && pool.allows(svc)))
            })
            .count();
        out.pools.insert(
            pool.name.clone(),
            VirtualIPPoolStatus {
                total,
                used,
                free: total.saturating_sub(used),
                services: services_per_pool.get(&i).copied().unwrap_or_default(),
                summary: (!summary.is_empty()).then_some(summary),
                routers,
                masters: (!masters.is_empty()).then(|| {
                    masters
                        .iter()
                        .map(|(n, c)| format!("{n}={c}"))
                        .collect::<Vec<_>>()
                        .join(",")
                }),
                problem: (refused > 0)
                    .then(|| format!("{refused} Service(s) not served: see their Events")),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::VirtualIPPoolSpec;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

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
            assert!(r.spec.excluded_addresses.len() < ROUTER_ADDRESSES as usize);
        }
        let held: usize = p
            .routers
            .values()
            .map(|r| 1 + r.spec.excluded_addresses.len())
            .sum();
        assert_eq!(held, 5000);
    }

    #[test]
    fn pools_ranges_parse_and_refuse_with_the_reason() {
        assert_eq!(
            parse_range("198.51.100.64/30").unwrap().end
                - parse_range("198.51.100.64/30").unwrap().start,
            3
        );
        assert!(
            parse_range("198.51.100.65/30")
                .unwrap_err()
                .contains("host bits")
        );
        assert!(
            parse_range("198.51.100.9-198.51.100.1")
                .unwrap_err()
                .contains("ends before")
        );
        assert!(
            parse_range("198.51.100.1-2001:db8::1")
                .unwrap_err()
                .contains("mixes")
        );
    }
}
