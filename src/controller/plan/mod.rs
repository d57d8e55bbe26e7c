//! The controller's pipeline without I/O: validate → resolve → publish → status.
//!
//! [`plan`] takes what the watchers see (every `VirtualIP`, every `Node`, every per-node
//! configuration, the Secret passwords asked for) and returns what should be: each node's
//! configuration, each object's controller-owned status, the Events to emit and the
//! finalizers that may go. The I/O shell in `mod.rs` only diffs and writes.
//!
//! Stages, each in its room: [`secrets`] (the keys named, validation with their values),
//! [`liveness`] (which agents are alive and believed), resolution (`super::resolve`), the
//! entries each node runs (here), [`summary`] (what the believed entries say) and
//! [`verdict`] (phase, conditions, Events), [`shards`] (entries cut into objects).

mod findings;
mod liveness;
mod realservers;
mod secrets;
mod shards;
mod summary;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;
mod verdict;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::resolve::{self, Resolution, VipInput};
use crate::api::{NodeVirtualIP, SecretKeyRef, VirtualIP, VirtualIPNodeConfig, VirtualIPStatus};
use liveness::{Agents, silent_agents};
pub(crate) use secrets::{SecretValue, secret_refs};
pub(crate) use shards::config_node;
pub use shards::{shard, shard_name};

/// Keeps a deleted object until every node has released its addresses.
pub const FINALIZER: &str = "kube-vrrp.io/release";
/// An older master that still says Master in a heartbeat this long after a newer master's
/// transition is a split brain; before that, a takeover in progress.
pub(crate) const HANDOVER_GRACE_MS: i64 = 2000;
/// A deleted object is let go after this long even if some node never reported (its agent is
/// gone; a restarted agent removes stale addresses itself).
pub(crate) const RELEASE_TIMEOUT_SECS: i64 = 60;

/// Everything the controller knows at one moment.
pub struct World<'a> {
    pub vips: &'a [std::sync::Arc<VirtualIP>],
    pub nodes: &'a [std::sync::Arc<Node>],
    pub configs: &'a [std::sync::Arc<VirtualIPNodeConfig>],
    /// Passwords of the Secret references the objects name (see [`secret_refs`]).
    pub secrets: &'a BTreeMap<SecretKeyRef, SecretValue>,
    /// What the controller last announced of each VirtualIP (see [`Announced`]).
    pub announced: &'a BTreeMap<String, Announced>,
    pub now: Timestamp,
}

/// What a VirtualIP's status last told the world, as the controller wrote it: Events are
/// planned against this, not against the cached status, which may not show the last write
/// yet (two passes would then announce one change twice) and which holds the servers only as
/// words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Announced {
    /// The object it was announced for (one deleted and made again under its name is new).
    pub uid: Option<String>,
    pub master: Option<String>,
    pub servers: Option<summary::Servers>,
    pub conflict: bool,
}

/// An Event to emit on a VirtualIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEvent {
    pub vip: String,
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

#[derive(Debug, Default)]
pub struct Plan {
    /// Node name → the VirtualIPs it runs (sorted by name). Every node with a Node object.
    pub configs: BTreeMap<String, Vec<NodeVirtualIP>>,
    /// Object name → its controller-owned status (no `nodes`: those belong to the agents).
    pub statuses: BTreeMap<String, VirtualIPStatus>,
    /// Emitted once the status saying the same is written.
    pub events: Vec<PlannedEvent>,
    /// What each status announces: recorded once it is written (or found already there).
    pub announced: BTreeMap<String, Announced>,
    /// Deleted objects whose addresses are released everywhere: drop the finalizer.
    pub release: Vec<String>,
    /// Live objects without our finalizer yet.
    pub add_finalizer: Vec<String>,
}

/// The label that takes a node out of load balancing (MetalLB and kube-proxy honour it too).
pub(crate) const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Why a node must hand its addresses over and take none: it is excluded from load
/// balancers, or cordoned and the VirtualIP asks for that.
fn drain_reason(node: &Node, leave_cordoned: bool) -> Option<String> {
    let name = node.name_any();
    if node.labels().contains_key(EXCLUDE_LABEL) {
        return Some(format!("node {name} has the label {EXCLUDE_LABEL}"));
    }
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    (leave_cordoned && cordoned).then(|| format!("node {name} is cordoned"))
}

/// Why a node left out of `spec.activeNodes` takes none of the addresses.
fn inactive_reason(spec: &crate::api::VirtualIpSpec, node: &str) -> Option<String> {
    let active = spec.active_nodes.as_ref()?;
    if active.nodes.iter().any(|n| n == node) {
        return None;
    }
    Some(match &active.reason {
        Some(r) => format!("node {node} is not in spec.activeNodes: {r}"),
        None => format!("node {node} is not in spec.activeNodes"),
    })
}

/// A deleted object may go once no node reports it any more, or after
/// [`RELEASE_TIMEOUT_SECS`] (some node's agent never reported: it is gone).
fn release_due(vip: &VirtualIP, now: Timestamp) -> bool {
    let Some(deleted) = vip.metadata.deletion_timestamp.as_ref() else {
        return false;
    };
    let released = vip.status.as_ref().is_none_or(|s| s.nodes.is_empty());
    let waited = now.as_second() - deleted.0.as_second() > RELEASE_TIMEOUT_SECS;
    released || waited
}

fn has_finalizer(vip: &VirtualIP) -> bool {
    vip.finalizers().iter().any(|f| f == FINALIZER)
}

/// The live objects that passed validation, as resolution takes them (their specs with the
/// Secrets' values in); and the ones that did not, with why.
#[derive(Debug, Default)]
struct Admitted {
    inputs: Vec<VipInput>,
    invalid: BTreeMap<String, String>,
    /// Node addresses, and what deleted objects still hold.
    reserved: resolve::Reserved,
}

/// When `vip` was made (RFC 3339; older objects win conflicts).
fn created(vip: &VirtualIP) -> String {
    vip.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default()
}

/// The VRID an earlier pass allocated to `vip`.
fn allocated_vrid(vip: &VirtualIP) -> Option<u8> {
    vip.status.as_ref().and_then(|s| s.virtual_router_id)
}

/// Every Node's own addresses (InternalIP, ExternalIP), named for a reason.
fn node_addresses(world: &World) -> BTreeMap<IpAddr, String> {
    let mut out = BTreeMap::new();
    for n in world.nodes {
        let addrs = n.status.as_ref().and_then(|s| s.addresses.as_ref());
        for a in addrs.into_iter().flatten() {
            if let ("InternalIP" | "ExternalIP", Ok(ip)) = (a.type_.as_str(), a.address.parse()) {
                out.insert(ip, format!("the {} of node {}", a.type_, n.name_any()));
            }
        }
    }
    out
}

/// Stage 1: finalizers to drop (deleted and released) or to add (live), and validation.
fn admit(world: &World, nodes: &[resolve::NodeInput], out: &mut Plan) -> Admitted {
    let mut a = Admitted::default();
    a.reserved.node_addresses = node_addresses(world);
    for vip in world.vips {
        let name = vip.name_any();
        if vip.metadata.deletion_timestamp.is_some() {
            if has_finalizer(vip) {
                if release_due(vip, world.now) {
                    out.release.push(name);
                } else {
                    a.reserved.releasing.push(VipInput::releasing(
                        name,
                        created(vip),
                        vip.spec.clone(),
                        allocated_vrid(vip),
                    ));
                }
            }
            continue;
        }
        if !has_finalizer(vip) {
            out.add_finalizer.push(name.clone());
        }
        match secrets::validate(vip, world.secrets) {
            Ok(validated) => {
                let mut input = VipInput::validated(validated, created(vip), allocated_vrid(vip));
                realservers::spell_out(&mut input.spec, nodes);
                a.inputs.push(input);
            }
            Err(e) => {
                a.invalid.insert(name, e);
            }
        }
    }
    a
}

/// One node's entry for a deployed object: the spec as that node runs it (its priority, its
/// peers, no cluster-only fields; the Secrets' values are in since validation) and why it
/// must hand over, if it must.
fn node_entry(
    input: &VipInput,
    vrid: u8,
    member: &resolve::Member,
    node: Option<&Node>,
    generation: Option<i64>,
) -> NodeVirtualIP {
    let mut spec = input.spec.clone();
    spec.virtual_router_id = Some(vrid);
    spec.priorities.clear();
    spec.default_priority = member.priority;
    spec.node_selector.clear();
    spec.unicast = false;
    spec.unicast_peers = member.unicast_peers.iter().map(IpAddr::to_string).collect();
    spec.leave_cordoned_nodes = false;
    spec.active_nodes = None;
    let drain = node
        .and_then(|n| drain_reason(n, input.spec.leave_cordoned_nodes))
        .or_else(|| inactive_reason(&input.spec, &member.node));
    NodeVirtualIP {
        drain,
        name: input.name.clone(),
        generation,
        spec,
    }
}

/// Stage 3: each deployed object's entry on each of its nodes.
fn publish(
    world: &World,
    admitted: &Admitted,
    resolutions: &BTreeMap<String, Resolution>,
    configs: &mut BTreeMap<String, Vec<NodeVirtualIP>>,
) {
    let vip_by_name: HashMap<String, &VirtualIP> = world
        .vips
        .iter()
        .map(|v| (v.name_any(), v.as_ref()))
        .collect();
    let node_by_name: HashMap<String, &Node> = world
        .nodes
        .iter()
        .map(|n| (n.name_any(), n.as_ref()))
        .collect();
    for input in &admitted.inputs {
        let Some(Resolution::Deployed { vrid, members }) = resolutions.get(&input.name) else {
            continue;
        };
        let generation = vip_by_name[input.name.as_str()].metadata.generation;
        for m in members {
            let node = node_by_name.get(&m.node).copied();
            let entry = node_entry(input, *vrid, m, node, generation);
            configs.entry(m.node.clone()).or_default().push(entry);
        }
    }
}

/// Stage 4, last known good: an object whose new spec is invalid keeps the entries it has on
/// each node (a bad edit never withdraws a working VIP); its status says why. Returns the
/// kept objects' VRID and nodes.
fn keep_last_good(
    world: &World,
    invalid: &BTreeMap<String, String>,
    configs: &mut BTreeMap<String, Vec<NodeVirtualIP>>,
) -> BTreeMap<String, (u8, Vec<String>)> {
    let mut kept: BTreeMap<String, (u8, Vec<String>)> = BTreeMap::new();
    for c in world.configs {
        for e in c
            .spec
            .virtual_ips
            .iter()
            .filter(|e| invalid.contains_key(&e.name))
        {
            let node = config_node(c);
            if let Some(entries) = configs.get_mut(&node) {
                entries.push(e.clone());
                let k = kept
                    .entry(e.name.clone())
                    .or_insert((e.spec.virtual_router_id.unwrap_or_default(), Vec::new()));
                k.1.push(node);
            }
        }
    }
    kept
}

/// The whole pipeline for one moment of the world.
pub fn plan(world: &World) -> Plan {
    let mut out = Plan::default();
    // Every Node once: resolution places on those with an agent, real servers come from all.
    let nodes = liveness::nodes(world);
    let admitted = admit(world, &nodes, &mut out);
    let resolutions = resolve::resolve(&admitted.inputs, &nodes, &admitted.reserved);
    out.configs = world
        .nodes
        .iter()
        .map(|n| (n.name_any(), Vec::new()))
        .collect();
    publish(world, &admitted, &resolutions, &mut out.configs);
    let kept = keep_last_good(world, &admitted.invalid, &mut out.configs);
    // Stable order: equal plans must compare equal, or every pass would rewrite.
    for entries in out.configs.values_mut() {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let silent = silent_agents(world);
    let agents = Agents::of(world);
    for vip in world.vips {
        if vip.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = vip.name_any();
        let (status, events, announced) = summary::summarize(
            vip,
            resolutions.get(&name),
            admitted.invalid.get(&name).map(String::as_str),
            kept.get(&name),
            (&silent, &agents),
            world.now,
            world
                .announced
                .get(&name)
                .filter(|a| a.uid == vip.metadata.uid),
        );
        out.statuses.insert(name.clone(), status);
        out.announced.insert(name, announced);
        out.events.extend(events);
    }
    out
}

/// The controller-owned part of a status, to compare with what is written.
pub fn controller_part(s: &VirtualIPStatus) -> VirtualIPStatus {
    VirtualIPStatus {
        nodes: Vec::new(),
        ..s.clone()
    }
}
