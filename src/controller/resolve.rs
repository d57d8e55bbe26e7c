//! The pure middle of the controller's pipeline (validate → **resolve** → publish → status):
//! from every `VirtualIP` and every `Node`, decide each object's virtual router ID, its
//! eligible nodes and their priorities and unicast peers, and what each node must run. No
//! client calls: unit-tested from plain values.
//!
//! VRIDs are unique per L2 segment. The controller cannot see segments, so it takes the subnet
//! of an object's first address (per family) as its segment: objects in one subnet share a
//! segment. Explicit VRIDs are honoured; allocated ones are kept while in use (read back from
//! `status.virtualRouterID`); conflicts are reported on the newer object, which is not deployed
//! (the older keeps running: a condition, never a flap).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::conditions::reasons;
use crate::api::VirtualIpSpec;
use crate::model::address::split_interface;
use crate::model::spec::ValidatedVirtualIp;
use crate::vrrp::{Family, VirtualAddress};

/// What the resolver needs of a `VirtualIP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VipInput {
    pub name: String,
    /// RFC 3339 creation time: older objects win conflicts (then the name decides).
    pub created: String,
    pub spec: VirtualIpSpec,
    /// `status.virtualRouterID` from an earlier allocation.
    pub allocated_vrid: Option<u8>,
    /// `spec.addresses` as validation read them (an entry's `dev` taken off), never parsed
    /// again here. Excluded addresses are not placed by resolution (a pool's routers carry
    /// their Services' addresses there): they ride along with the object.
    pub addresses: Vec<VirtualAddress>,
    /// `spec.unicastPeers`, read by validation.
    pub unicast_peers: Vec<IpAddr>,
}

impl VipInput {
    /// A live object that passed validation: what it read is carried, not the text again.
    pub(crate) fn validated(
        v: ValidatedVirtualIp,
        created: String,
        allocated_vrid: Option<u8>,
    ) -> VipInput {
        // Validation lists `addresses`, then `excludedAddresses`.
        let mut addresses = v.addresses;
        addresses.truncate(v.spec.addresses.len());
        VipInput {
            name: v.name,
            created,
            spec: v.spec,
            allocated_vrid,
            addresses,
            unicast_peers: v.unicast_peers,
        }
    }

    /// An object being deleted, which some node may still run: whatever of its addresses
    /// reads is held until it is released (it was validated when it was deployed, and it is
    /// never deployed again).
    pub(crate) fn releasing(
        name: String,
        created: String,
        spec: VirtualIpSpec,
        allocated_vrid: Option<u8>,
    ) -> VipInput {
        let addresses = spec
            .addresses
            .iter()
            .filter_map(|a| split_interface(a).ok()?.0.parse().ok())
            .collect();
        VipInput {
            name,
            created,
            spec,
            allocated_vrid,
            addresses,
            unicast_peers: Vec::new(),
        }
    }
}

/// What the resolver needs of a `Node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeInput {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// InternalIP addresses (unicast peers).
    pub addresses: Vec<IpAddr>,
    /// Its agent has registered: only such a node runs virtual routers.
    pub agent: bool,
}

/// What is taken before any live object asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reserved {
    /// Every Node's InternalIP and ExternalIP addresses, with what to call them ("node n1's
    /// InternalIP"): never a virtual address, on whichever node it would run.
    pub node_addresses: BTreeMap<IpAddr, String>,
    /// Deleted objects that some node may still run (their finalizer waits for the nodes to
    /// release them): their addresses and VRIDs stay theirs until then, so that no other
    /// object starts on them while the old instances still hand over.
    pub releasing: Vec<VipInput>,
}

/// One node's part in one virtual router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub node: String,
    pub priority: u8,
    /// The other members' addresses of this family when unicast; empty: multicast.
    pub unicast_peers: Vec<IpAddr>,
}

/// The outcome for one `VirtualIP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolution {
    Deployed {
        vrid: u8,
        /// Per family present in the addresses.
        members: Vec<Member>,
    },
    /// Not deployed; `reason` is a condition reason, `message` says what to change.
    Rejected {
        reason: &'static str,
        message: String,
    },
}

use crate::model::address::{Segment, segment};

/// Resolves every object; the result is keyed by object name.
pub(crate) fn resolve(
    vips: &[VipInput],
    nodes: &[NodeInput],
    reserved: &Reserved,
) -> BTreeMap<String, Resolution> {
    let mut order: Vec<&VipInput> = vips.iter().collect();
    order.sort_by(|a, b| (&a.created, &a.name).cmp(&(&b.created, &b.name)));
    let mut out = BTreeMap::new();
    let mut parsed: Vec<(&VipInput, Vec<VirtualAddress>)> = Vec::new();
    for v in order {
        match not_a_node_address(v.addresses.clone(), reserved) {
            Ok(addrs) => parsed.push((v, addrs)),
            Err(r) => {
                out.insert(v.name.clone(), r);
            }
        }
    }
    let mut used = VridTable::default();
    let mut owners = Owners::default();
    // What objects being deleted still hold is claimed before anything else.
    for v in &reserved.releasing {
        let addrs = &v.addresses;
        if let Some(vrid) = v.spec.virtual_router_id.or(v.allocated_vrid) {
            used.claim(segments_of(addrs), vrid, &v.name);
        }
        for a in addrs {
            owners.insert(a.address, v.name.clone());
        }
        owners.releasing.insert(v.name.clone());
    }
    // Explicit VRIDs and kept allocations are claimed next, oldest first, so that a new object
    // can never take the VRID an older one already runs with.
    let mut chosen = claim_wanted(&parsed, &mut used, &mut owners, &mut out);
    // Then allocate for the rest: the lowest VRID free on every segment of the object.
    for (v, addrs) in &parsed {
        if out.contains_key(&v.name) || chosen.contains_key(&v.name) {
            continue;
        }
        let segs = segments_of(addrs);
        match used.lowest_free(&segs) {
            Some(vrid) => {
                used.claim(segs, vrid, &v.name);
                chosen.insert(v.name.clone(), vrid);
            }
            None => {
                out.insert(
                    v.name.clone(),
                    rejected(
                        reasons::VRID_EXHAUSTED,
                        "all 255 virtual router IDs are in use on this segment".into(),
                    ),
                );
            }
        }
    }
    for (v, addrs) in &parsed {
        let Some(&vrid) = chosen.get(&v.name) else {
            continue;
        };
        let resolution = match members(v, addrs, nodes) {
            Some(members) => Resolution::Deployed { vrid, members },
            None => rejected(reasons::NO_ELIGIBLE_NODES, no_members(&v.spec, nodes)),
        };
        out.insert(v.name.clone(), resolution);
    }
    out
}

/// Refuses an object naming a Node's own address: deployed on another node it would take the
/// node's address away (ARP), and on that node it could never run.
fn not_a_node_address(
    addrs: Vec<VirtualAddress>,
    reserved: &Reserved,
) -> Result<Vec<VirtualAddress>, Resolution> {
    match addrs
        .iter()
        .find_map(|a| reserved.node_addresses.get(&a.address).map(|n| (a, n)))
    {
        Some((a, whose)) => Err(rejected(
            reasons::NODE_ADDRESS,
            format!(
                "{} is {whose}: a virtual address must not be a node's own address",
                a.address
            ),
        )),
        None => Ok(addrs),
    }
}

/// Who holds each address; some holders are objects being deleted.
#[derive(Default)]
struct Owners {
    by_address: BTreeMap<IpAddr, String>,
    releasing: BTreeSet<String>,
}

impl Owners {
    fn insert(&mut self, a: IpAddr, name: String) {
        self.by_address.insert(a, name);
    }

    /// Why `a` cannot be taken, if another object holds it.
    fn taken(&self, a: IpAddr) -> Option<String> {
        let o = self.by_address.get(&a)?;
        Some(if self.releasing.contains(o) {
            format!(
                "{a} is still held by VirtualIP {o:?}, which is being deleted: it runs here once every node has released it"
            )
        } else {
            format!("{a} is already held by VirtualIP {o:?}")
        })
    }

    fn holder_text(&self, name: &str) -> String {
        if self.releasing.contains(name) {
            format!("VirtualIP {name:?}, which is being deleted (until every node has released it)")
        } else {
            format!("VirtualIP {name:?}")
        }
    }
}

/// The first pass, oldest first: each object's addresses are taken unless an older object holds
/// one, and its explicit or kept VRID is claimed unless an older object uses it on one of its
/// segments. Rejections go to `out`; the VRIDs claimed are returned by object name.
fn claim_wanted(
    parsed: &[(&VipInput, Vec<VirtualAddress>)],
    used: &mut VridTable,
    owners: &mut Owners,
    out: &mut BTreeMap<String, Resolution>,
) -> BTreeMap<String, u8> {
    let mut chosen: BTreeMap<String, u8> = BTreeMap::new();
    for (v, addrs) in parsed {
        if let Some(why) = addrs.iter().find_map(|a| owners.taken(a.address)) {
            out.insert(v.name.clone(), rejected(reasons::DUPLICATE_ADDRESS, why));
            continue;
        }
        let wanted = v.spec.virtual_router_id.or(v.allocated_vrid);
        if let Some(vrid) = wanted {
            let segs = segments_of(addrs);
            if let Some(holder) = segs.iter().find_map(|s| used.holder(s, vrid)) {
                out.insert(
                    v.name.clone(),
                    rejected(
                        reasons::VRID_CONFLICT,
                        format!(
                            "virtual router ID {vrid} is already used on this segment by {}",
                            owners.holder_text(holder)
                        ),
                    ),
                );
                continue;
            }
            used.claim(segs, vrid, &v.name);
            chosen.insert(v.name.clone(), vrid);
        }
        for a in addrs {
            owners.insert(a.address, v.name.clone());
        }
    }
    chosen
}

/// A segment as the controller guesses it: the network of an address, or any of a family's
/// (a host address says nothing of its segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Guess {
    Any(Family),
    On(Segment),
}

impl Guess {
    fn family(&self) -> Family {
        match self {
            Guess::Any(f) => *f,
            Guess::On(s) => s.family,
        }
    }
}

/// The segments of an object: per family, that of its first address. A host address (/32,
/// /128: a pool's Service addresses) says nothing about its segment: it counts as on every
/// segment of its family, and every segment as on its.
fn segments_of(addrs: &[VirtualAddress]) -> BTreeSet<Guess> {
    let mut seen = BTreeSet::new();
    let mut fams = BTreeSet::new();
    for a in addrs {
        if fams.insert(a.family()) {
            let full = match a.family() {
                Family::V4 => 32,
                Family::V6 => 128,
            };
            seen.insert(if a.prefix_len == full {
                Guess::Any(a.family())
            } else {
                Guess::On(segment(a))
            });
        }
    }
    seen
}

/// The VRIDs in use, per segment, with the object using each.
#[derive(Default)]
struct VridTable(BTreeMap<Guess, BTreeMap<u8, String>>);

impl VridTable {
    /// Who uses `vrid` on `seg`: on "any segment" of a family, whoever uses it on one of the
    /// family's segments; on a real segment, whoever uses it there or on "any segment".
    fn holder(&self, seg: &Guess, vrid: u8) -> Option<&String> {
        let any = Guess::Any(seg.family());
        if *seg == any {
            self.0
                .iter()
                .filter(|(k, _)| k.family() == seg.family())
                .find_map(|(_, m)| m.get(&vrid))
        } else {
            self.0
                .get(seg)
                .and_then(|m| m.get(&vrid))
                .or_else(|| self.0.get(&any).and_then(|m| m.get(&vrid)))
        }
    }

    /// The lowest VRID nobody uses on any of `segs`.
    fn lowest_free(&self, segs: &BTreeSet<Guess>) -> Option<u8> {
        (1..=255u8).find(|id| segs.iter().all(|s| self.holder(s, *id).is_none()))
    }

    fn claim(&mut self, segs: BTreeSet<Guess>, vrid: u8, name: &str) {
        for s in segs {
            self.0.entry(s).or_default().insert(vrid, name.to_string());
        }
    }
}

/// Whether `spec.nodeSelector` matches node `n`.
fn selected(spec: &VirtualIpSpec, n: &NodeInput) -> bool {
    spec.node_selector
        .iter()
        .all(|(k, val)| n.labels.get(k) == Some(val))
}

/// Why no node can run an object, and what to look at.
fn no_members(spec: &VirtualIpSpec, nodes: &[NodeInput]) -> String {
    let matching: Vec<&str> = nodes
        .iter()
        .filter(|n| selected(spec, n))
        .map(|n| n.name.as_str())
        .collect();
    let selector: Vec<String> = spec
        .node_selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let agents = "check the kube-vrrp agent DaemonSet's pods (kubectl get pods -A -l app.kubernetes.io/component=agent: ImagePullBackOff? Pending?)";
    match (nodes.is_empty(), matching.is_empty(), selector.is_empty()) {
        (true, _, _) => "the cluster has no Nodes yet".into(),
        (false, true, _) => format!(
            "no node matches spec.nodeSelector {} (of {} nodes): label the nodes that should hold the addresses, or change the selector",
            selector.join(","),
            nodes.len()
        ),
        (false, false, true) => format!(
            "no kube-vrrp agent runs on any of the {} nodes: {agents}",
            nodes.len()
        ),
        (false, false, false) => format!(
            "the nodes spec.nodeSelector {} matches ({}) run no kube-vrrp agent: {agents}",
            selector.join(","),
            matching.join(", ")
        ),
    }
}

/// Each eligible node's part (the nodes with an agent `spec.nodeSelector` matches), in node
/// order; `None` when no node is eligible.
fn members(v: &VipInput, addrs: &[VirtualAddress], nodes: &[NodeInput]) -> Option<Vec<Member>> {
    let eligible: Vec<&NodeInput> = nodes
        .iter()
        .filter(|n| n.agent && selected(&v.spec, n))
        .collect();
    if eligible.is_empty() {
        return None;
    }
    let families: BTreeSet<Family> = addrs.iter().map(VirtualAddress::family).collect();
    Some(
        eligible
            .iter()
            .map(|n| member(v, n, &eligible, &families))
            .collect(),
    )
}

/// Node `n`'s priority and unicast peers: with `unicast` the other eligible nodes' addresses of
/// the object's families, plus explicit peers (routers outside the cluster, say); never the
/// node itself.
fn member(
    v: &VipInput,
    n: &NodeInput,
    eligible: &[&NodeInput],
    families: &BTreeSet<Family>,
) -> Member {
    let (spec, peers) = (&v.spec, &v.unicast_peers);
    let priority = spec
        .priorities
        .iter()
        .find(|p| p.node == n.name)
        .map(|p| p.priority)
        .unwrap_or(spec.default_priority);
    let mut unicast_peers: Vec<IpAddr> = if spec.unicast {
        eligible
            .iter()
            .filter(|o| o.name != n.name)
            .flat_map(|o| o.addresses.iter().copied())
            .filter(|a| families.contains(&Family::of(a)))
            .collect()
    } else {
        Vec::new()
    };
    for &p in peers {
        if !unicast_peers.contains(&p) && !n.addresses.contains(&p) {
            unicast_peers.push(p);
        }
    }
    Member {
        node: n.name.clone(),
        priority,
        unicast_peers,
    }
}

fn rejected(reason: &'static str, message: String) -> Resolution {
    Resolution::Rejected { reason, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::NodePriority;

    fn spec(addresses: &[&str], vrid: Option<u8>) -> VirtualIpSpec {
        let yaml = format!(
            "addresses: [{}]",
            addresses
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut s: VirtualIpSpec = yaml_serde::from_str(&yaml).unwrap();
        s.virtual_router_id = vrid;
        s
    }

    /// A test object as the controller admits it: validated (a test spec is valid).
    fn vip(name: &str, created: &str, s: VirtualIpSpec) -> VipInput {
        let v =
            crate::model::spec::validate(name.into(), s, crate::model::spec::VridRule::Allocated)
                .unwrap();
        VipInput::validated(v, created.into(), None)
    }

    fn node(name: &str, ip: &str, labels: &[(&str, &str)]) -> NodeInput {
        NodeInput {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            addresses: vec![ip.parse().unwrap()],
            agent: true,
        }
    }

    fn nodes() -> Vec<NodeInput> {
        vec![
            node("n1", "198.51.100.11", &[("role", "edge")]),
            node("n2", "198.51.100.12", &[("role", "edge")]),
            node("n3", "198.51.100.13", &[]),
        ]
    }

    fn vrid_of(r: &BTreeMap<String, Resolution>, name: &str) -> Option<u8> {
        match r.get(name) {
            Some(Resolution::Deployed { vrid, .. }) => Some(*vrid),
            _ => None,
        }
    }

    #[test]
    fn allocates_the_lowest_free_vrid_per_segment_and_honours_explicit_ones() {
        let vips = vec![
            vip(
                "a",
                "2026-01-01T00:00:00Z",
                spec(&["198.51.100.50/24"], None),
            ),
            vip(
                "b",
                "2026-01-02T00:00:00Z",
                spec(&["198.51.100.51/24"], Some(1)),
            ),
            vip(
                "c",
                "2026-01-03T00:00:00Z",
                spec(&["203.0.113.50/24"], None),
            ),
        ];
        let r = resolve(&vips, &nodes(), &Reserved::default());
        // b asked for 1 explicitly: a gets 2 on the same segment; c, another subnet, gets 1.
        assert_eq!(
            (vrid_of(&r, "a"), vrid_of(&r, "b"), vrid_of(&r, "c")),
            (Some(2), Some(1), Some(1))
        );
    }

    #[test]
    fn a_nodes_own_address_is_refused_whichever_node_it_would_run_on() {
        let reserved = Reserved {
            node_addresses: [(
                "198.51.100.11".parse().unwrap(),
                "the InternalIP of node n1".to_string(),
            )]
            .into(),
            ..Reserved::default()
        };
        let vips = vec![
            vip(
                "takes-n1",
                "2026-01-01T00:00:00Z",
                spec(&["198.51.100.11/24"], None),
            ),
            vip(
                "fine",
                "2026-01-02T00:00:00Z",
                spec(&["198.51.100.50/24"], None),
            ),
        ];
        let r = resolve(&vips, &nodes(), &reserved);
        match r.get("takes-n1") {
            Some(Resolution::Rejected { reason, message }) => {
                assert_eq!(*reason, reasons::NODE_ADDRESS);
                assert_eq!(
                    message,
                    "198.51.100.11 is the InternalIP of node n1: a virtual address must not be a node's own address"
                );
            }
            other => panic!("{other:?}"),
        }
        // It claims nothing: the next object gets VRID 1.
        assert_eq!(vrid_of(&r, "fine"), Some(1));
    }

    #[test]
    fn what_a_deleted_object_still_holds_is_not_handed_to_another() {
        // "old" is being deleted and still runs on VRID 1 with .50; "waiting" was refused .50
        // while "old" was live, and "new" wants any VRID.
        let mut old = vip(
            "old",
            "2026-01-01T00:00:00Z",
            spec(&["198.51.100.50/24"], None),
        );
        old.allocated_vrid = Some(1);
        let reserved = Reserved {
            releasing: vec![old],
            ..Reserved::default()
        };
        let vips = vec![
            vip(
                "waiting",
                "2026-01-02T00:00:00Z",
                spec(&["198.51.100.50/24"], None),
            ),
            vip(
                "new",
                "2026-01-03T00:00:00Z",
                spec(&["198.51.100.60/24"], None),
            ),
            vip(
                "explicit",
                "2026-01-04T00:00:00Z",
                spec(&["198.51.100.70/24"], Some(1)),
            ),
        ];
        let r = resolve(&vips, &nodes(), &reserved);
        match r.get("waiting") {
            Some(Resolution::Rejected { reason, message }) => {
                assert_eq!(*reason, reasons::DUPLICATE_ADDRESS);
                assert!(message.contains("which is being deleted"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(vrid_of(&r, "new"), Some(2));
        match r.get("explicit") {
            Some(Resolution::Rejected { reason, message }) => {
                assert_eq!(*reason, reasons::VRID_CONFLICT);
                assert!(
                    message.contains("\"old\", which is being deleted"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        // Once released, the waiting object runs, and the explicit one gets its VRID.
        let r = resolve(&vips, &nodes(), &Reserved::default());
        assert_eq!(
            (vrid_of(&r, "waiting"), vrid_of(&r, "explicit")),
            (Some(2), Some(1))
        );
    }

    #[test]
    fn allocations_are_stable_while_in_use() {
        let mut a = vip(
            "a",
            "2026-01-02T00:00:00Z",
            spec(&["198.51.100.50/24"], None),
        );
        a.allocated_vrid = Some(7);
        let b = vip(
            "b",
            "2026-01-01T00:00:00Z",
            spec(&["198.51.100.51/24"], None),
        );
        let r = resolve(&[a, b], &nodes(), &Reserved::default());
        assert_eq!((vrid_of(&r, "a"), vrid_of(&r, "b")), (Some(7), Some(1)));
    }

    #[test]
    fn an_explicit_conflict_is_reported_on_the_newer_object_only() {
        let vips = vec![
            vip(
                "new",
                "2026-02-01T00:00:00Z",
                spec(&["198.51.100.52/24"], Some(9)),
            ),
            vip(
                "old",
                "2026-01-01T00:00:00Z",
                spec(&["198.51.100.50/24"], Some(9)),
            ),
        ];
        let r = resolve(&vips, &nodes(), &Reserved::default());
        assert_eq!(vrid_of(&r, "old"), Some(9));
        match &r["new"] {
            Resolution::Rejected { reason, message } => {
                assert_eq!(*reason, "VRIDConflict");
                assert!(
                    message.contains("already used on this segment by VirtualIP \"old\""),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_duplicate_address_is_reported_on_the_newer_object() {
        let vips = vec![
            vip(
                "first",
                "2026-01-01T00:00:00Z",
                spec(&["198.51.100.50/24"], None),
            ),
            vip(
                "second",
                "2026-01-02T00:00:00Z",
                spec(&["198.51.100.50/24", "198.51.100.60/24"], None),
            ),
        ];
        let r = resolve(&vips, &nodes(), &Reserved::default());
        assert!(vrid_of(&r, "first").is_some());
        assert!(matches!(
            &r["second"],
            Resolution::Rejected {
                reason: "DuplicateAddress",
                ..
            }
        ));
    }

    #[test]
    fn eligible_nodes_priorities_and_unicast_peers() {
        let mut s = spec(&["198.51.100.50/24"], None);
        s.node_selector = [("role".to_string(), "edge".to_string())].into();
        s.priorities = vec![NodePriority {
            node: "n2".into(),
            priority: 200,
        }];
        s.unicast = true;
        let r = resolve(
            &[vip("a", "2026-01-01T00:00:00Z", s)],
            &nodes(),
            &Reserved::default(),
        );
        let Resolution::Deployed { members, .. } = &r["a"] else {
            panic!("{r:?}")
        };
        let view: Vec<(&str, u8, Vec<String>)> = members
            .iter()
            .map(|m| {
                (
                    m.node.as_str(),
                    m.priority,
                    m.unicast_peers.iter().map(|p| p.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                ("n1", 100, vec!["198.51.100.12".to_string()]),
                ("n2", 200, vec!["198.51.100.11".to_string()])
            ]
        );
        let mut s = spec(&["198.51.100.50/24"], None);
        s.node_selector = [("role".to_string(), "core".to_string())].into();
        let r = resolve(
            &[vip("b", "2026-01-01T00:00:00Z", s)],
            &nodes(),
            &Reserved::default(),
        );
        let message = |r: &BTreeMap<String, Resolution>| match &r["b"] {
            Resolution::Rejected {
                reason: "NoEligibleNodes",
                message,
            } => message.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            message(&r),
            "no node matches spec.nodeSelector role=core (of 3 nodes): label the nodes that should hold the addresses, or change the selector"
        );
        // Nodes, but no agent running (what ImagePullBackOff looks like): said so, with or
        // without a selector.
        let mut idle = nodes();
        idle.iter_mut().for_each(|n| n.agent = false);
        let none = |s: VirtualIpSpec| {
            message(&resolve(
                &[vip("b", "2026-01-01T00:00:00Z", s)],
                &idle,
                &Reserved::default(),
            ))
        };
        let plain = none(spec(&["198.51.100.50/24"], None));
        assert!(
            plain.starts_with("no kube-vrrp agent runs on any of the 3 nodes: check the kube-vrrp agent DaemonSet's pods"),
            "{plain}"
        );
        let mut s = spec(&["198.51.100.50/24"], None);
        s.node_selector = [("role".to_string(), "edge".to_string())].into();
        let edge = none(s);
        assert!(
            edge.starts_with(
                "the nodes spec.nodeSelector role=edge matches (n1, n2) run no kube-vrrp agent"
            ),
            "{edge}"
        );
    }

    #[test]
    fn dual_stack_objects_claim_their_vrid_on_both_segments() {
        let vips = vec![
            vip(
                "dual",
                "2026-01-01T00:00:00Z",
                spec(&["198.51.100.50/24", "2001:db8:1::50/64"], None),
            ),
            vip(
                "v6",
                "2026-01-02T00:00:00Z",
                spec(&["2001:db8:1::60/64"], None),
            ),
            vip(
                "v4",
                "2026-01-03T00:00:00Z",
                spec(&["198.51.100.60/24"], None),
            ),
        ];
        let r = resolve(&vips, &nodes(), &Reserved::default());
        assert_eq!(
            (vrid_of(&r, "dual"), vrid_of(&r, "v6"), vrid_of(&r, "v4")),
            (Some(1), Some(2), Some(2))
        );
    }

    #[test]
    fn a_full_segment_is_reported() {
        let vips: Vec<VipInput> = (0..256)
            .map(|i| {
                vip(
                    &format!("v{i:03}"),
                    "2026-01-01T00:00:00Z",
                    spec(&[&format!("2001:db8:1::{i:x}/64")], None),
                )
            })
            .collect();
        let r = resolve(&vips, &nodes(), &Reserved::default());
        assert_eq!(
            r.values()
                .filter(|x| matches!(x, Resolution::Deployed { .. }))
                .count(),
            255
        );
        assert!(matches!(
            &r["v255"],
            Resolution::Rejected {
                reason: "VRIDExhausted",
                ..
            }
        ));
    }

    fn addrs(list: &[&str]) -> Vec<VirtualAddress> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn an_address_naming_its_interface_is_read_once_by_validation() {
        // "ip/prefix dev IFACE" (a two-armed director's gateway) is not an address as text:
        // resolution takes what validation read.
        let mut s = spec(&["198.51.100.50/24", "203.0.113.254/24 dev eth1"], None);
        s.excluded_addresses = vec!["198.51.100.60/24".to_string()].into();
        let v = vip("gw", "1", s);
        assert_eq!(
            v.addresses,
            addrs(&["198.51.100.50/24", "203.0.113.254/24"]),
            "the advertised addresses: excluded ones are not placed"
        );
        let r = resolve(&[v], &[node("n1", "192.0.2.11", &[])], &Reserved::default());
        assert!(matches!(r["gw"], Resolution::Deployed { .. }), "{r:?}");
        // A deleted object holds whatever of its addresses reads.
        let gone = VipInput::releasing(
            "old".into(),
            "0".into(),
            spec(&["203.0.113.7/24 dev eth1"], Some(9)),
            None,
        );
        assert_eq!(gone.addresses, addrs(&["203.0.113.7/24"]));
    }

    #[test]
    fn an_object_is_on_its_first_address_segment_per_family_and_a_host_address_on_any() {
        let segs = segments_of(&addrs(&[
            "192.0.2.1/24",
            "198.51.100.1/24",
            "2001:db8::1/64",
        ]));
        assert_eq!(segs.len(), 2, "one per family, from the first address");
        assert!(segs.contains(&Guess::On(segment(&"192.0.2.1/24".parse().unwrap()))));
        let segs = segments_of(&addrs(&["192.0.2.1/32", "2001:db8::1/128"]));
        assert_eq!(
            segs,
            BTreeSet::from([Guess::Any(Family::V4), Guess::Any(Family::V6)])
        );
    }

    #[test]
    fn a_vrid_on_any_segment_collides_with_every_segment_of_its_family() {
        let seg_a = Guess::On(segment(&"192.0.2.1/24".parse().unwrap()));
        let seg_b = Guess::On(segment(&"198.51.100.1/24".parse().unwrap()));
        let any4 = Guess::Any(Family::V4);
        let any6 = Guess::Any(Family::V6);
        assert_eq!(
            segment(&"192.0.2.1/24".parse().unwrap()).to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            segment(&"2001:db8::1/64".parse().unwrap()).to_string(),
            "2001:db8::/64"
        );
        let mut used = VridTable::default();
        used.claim(BTreeSet::from([seg_a]), 1, "a");
        assert_eq!(used.holder(&seg_a, 1).map(String::as_str), Some("a"));
        assert_eq!(used.holder(&seg_b, 1), None, "another segment");
        assert_eq!(used.holder(&seg_a, 2), None, "another VRID");
        assert_eq!(used.holder(&any4, 1).map(String::as_str), Some("a"));
        assert_eq!(used.holder(&any6, 1), None, "another family");
        used.claim(BTreeSet::from([any4]), 2, "host");
        assert_eq!(used.holder(&seg_b, 2).map(String::as_str), Some("host"));
        assert_eq!(used.lowest_free(&BTreeSet::from([seg_b])), Some(1));
        assert_eq!(used.lowest_free(&BTreeSet::from([seg_a, seg_b])), Some(3));
        assert_eq!(used.lowest_free(&BTreeSet::from([any6])), Some(1));
    }

    #[test]
    fn a_member_has_its_priority_and_the_other_nodes_and_explicit_peers_of_its_families() {
        let mut s = spec(&["192.0.2.10/24"], None);
        s.unicast = true;
        s.unicast_peers = vec!["203.0.113.9".into(), "10.0.0.1".into()];
        s.priorities = vec![NodePriority {
            node: "n1".into(),
            priority: 200,
        }];
        let mut n2 = node("n2", "10.0.0.2", &[]);
        n2.addresses.push("2001:db8::2".parse().unwrap());
        let (n1, n3) = (node("n1", "10.0.0.1", &[]), node("n3", "10.0.0.3", &[]));
        let eligible = [&n1, &n2, &n3];
        let v4 = BTreeSet::from([Family::V4]);
        let m = member(&vip("v", "", s.clone()), &n1, &eligible, &v4);
        assert_eq!(m.priority, 200);
        let peers =
            |list: &[&str]| -> Vec<IpAddr> { list.iter().map(|a| a.parse().unwrap()).collect() };
        assert_eq!(
            m.unicast_peers,
            peers(&["10.0.0.2", "10.0.0.3", "203.0.113.9"])
        );
        let m = member(&vip("v", "", s.clone()), &n3, &eligible, &v4);
        assert_eq!(m.priority, s.default_priority);
        assert_eq!(
            m.unicast_peers,
            peers(&["10.0.0.1", "10.0.0.2", "203.0.113.9"]),
            "an explicit peer that is another node is not listed twice"
        );
        s.unicast = false;
        assert_eq!(
            member(&vip("v", "", s.clone()), &n1, &eligible, &v4).unicast_peers,
            peers(&["203.0.113.9"]),
            "explicit peers only, never the node itself"
        );
        s.node_selector = BTreeMap::from([("role".to_string(), "edge".to_string())]);
        assert_eq!(
            members(&vip("v", "", s), &addrs(&["192.0.2.10/24"]), &[n1, n2, n3]),
            None
        );
    }
}
