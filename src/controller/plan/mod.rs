//! The controller's pipeline without I/O: validate → resolve → publish → status.
//!
//! [`plan`] takes what the watchers see (every `VirtualIP`, every `Node`, every per-node
//! configuration, the Secret passwords asked for) and returns what should be: each node's
//! configuration, each object's controller-owned status, the Events to emit and the
//! finalizers that may go. The I/O shell in `mod.rs` only diffs and writes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::resolve::{self, NodeInput, Resolution, VipInput};
use crate::api::{
    AuthenticationSpec, NodeState, NodeStatus, NodeVirtualIP, Phase, SecretKeyRef, VirtualIP,
    VirtualIPNodeConfig, VirtualIPStatus,
};

/// Keeps a deleted object until every node has released its addresses.
pub const FINALIZER: &str = "kube-vrrp.io/release";
/// An older master that still says Master in a heartbeat this long after a newer master's
/// transition is a split brain; before that, a takeover in progress.
pub const HANDOVER_GRACE_MS: i64 = 2000;
/// A deleted object is let go after this long even if some node never reported (its agent is
/// gone; a restarted agent removes stale addresses itself).
pub const RELEASE_TIMEOUT_SECS: i64 = 60;

/// A Secret key's value, or why it cannot be used.
pub type SecretValue = Result<String, String>;

/// Everything the controller knows at one moment.
pub struct World<'a> {
    pub vips: &'a [std::sync::Arc<VirtualIP>],
    pub nodes: &'a [std::sync::Arc<Node>],
    pub configs: &'a [std::sync::Arc<VirtualIPNodeConfig>],
    /// Passwords of the Secret references the objects name (see [`secret_refs`]).
    pub secrets: &'a BTreeMap<SecretKeyRef, SecretValue>,
    pub now: Timestamp,
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
    /// Deleted objects whose addresses are released everywhere: drop the finalizer.
    pub release: Vec<String>,
    /// Live objects without our finalizer yet.
    pub add_finalizer: Vec<String>,
}

/// The Secret keys the objects refer to.
pub fn secret_refs(vips: &[std::sync::Arc<VirtualIP>]) -> Vec<SecretKeyRef> {
    let mut refs: Vec<SecretKeyRef> = vips
        .iter()
        .filter_map(|v| v.spec.authentication.as_ref()?.password_secret_ref.clone())
        .chain(vips.iter().flat_map(|v| {
            v.spec
                .health_checks
                .iter()
                .filter_map(|c| c.http.as_ref()?.ca_secret_ref.clone())
        }))
        .collect();
    refs.sort();
    refs.dedup();
    refs
}

/// The label that takes a node out of load balancing (MetalLB and kube-proxy honour it too).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

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

/// Nodes whose agent has registered in its configuration's status.
fn nodes_with_agent(world: &World) -> Vec<NodeInput> {
    let registered: std::collections::BTreeSet<String> = world
        .configs
        .iter()
        .filter(|c| c.status.as_ref().is_some_and(|s| s.agent.is_some()))
        .map(|c| c.name_any())
        .collect();
    let mut out: Vec<NodeInput> = world
        .nodes
        .iter()
        .filter(|n| registered.contains(&n.name_any()))
        .map(|n| NodeInput {
            name: n.name_any(),
            labels: n.labels().clone(),
            addresses: n
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .into_iter()
                .flatten()
                .filter(|a| a.type_ == "InternalIP")
                .filter_map(|a| a.address.parse::<IpAddr>().ok())
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// What the cluster rejects before resolution: checks the schema cannot express, and the
/// Secrets. The resolved spec carries the password itself, and a CA certificate as PEM.
fn validate(
    vip: &VirtualIP,
    secrets: &BTreeMap<SecretKeyRef, SecretValue>,
) -> Result<(Option<String>, Vec<crate::api::HealthCheckSpec>), String> {
    let mut probe = vip.spec.clone();
    for (i, c) in probe.health_checks.iter_mut().enumerate() {
        if let Some(h) = c.http.as_mut()
            && let Some(r) = h.ca_secret_ref.take()
        {
            let field = format!("spec.healthChecks[{i}].http.caSecretRef");
            match secrets.get(&r) {
                Some(Ok(pem)) => h.ca_bundle = Some(pem.clone()),
                Some(Err(e)) => return Err(format!("{field}: {e}")),
                None => {
                    return Err(format!(
                        "{field}: Secret {}/{} not read yet",
                        r.namespace, r.name
                    ));
                }
            }
        }
    }
    let mut password = None;
    if let Some(auth) = &vip.spec.authentication {
        if let Some(r) = &auth.password_secret_ref {
            match secrets.get(r) {
                Some(Ok(p)) if !p.is_empty() && p.len() <= 8 => password = Some(p.clone()),
                Some(Ok(_)) => {
                    return Err(format!(
                        "spec.authentication.passwordSecretRef: key {:?} of Secret {}/{} must hold 1 to 8 characters",
                        r.key, r.namespace, r.name
                    ));
                }
                Some(Err(e)) => return Err(format!("spec.authentication.passwordSecretRef: {e}")),
                None => {
                    return Err(format!(
                        "spec.authentication.passwordSecretRef: Secret {}/{} not read yet",
                        r.namespace, r.name
                    ));
                }
            }
        } else {
            password = auth.password.clone();
        }
        probe.authentication = Some(AuthenticationSpec {
            password: password.clone(),
            password_secret_ref: None,
        });
    }
    crate::model::spec::validate(
        vip.name_any(),
        probe,
        crate::model::spec::VridRule::Allocated,
    )
    .map(|v| (password, v.spec.health_checks))
    .map_err(|(field, reason)| format!("{field}: {reason}"))
}

fn condition(
    old: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    // The transition time moves only when the status does.
    let since = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message,
        last_transition_time: since,
        observed_generation: generation,
    }
}

/// Slack on a heartbeat before its agent counts as silent (API and clock skew).
const HEARTBEAT_SLACK_S: i64 = 2;

/// Nodes whose agent's heartbeat is late (one period plus a little slack), with the seconds
/// since it last renewed: from that moment on, what it last said is not believed.
fn silent_agents(world: &World) -> BTreeMap<String, i64> {
    world
        .configs
        .iter()
        .filter_map(|c| {
            let s = c.status.as_ref()?;
            let last: Timestamp = s.heartbeat_time.as_ref()?.parse().ok()?;
            let period = i64::from(s.heartbeat_seconds.unwrap_or(10).max(1));
            let silent = world.now.as_second() - last.as_second();
            (silent > period + HEARTBEAT_SLACK_S).then(|| (c.name_any(), silent))
        })
        .collect()
}

/// What the controller knows of each node's agent from its registration.
#[derive(Debug, Default)]
struct Agents {
    heartbeats: BTreeMap<String, Timestamp>,
    /// When the agent process started: older entries are a previous process's.
    started: BTreeMap<String, Timestamp>,
    /// Advertisement source address → node name.
    by_address: BTreeMap<String, String>,
}

impl Agents {
    fn of(world: &World) -> Agents {
        let mut a = Agents::default();
        for c in world.configs {
            let Some(s) = c.status.as_ref() else { continue };
            let node = c.name_any();
            if let Some(t) = s.heartbeat_time.as_ref().and_then(|t| t.parse().ok()) {
                a.heartbeats.insert(node.clone(), t);
            }
            if let Some(t) = s.started_time.as_ref().and_then(|t| t.parse().ok()) {
                a.started.insert(node.clone(), t);
            }
            for addr in &s.addresses {
                a.by_address.insert(addr.clone(), node.clone());
            }
        }
        a
    }

    /// An entry written by an earlier process of the node's agent (its last transition is
    /// older than the running process): the new process has not spoken yet.
    fn stale(&self, r: &NodeStatus) -> bool {
        let (Some(started), Some(t)) = (
            self.started.get(&r.node),
            r.last_transition_time
                .as_ref()
                .and_then(|t| t.parse::<Timestamp>().ok()),
        ) else {
            return false;
        };
        t < *started
    }

    /// Names nodes instead of their addresses: a link-local address becomes the node's name,
    /// another address the name with the address.
    fn name_nodes(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (addr, node) in &self.by_address {
            if !out.contains(addr.as_str()) {
                continue;
            }
            let link_local = addr
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| crate::model::address::is_link_local(&a));
            let with = if link_local {
                node.clone()
            } else {
                format!("{node} ({addr})")
            };
            out = replace_address(&out, addr, &with);
        }
        out
    }
}

/// Replaces whole occurrences of an address (not inside a longer one).
fn replace_address(text: &str, addr: &str, with: &str) -> String {
    let is_addr_char = |c: char| c.is_ascii_hexdigit() || c == ':' || c == '.';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(addr) {
        let before = rest[..i].chars().last();
        let after = rest[i + addr.len()..].chars().next();
        let whole = !before.is_some_and(is_addr_char)
            && !after.is_some_and(|c| is_addr_char(c) && c != '.' || c.is_ascii_digit());
        out.push_str(&rest[..i]);
        out.push_str(if whole { with } else { addr });
        rest = &rest[i + addr.len()..];
    }
    out.push_str(rest);
    out
}

/// The status fields the controller owns, for one object, from the agents' entries.
fn summarize(
    vip: &VirtualIP,
    resolution: Option<&Resolution>,
    invalid: Option<&str>,
    kept: Option<&(u8, Vec<String>)>,
    silent_agents: &BTreeMap<String, i64>,
    agents: &Agents,
    now: Timestamp,
) -> (VirtualIPStatus, Vec<PlannedEvent>) {
    let heartbeats = &agents.heartbeats;
    let old = vip.status.clone().unwrap_or_default();
    let generation = vip.metadata.generation;
    let name = vip.name_any();
    // A silent agent's entries are what it last said, not what is; an earlier process's
    // entries are what that process said before it stopped: neither is believed. Reasons name
    // nodes, not their addresses.
    let reports: Vec<NodeStatus> = old
        .nodes
        .iter()
        .filter(|r| !silent_agents.contains_key(&r.node) && !agents.stale(r))
        .cloned()
        .map(|mut r| {
            r.reason = r.reason.map(|t| agents.name_nodes(&t));
            for f in &mut r.families {
                f.reason = f.reason.take().map(|t| agents.name_nodes(&t));
            }
            r
        })
        .collect();
    let mut events = Vec::new();
    let (vrid, members): (Option<u8>, Vec<String>) = match (resolution, kept) {
        (Some(Resolution::Deployed { vrid, members }), _) => (
            Some(*vrid),
            members.iter().map(|m| m.node.clone()).collect(),
        ),
        // An invalid edit: the last good configuration keeps running where it ran.
        (_, Some((vrid, nodes))) => (Some(*vrid), nodes.clone()),
        _ => (None, Vec::new()),
    };
    let invalid_now = invalid;
    let invalid = if kept.is_some() { None } else { invalid };
    let member_reports: Vec<&NodeStatus> = reports
        .iter()
        .filter(|r| members.contains(&r.node))
        .collect();
    let mut masters: Vec<&str> = member_reports
        .iter()
        .filter(|r| r.state == Some(NodeState::Master))
        .map(|r| r.node.as_str())
        .collect();
    // Two nodes saying Master is usually a takeover not yet finished: after a preemption the
    // old master steps down when it hears the newcomer; after a crash the old one's last word
    // stays until its agent is found silent. It is a split brain only when an older master
    // has provably spoken (its heartbeat) since the newcomer's transition plus a grace.
    if masters.len() > 1 {
        let newest = member_reports
            .iter()
            .filter(|r| r.state == Some(NodeState::Master))
            .filter_map(|r| {
                let t: Timestamp = r.last_transition_time.as_ref()?.parse().ok()?;
                Some((t, r.node.as_str()))
            })
            .max();
        if let Some((t, node)) = newest {
            let still_claims = |m: &&str| {
                heartbeats
                    .get(*m)
                    .is_none_or(|hb| hb.as_millisecond() > t.as_millisecond() + HANDOVER_GRACE_MS)
            };
            if !masters.iter().filter(|m| **m != node).any(still_claims) {
                masters = vec![node];
            }
        }
    }
    let mut unhealthy: Vec<String> = Vec::new();
    for r in &member_reports {
        if matches!(r.state, Some(NodeState::Fault) | Some(NodeState::Error)) {
            unhealthy.push(format!(
                "{} is {}: {}",
                r.node,
                r.state.map(|s| s.to_string()).unwrap_or_default(),
                r.reason.as_deref().unwrap_or("no reason given")
            ));
        } else {
            // A master (or backup) whose other family cannot run.
            for f in r
                .families
                .iter()
                .filter(|f| matches!(f.state, NodeState::Fault | NodeState::Error))
            {
                unhealthy.push(format!(
                    "{} {} is {}: {}",
                    r.node,
                    f.family,
                    f.state,
                    f.reason.as_deref().unwrap_or("no reason given")
                ));
            }
        }
    }
    // Failing checks: at a glance (`n1:nginx`), and in words in the Ready message. A node
    // in FAULT already says which check put it there.
    let mut failing: Vec<String> = Vec::new();
    for r in &member_reports {
        for c in r.checks.iter().filter(|c| !c.healthy) {
            failing.push(format!("{}:{}", r.node, c.name));
            if !matches!(r.state, Some(NodeState::Fault) | Some(NodeState::Error)) {
                let effect = match c.contribution {
                    0 => String::new(),
                    n => format!(" ({n:+})"),
                };
                unhealthy.push(format!(
                    "{} {} failing{effect}: {}",
                    r.node,
                    if c.name == "node" || c.name.starts_with("interface:") {
                        c.name.clone()
                    } else {
                        format!("check {}", c.name)
                    },
                    c.result.as_deref().unwrap_or("no result yet")
                ));
            }
        }
    }
    // A master that lost the addresses because of its checks says so.
    if let Some(old_master) = old.master.as_deref()
        && !masters.contains(&old_master)
        && let Some(r) = member_reports.iter().find(|r| r.node == old_master)
    {
        let cause = r
            .checks
            .iter()
            .find(|c| !c.healthy)
            .map(|c| {
                let result = c.result.as_deref().unwrap_or("no result");
                if c.name == "node" {
                    result.to_string()
                } else if c.name.starts_with("interface:") {
                    format!("{}: {result}", c.name)
                } else {
                    format!("check {} failed: {result}", c.name)
                }
            })
            .or_else(|| {
                matches!(r.state, Some(NodeState::Fault))
                    .then(|| r.reason.clone().unwrap_or_default())
            });
        if let Some(cause) = cause {
            unhealthy.insert(0, format!("{old_master} lost mastership: {cause}"));
        }
    }
    for m in &members {
        if let Some(secs) = silent_agents.get(m) {
            let said = old
                .nodes
                .iter()
                .find(|r| &r.node == m)
                .and_then(|r| r.state.map(|s| s.to_string()))
                .unwrap_or_else(|| "nothing".into());
            unhealthy.push(format!(
                "{m}'s agent has been silent for {secs}s (it last said {said})"
            ));
        }
    }
    let silent: Vec<&str> = members
        .iter()
        .filter(|m| !member_reports.iter().any(|r| &r.node == *m))
        .filter(|m| !silent_agents.contains_key(*m))
        .map(String::as_str)
        .collect();
    // Programmed counts nodes whose instances run: not silent, not Error.
    let not_running = silent.len()
        + members
            .iter()
            .filter(|m| silent_agents.contains_key(*m))
            .count()
        + member_reports
            .iter()
            .filter(|r| r.state == Some(NodeState::Error))
            .count();
    let summary = (!members.is_empty()).then(|| {
        members
            .iter()
            .map(|m| {
                if silent_agents.contains_key(m) {
                    return format!("{m}=Silent");
                }
                match member_reports.iter().find(|r| &r.node == m) {
                    Some(r) => match (r.state, r.effective_priority) {
                        (Some(s), Some(p)) => format!("{m}={s}({p})"),
                        (Some(s), None) => format!("{m}={s}"),
                        (None, _) => format!("{m}=?"),
                    },
                    None => format!("{m}=?"),
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    });

    // Ours (not deployed), or a foreign router on the wire that an agent heard.
    let wire: Vec<String> = member_reports
        .iter()
        .filter_map(|r| r.conflict.as_ref().map(|c| format!("{} hears {c}", r.node)))
        .collect();
    let conflict = match resolution {
        Some(Resolution::Rejected { reason, message })
            if matches!(*reason, "VRIDConflict" | "DuplicateAddress") =>
        {
            Some((*reason, message.clone()))
        }
        _ if !wire.is_empty() => Some(("ForeignRouter", wire.join("; "))),
        _ => None,
    };
    let master = (masters.len() == 1).then(|| masters[0].to_string());
    let (phase, ready_reason, ready_message) = if let Some(e) = invalid {
        (Phase::Invalid, "Invalid", e.to_string())
    } else if let Some((reason, message)) = &conflict {
        (Phase::Conflict, *reason, message.clone())
    } else if let Some(Resolution::Rejected { reason, message }) = resolution {
        (Phase::Pending, *reason, message.clone())
    } else if masters.len() > 1 {
        (
            Phase::SplitBrain,
            "SplitBrain",
            format!("{} all hold the addresses", masters.join(", ")),
        )
    } else if let Some(m) = &master {
        if unhealthy.is_empty() && silent.is_empty() {
            (
                Phase::Ready,
                "MasterElected",
                format!("{m} holds the addresses"),
            )
        } else {
            let mut why = unhealthy.clone();
            if !silent.is_empty() {
                why.push(format!("no report from {}", silent.join(", ")));
            }
            (
                Phase::Degraded,
                "MasterElected",
                format!("{m} holds the addresses; {}", why.join("; ")),
            )
        }
    } else if member_reports.is_empty() {
        (
            Phase::Pending,
            "Programming",
            format!("waiting for the agents on {}", members.join(", ")),
        )
    } else {
        let mut why = unhealthy.clone();
        if !silent.is_empty() {
            why.push(format!("no report from {}", silent.join(", ")));
        }
        if why.is_empty() {
            why.push("every node is backup".into());
        }
        (
            Phase::NoMaster,
            "NoMaster",
            format!("no node holds the addresses: {}", why.join("; ")),
        )
    };
    let c = &old.conditions;
    let conditions = vec![
        condition(
            c,
            "Ready",
            master.is_some() && conflict.is_none(),
            ready_reason,
            ready_message.clone(),
            generation,
            now,
        ),
        condition(
            c,
            "Programmed",
            !members.is_empty() && not_running == 0,
            if members.is_empty() {
                "NotDeployed"
            } else if not_running == 0 {
                "AllNodesRunning"
            } else {
                "WaitingForNodes"
            },
            if members.is_empty() {
                ready_message.clone()
            } else {
                format!(
                    "{} of {} nodes run it{}",
                    members.len() - not_running,
                    members.len(),
                    if silent.is_empty() {
                        String::new()
                    } else {
                        format!("; waiting for {}", silent.join(", "))
                    }
                )
            },
            generation,
            now,
        ),
        match invalid_now {
            Some(e) => condition(
                c,
                "ConfigValid",
                false,
                "Invalid",
                if kept.is_some() {
                    format!("{e}; the last good configuration keeps running")
                } else {
                    e.to_string()
                },
                generation,
                now,
            ),
            None => condition(
                c,
                "ConfigValid",
                true,
                "Valid",
                "the specification is valid".into(),
                generation,
                now,
            ),
        },
        match &conflict {
            Some((reason, message)) => condition(
                c,
                "VRIDConflict",
                true,
                reason,
                message.clone(),
                generation,
                now,
            ),
            None => condition(
                c,
                "VRIDConflict",
                false,
                "NoConflict",
                "no other VirtualIP uses this virtual router ID or these addresses".into(),
                generation,
                now,
            ),
        },
        condition(
            c,
            "SplitBrain",
            masters.len() > 1,
            if masters.len() > 1 {
                "SeveralMasters"
            } else {
                "SingleMaster"
            },
            if masters.len() > 1 {
                format!("{} all hold the addresses", masters.join(", "))
            } else {
                "at most one node holds the addresses".into()
            },
            generation,
            now,
        ),
    ];
    if master != old.master {
        match &master {
            Some(m) => {
                let why = member_reports
                    .iter()
                    .find(|r| &r.node == m)
                    .and_then(|r| r.reason.clone())
                    .unwrap_or_default();
                let note = match &old.master {
                    Some(prev) => format!("{m} took over from {prev}: {why}"),
                    None => format!("{m} is master: {why}"),
                };
                events.push(PlannedEvent {
                    vip: name.clone(),
                    warning: false,
                    reason: "MasterChanged",
                    note,
                });
            }
            None if old.master.is_some() => events.push(PlannedEvent {
                vip: name.clone(),
                warning: true,
                reason: if masters.len() > 1 {
                    "SplitBrain"
                } else {
                    "NoMaster"
                },
                note: format!(
                    "{} is no longer master: {ready_message}",
                    old.master.as_deref().unwrap_or_default()
                ),
            }),
            None => {}
        }
    }
    if phase == Phase::Conflict && old.phase != Some(Phase::Conflict) {
        events.push(PlannedEvent {
            vip: name.clone(),
            warning: true,
            reason: ready_reason,
            note: ready_message.clone(),
        });
    }
    let status = VirtualIPStatus {
        observed_generation: generation,
        virtual_router_id: vrid,
        master,
        phase: Some(phase),
        summary,
        failing: (!failing.is_empty()).then(|| failing.join(",")),
        nodes: Vec::new(),
        conditions,
    };
    (status, events)
}

/// The whole pipeline for one moment of the world.
pub fn plan(world: &World) -> Plan {
    let mut out = Plan::default();
    let nodes = nodes_with_agent(world);
    let silent = silent_agents(world);
    let agents = Agents::of(world);
    let mut passwords: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut resolved_checks: BTreeMap<String, Vec<crate::api::HealthCheckSpec>> = BTreeMap::new();
    let mut invalid: BTreeMap<String, String> = BTreeMap::new();
    let mut inputs = Vec::new();
    for vip in world.vips {
        let name = vip.name_any();
        if vip.metadata.deletion_timestamp.is_some() {
            let released = vip.status.as_ref().is_none_or(|s| s.nodes.is_empty());
            let waited =
                vip.metadata.deletion_timestamp.as_ref().is_some_and(|t| {
                    world.now.as_second() - t.0.as_second() > RELEASE_TIMEOUT_SECS
                });
            if (released || waited) && vip.finalizers().iter().any(|f| f == FINALIZER) {
                out.release.push(name);
            }
            continue;
        }
        if !vip.finalizers().iter().any(|f| f == FINALIZER) {
            out.add_finalizer.push(name.clone());
        }
        match validate(vip, world.secrets) {
            Ok((p, checks)) => {
                passwords.insert(name.clone(), p);
                resolved_checks.insert(name.clone(), checks);
                inputs.push(VipInput {
                    name,
                    created: vip
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string())
                        .unwrap_or_default(),
                    spec: vip.spec.clone(),
                    allocated_vrid: vip.status.as_ref().and_then(|s| s.virtual_router_id),
                });
            }
            Err(e) => {
                invalid.insert(name, e);
            }
        }
    }
    let resolutions = resolve::resolve(&inputs, &nodes);
    let vip_by_name: std::collections::HashMap<String, &VirtualIP> = world
        .vips
        .iter()
        .map(|v| (v.name_any(), v.as_ref()))
        .collect();
    let node_names: Vec<String> = world.nodes.iter().map(|n| n.name_any()).collect();
    let node_by_name: std::collections::HashMap<&str, &Node> = node_names
        .iter()
        .map(String::as_str)
        .zip(world.nodes.iter().map(|n| n.as_ref()))
        .collect();
    for n in world.nodes {
        out.configs.insert(n.name_any(), Vec::new());
    }
    for input in &inputs {
        let Some(Resolution::Deployed { vrid, members }) = resolutions.get(&input.name) else {
            continue;
        };
        let vip = vip_by_name[input.name.as_str()];
        for m in members {
            let mut spec = input.spec.clone();
            spec.virtual_router_id = Some(*vrid);
            spec.priorities.clear();
            spec.default_priority = m.priority;
            spec.node_selector.clear();
            spec.unicast = false;
            spec.unicast_peers = m.unicast_peers.iter().map(IpAddr::to_string).collect();
            if let Some(checks) = resolved_checks.get(&input.name) {
                spec.health_checks = checks.clone();
            }
            spec.leave_cordoned_nodes = false;
            spec.active_nodes = None;
            let drain = node_by_name
                .get(m.node.as_str())
                .and_then(|n| drain_reason(n, input.spec.leave_cordoned_nodes))
                .or_else(|| inactive_reason(&input.spec, &m.node));
            if spec.authentication.is_some() {
                spec.authentication = Some(AuthenticationSpec {
                    password: passwords.get(&input.name).cloned().flatten(),
                    password_secret_ref: None,
                });
            }
            out.configs
                .entry(m.node.clone())
                .or_default()
                .push(NodeVirtualIP {
                    drain,
                    name: input.name.clone(),
                    generation: vip.metadata.generation,
                    spec,
                });
        }
    }
    // Last known good: an object whose new spec is invalid keeps the entries it has on each
    // node (a bad edit never withdraws a working VIP); its status says why.
    let mut kept: BTreeMap<String, (u8, Vec<String>)> = BTreeMap::new();
    for c in world.configs {
        for e in &c.spec.virtual_ips {
            if invalid.contains_key(&e.name) {
                let node = config_node(c);
                if let Some(entries) = out.configs.get_mut(&node) {
                    entries.push(e.clone());
                    let k = kept
                        .entry(e.name.clone())
                        .or_insert((e.spec.virtual_router_id.unwrap_or_default(), Vec::new()));
                    k.1.push(node);
                }
            }
        }
    }
    // Stable order: equal plans must compare equal, or every pass would rewrite.
    for entries in out.configs.values_mut() {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
    }
    for vip in world.vips {
        if vip.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = vip.name_any();
        let (status, events) = summarize(
            vip,
            resolutions.get(&name),
            invalid.get(&name).map(String::as_str),
            kept.get(&name),
            &silent,
            &agents,
            world.now,
        );
        out.statuses.insert(name, status);
        out.events.extend(events);
    }
    out
}

/// The most a node configuration object holds, by estimate (the API server's own limit is
/// about 1.5 MiB; the controller keeps every object under 256 KiB).
pub const SHARD_BYTES: usize = 192 * 1024;

/// About how many bytes an entry takes as JSON, without serializing it (counted on every
/// pass for every node).
pub fn entry_size(e: &NodeVirtualIP) -> usize {
    let s = &e.spec;
    let list = |v: &[String]| v.iter().map(|a| a.len() + 3).sum::<usize>();
    let json = |v: &dyn erased::Size| v.size();
    1024 + e.name.len()
        + e.drain.as_ref().map_or(0, String::len)
        + list(&s.addresses)
        + list(&s.excluded_addresses)
        + list(&s.unicast_peers)
        + json(&s.health_checks)
        + json(&s.track_interfaces)
        + json(&s.notify)
        + json(&s.active_nodes)
}

mod erased {
    pub trait Size {
        fn size(&self) -> usize;
    }
    impl<T: serde::Serialize> Size for Vec<T> {
        fn size(&self) -> usize {
            if self.is_empty() {
                0
            } else {
                serde_json::to_vec(self).map_or(0, |v| v.len())
            }
        }
    }
    impl<T: serde::Serialize> Size for Option<T> {
        fn size(&self) -> usize {
            self.as_ref()
                .map_or(0, |v| serde_json::to_vec(v).map_or(0, |v| v.len()))
        }
    }
}

/// The name of a node's `n`-th configuration object (the first is named after the node).
pub fn shard_name(node: &str, n: usize) -> String {
    if n == 0 {
        node.to_string()
    } else {
        format!("{node}.shard-{n}")
    }
}

/// A node's entries (sorted by name) cut into objects of at most [`SHARD_BYTES`] each, in
/// order; always at least one (the first carries the agent's registration).
pub fn shard(entries: Vec<NodeVirtualIP>) -> Vec<Vec<NodeVirtualIP>> {
    let mut out: Vec<Vec<NodeVirtualIP>> = vec![Vec::new()];
    let mut size = 0;
    for e in entries {
        let n = entry_size(&e);
        if size + n > SHARD_BYTES && !out.last().expect("one").is_empty() {
            out.push(Vec::new());
            size = 0;
        }
        size += n;
        out.last_mut().expect("one").push(e);
    }
    out
}

/// The node a configuration object is for.
pub fn config_node(c: &VirtualIPNodeConfig) -> String {
    c.spec.node.clone().unwrap_or_else(|| c.name_any())
}

/// The controller-owned part of a status, to compare with what is written.
pub fn controller_part(s: &VirtualIPStatus) -> VirtualIPStatus {
    VirtualIPStatus {
        nodes: Vec::new(),
        ..s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::api::{NodeConfigStatus, VirtualIPNodeConfigSpec};

    fn vip(name: &str, created: &str, yaml: &str) -> Arc<VirtualIP> {
        let mut v = VirtualIP::new(name, serde_yaml::from_str(yaml).unwrap());
        v.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
        v.metadata.generation = Some(1);
        v.metadata.finalizers = Some(vec![FINALIZER.into()]);
        Arc::new(v)
    }

    fn node(name: &str, ip: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}]}
            }))
            .unwrap(),
        )
    }

    fn registered(name: &str) -> Arc<VirtualIPNodeConfig> {
        let mut c = VirtualIPNodeConfig::new(name, VirtualIPNodeConfigSpec::default());
        c.status = Some(NodeConfigStatus {
            agent: Some("test".into()),
            heartbeat_time: Some("2026-11-21T23:59:59Z".into()),
            heartbeat_seconds: Some(10),
            observed_generation: None,
            started_time: Some("2026-11-21T00:00:00Z".into()),
            addresses: vec![format!("fe80::{}", &name[1..]), ip_of(name).into()],
        });
        Arc::new(c)
    }

    fn ip_of(node: &str) -> &'static str {
        match node {
            "n1" => "198.51.100.11",
            "n2" => "198.51.100.12",
            _ => "198.51.100.13",
        }
    }

    fn report(node: &str, state: &str) -> NodeStatus {
        let state: NodeState = serde_json::from_value(serde_json::json!(state)).unwrap();
        NodeStatus {
            node: node.into(),
            state: Some(state),
            priority: Some(100),
            effective_priority: Some(100),
            last_transition_time: None,
            reason: Some(format!("{state} because of a test")),
            conflict: None,
            checks: Vec::new(),
            families: Vec::new(),
        }
    }

    fn two_node_vip(nodes: Vec<NodeStatus>, master: Option<&str>) -> Arc<VirtualIP> {
        let mut v = (*vip(
            "web",
            "2026-01-01T00:00:00Z",
            "addresses: [198.51.100.50/24]",
        ))
        .clone();
        v.status = Some(VirtualIPStatus {
            master: master.map(String::from),
            nodes,
            ..Default::default()
        });
        Arc::new(v)
    }

    fn world_plan(vips: &[Arc<VirtualIP>], configs: &[Arc<VirtualIPNodeConfig>]) -> Plan {
        let nodes = vec![
            node("n1", "198.51.100.11"),
            node("n2", "198.51.100.12"),
            node("n3", "198.51.100.13"),
        ];
        let secrets = BTreeMap::new();
        plan(&World {
            vips,
            nodes: &nodes,
            configs,
            secrets: &secrets,
            now: "2026-11-22T00:00:00Z".parse().unwrap(),
        })
    }

    #[test]
    fn publishes_resolved_entries_only_to_nodes_with_an_agent() {
        let v = vip(
            "web",
            "2026-01-01T00:00:00Z",
            "addresses: [198.51.100.50/24]\nunicast: true\npriorities: [{node: n1, priority: 200}]",
        );
        let p = world_plan(&[v], &[registered("n1"), registered("n2")]);
        assert_eq!(p.configs["n3"], vec![], "n3 has no agent");
        let n1 = &p.configs["n1"][0].spec;
        assert_eq!(n1.virtual_router_id, Some(1));
        assert_eq!(n1.default_priority, 200);
        assert!(n1.priorities.is_empty() && !n1.unicast);
        assert_eq!(n1.unicast_peers, vec!["198.51.100.12".to_string()]);
        assert_eq!(p.configs["n2"][0].spec.default_priority, 100);
        let s = &p.statuses["web"];
        assert_eq!(s.phase, Some(Phase::Pending));
        assert_eq!(s.virtual_router_id, Some(1));
        assert!(p.events.is_empty());
    }

    #[test]
    fn status_follows_the_agents_reports() {
        let with = two_node_vip;
        let configs = [registered("n1"), registered("n2")];
        let p = world_plan(
            &[with(
                vec![report("n1", "Master"), report("n2", "Backup")],
                None,
            )],
            &configs,
        );
        let s = &p.statuses["web"];
        assert_eq!(
            (s.master.as_deref(), s.phase),
            (Some("n1"), Some(Phase::Ready))
        );
        assert_eq!(p.events[0].reason, "MasterChanged");
        assert!(
            p.events[0]
                .note
                .contains("n1 is master: Master because of a test"),
            "{:?}",
            p.events
        );

        let p = world_plan(
            &[with(
                vec![report("n1", "Fault"), report("n2", "Master")],
                Some("n1"),
            )],
            &configs,
        );
        let s = &p.statuses["web"];
        assert_eq!(
            (s.master.as_deref(), s.phase),
            (Some("n2"), Some(Phase::Degraded))
        );
        assert!(
            p.events[0].note.starts_with("n2 took over from n1"),
            "{:?}",
            p.events
        );

        let p = world_plan(
            &[with(
                vec![report("n1", "Master"), report("n2", "Master")],
                Some("n1"),
            )],
            &configs,
        );
        assert_eq!(p.statuses["web"].phase, Some(Phase::SplitBrain));
        assert_eq!(p.statuses["web"].master, None);
        assert!(
            p.statuses["web"]
                .conditions
                .iter()
                .any(|c| c.type_ == "SplitBrain" && c.status == "True")
        );

        let p = world_plan(&[with(vec![report("n1", "Backup")], Some("n1"))], &configs);
        assert_eq!(p.statuses["web"].phase, Some(Phase::NoMaster));
        assert!(p.events[0].warning);

        // A foreign router on the VRID, heard by an agent, is a conflict too.
        let mut heard = report("n1", "Backup");
        heard.conflict =
            Some("198.51.100.99 advertises virtual router 1 with other addresses".into());
        let p = world_plan(&[with(vec![heard, report("n2", "Backup")], None)], &configs);
        let s = &p.statuses["web"];
        assert_eq!(s.phase, Some(Phase::Conflict));
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == "VRIDConflict")
            .unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "ForeignRouter")
        );
        assert!(
            c.message.starts_with("n1 hears 198.51.100.99 advertises"),
            "{}",
            c.message
        );
    }

    #[test]
    fn two_masters_are_a_split_brain_only_once_the_older_has_spoken_since() {
        let at = |node: &str, when: &str| {
            let mut r = report(node, "Master");
            r.last_transition_time = Some(when.into());
            r
        };
        let mut v = (*vip(
            "web",
            "2026-01-01T00:00:00Z",
            "addresses: [198.51.100.50/24]",
        ))
        .clone();
        v.status = Some(VirtualIPStatus {
            master: Some("n1".into()),
            nodes: vec![
                at("n1", "2026-11-21T23:59:00Z"),
                at("n2", "2026-11-21T23:59:50Z"),
            ],
            ..Default::default()
        });
        let v = Arc::new(v);
        let heard = |n1_heartbeat: &str| {
            let mut n1 = (*registered("n1")).clone();
            n1.status.as_mut().unwrap().heartbeat_time = Some(n1_heartbeat.into());
            world_plan(std::slice::from_ref(&v), &[Arc::new(n1), registered("n2")])
        };
        // n1 last spoke before n2 took over (+2 s): a takeover, n2 is master.
        let p = heard("2026-11-21T23:59:51Z");
        assert_eq!(p.statuses["web"].master.as_deref(), Some("n2"));
        assert_ne!(p.statuses["web"].phase, Some(Phase::SplitBrain));
        // n1 still says Master 5 s after n2 took over: both hold the addresses.
        let p = heard("2026-11-21T23:59:55Z");
        assert_eq!(p.statuses["web"].phase, Some(Phase::SplitBrain));
        assert_eq!(p.statuses["web"].master, None);
    }

    #[test]
    fn a_silent_agent_is_not_believed() {
        let v = two_node_vip(
            vec![report("n1", "Master"), report("n2", "Master")],
            Some("n1"),
        );
        let mut n1 = (*registered("n1")).clone();
        // Two minutes without a heartbeat, at a 10 s period: the node is down, not master.
        n1.status.as_mut().unwrap().heartbeat_time = Some("2026-11-21T23:58:00Z".into());
        let p = world_plan(&[v], &[Arc::new(n1), registered("n2")]);
        let s = &p.statuses["web"];
        assert_eq!(
            (s.master.as_deref(), s.phase),
            (Some("n2"), Some(Phase::Degraded))
        );
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert!(
            ready
                .message
                .contains("n1's agent has been silent for 120s (it last said Master)"),
            "{}",
            ready.message
        );
        let programmed = s
            .conditions
            .iter()
            .find(|c| c.type_ == "Programmed")
            .unwrap();
        assert_eq!(programmed.message, "1 of 2 nodes run it");
        assert!(
            p.events[0].note.starts_with("n2 took over from n1"),
            "{:?}",
            p.events
        );
    }

    #[test]
    fn an_agent_is_not_believed_from_the_moment_its_heartbeat_is_late() {
        let v = two_node_vip(
            vec![report("n1", "Master"), report("n2", "Master")],
            Some("n1"),
        );
        let mut n1 = (*registered("n1")).clone();
        // 13 s since the last heartbeat at a 10 s period: late (10 s + 2 s slack).
        n1.status.as_mut().unwrap().heartbeat_time = Some("2026-11-21T23:59:47Z".into());
        let p = world_plan(
            std::slice::from_ref(&v),
            &[Arc::new(n1.clone()), registered("n2")],
        );
        let s = &p.statuses["web"];
        assert_eq!(s.master.as_deref(), Some("n2"));
        assert_eq!(s.summary.as_deref(), Some("n1=Silent,n2=Master(100)"));
        // 11 s: on time still.
        n1.status.as_mut().unwrap().heartbeat_time = Some("2026-11-21T23:59:49Z".into());
        let p = world_plan(&[v], &[Arc::new(n1), registered("n2")]);
        assert_ne!(
            p.statuses["web"].summary.as_deref(),
            Some("n1=Silent,n2=Master(100)")
        );
    }

    #[test]
    fn a_restarted_agent_is_not_a_split_brain() {
        // n1's entry says Master from before its agent restarted (its transition predates the
        // new process); n2 took over meanwhile. The new n1 heartbeats, but has not spoken.
        let mut n1_old = report("n1", "Master");
        n1_old.last_transition_time = Some("2026-11-20T10:00:00Z".into());
        let mut n2 = report("n2", "Master");
        n2.last_transition_time = Some("2026-11-21T23:59:00Z".into());
        n2.reason = Some("master down timer expired".into());
        let v = two_node_vip(vec![n1_old, n2], Some("n1"));
        let p = world_plan(&[v], &[registered("n1"), registered("n2")]);
        let s = &p.statuses["web"];
        assert_eq!(s.master.as_deref(), Some("n2"));
        assert_ne!(s.phase, Some(Phase::SplitBrain));
        assert_eq!(p.events.len(), 1, "{:?}", p.events);
        assert_eq!(
            p.events[0].note,
            "n2 took over from n1: master down timer expired"
        );
        assert_eq!(s.summary.as_deref(), Some("n1=?,n2=Master(100)"));
    }

    #[test]
    fn programmed_counts_only_nodes_whose_instances_run() {
        let v = two_node_vip(vec![report("n1", "Error"), report("n2", "Error")], None);
        let p = world_plan(&[v], &[registered("n1"), registered("n2")]);
        let programmed = p.statuses["web"]
            .conditions
            .iter()
            .find(|c| c.type_ == "Programmed")
            .unwrap();
        assert_eq!(programmed.status, "False");
        assert_eq!(programmed.message, "0 of 2 nodes run it");
    }

    #[test]
    fn reasons_name_nodes_not_their_addresses() {
        let mut n2 = report("n2", "Backup");
        n2.reason = Some("preempted by higher priority 200 from fe80::1".into());
        let mut n1 = report("n1", "Fault");
        n1.reason = Some("198.51.100.12 advertises virtual router 51 with other addresses".into());
        let v = two_node_vip(vec![n1, n2], None);
        let p = world_plan(&[v], &[registered("n1"), registered("n2")]);
        let ready = p.statuses["web"]
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert!(
            ready
                .message
                .contains("n1 is Fault: n2 (198.51.100.12) advertises virtual router 51"),
            "{}",
            ready.message
        );
        assert_eq!(
            replace_address("from fe80::1 and fe80::12", "fe80::1", "n1"),
            "from n1 and fe80::12"
        );
    }

    #[test]
    fn conflicts_are_reported_on_the_newer_object_which_is_not_deployed() {
        let a = vip(
            "a",
            "2026-01-01T00:00:00Z",
            "addresses: [198.51.100.50/24]\nvirtualRouterID: 7",
        );
        let b = vip(
            "b",
            "2026-01-02T00:00:00Z",
            "addresses: [198.51.100.51/24]\nvirtualRouterID: 7",
        );
        let p = world_plan(&[a, b], &[registered("n1")]);
        assert_eq!(p.configs["n1"].len(), 1);
        assert_eq!(p.configs["n1"][0].name, "a");
        assert_eq!(p.statuses["b"].phase, Some(Phase::Conflict));
        let c = p.statuses["b"]
            .conditions
            .iter()
            .find(|c| c.type_ == "VRIDConflict")
            .unwrap();
        assert_eq!(c.status, "True");
        assert!(c.message.contains("\"a\""), "{}", c.message);
        assert_eq!(p.events[0].reason, "VRIDConflict");
    }

    #[test]
    fn deletion_waits_for_every_node_to_release() {
        let mut v = (*vip(
            "web",
            "2026-01-01T00:00:00Z",
            "addresses: [198.51.100.50/24]",
        ))
        .clone();
        v.metadata.deletion_timestamp = Some(Time("2026-11-21T23:59:50Z".parse().unwrap()));
        v.status = Some(VirtualIPStatus {
            nodes: vec![report("n1", "Master")],
            ..Default::default()
        });
        let p = world_plan(&[Arc::new(v.clone())], &[registered("n1")]);
        assert!(p.configs["n1"].is_empty(), "taken off the nodes at once");
        assert!(p.release.is_empty(), "n1 still reports it");
        v.status = None;
        let p = world_plan(&[Arc::new(v)], &[registered("n1")]);
        assert_eq!(p.release, vec!["web".to_string()]);
    }

    #[test]
    fn a_missing_secret_is_reported_not_deployed() {
        let v = vip(
            "v2",
            "2026-01-01T00:00:00Z",
            "addresses: [198.51.100.50/24]\nversion: 2\nauthentication: {passwordSecretRef: {name: s, namespace: ns, key: k}}",
        );
        let p = world_plan(&[v], &[registered("n1")]);
        assert!(p.configs["n1"].is_empty());
        let ready = p.statuses["v2"]
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.reason, "Invalid");
        assert!(ready.message.contains("Secret ns/s"), "{}", ready.message);
    }

    #[test]
    fn an_invalid_edit_keeps_the_last_good_configuration_running() {
        // Deployed and running on n1 and n2...
        let good = vip(
            "v2",
            "2026-01-01T00:00:00Z",
            "addresses: [198.51.100.50/24]\nversion: 2\nauthentication: {password: s3cret}",
        );
        let p = world_plan(&[good], &[registered("n1"), registered("n2")]);
        let published = |node: &str| {
            let mut c = (*registered(node)).clone();
            c.spec.virtual_ips = p.configs[node].clone();
            Arc::new(c)
        };
        let configs = [published("n1"), published("n2")];
        // ... then edited into something that cannot run (a 17-character password).
        let mut bad = (*vip(
            "v2",
            "2026-01-01T00:00:00Z",
            "addresses: [198.51.100.50/24]\nversion: 2\nauthentication: {password: seventeen-chars!!}",
        ))
        .clone();
        bad.status = Some(VirtualIPStatus {
            master: Some("n1".into()),
            nodes: vec![report("n1", "Master"), report("n2", "Backup")],
            ..Default::default()
        });
        let q = world_plan(&[Arc::new(bad)], &configs);
        assert_eq!(q.configs["n1"], p.configs["n1"], "the working entry stays");
        assert_eq!(q.configs["n2"], p.configs["n2"]);
        let s = &q.statuses["v2"];
        assert_eq!(
            (s.master.as_deref(), s.phase),
            (Some("n1"), Some(Phase::Ready))
        );
        let valid = s
            .conditions
            .iter()
            .find(|c| c.type_ == "ConfigValid")
            .unwrap();
        assert_eq!(valid.status, "False");
        assert!(
            valid.message.contains("1 to 8 characters"),
            "{}",
            valid.message
        );
        assert!(
            valid
                .message
                .contains("last good configuration keeps running")
        );
        // Never deployed: Invalid.
        let fresh = vip(
            "v3",
            "2026-01-01T00:00:00Z",
            "addresses: [198.51.100.60/24]\nversion: 2\nauthentication: {password: seventeen-chars!!}",
        );
        let r = world_plan(&[fresh], &[registered("n1")]);
        assert_eq!(r.statuses["v3"].phase, Some(Phase::Invalid));
        assert!(r.configs["n1"].is_empty());
    }

    #[test]
    fn cordoned_or_excluded_nodes_hand_over() {
        let asks = vip(
            "asks",
            "2026-01-01T00:00:00Z",
            "addresses: [198.51.100.50/24]\nleaveCordonedNodes: true",
        );
        let plain = vip(
            "plain",
            "2026-01-02T00:00:00Z",
            "addresses: [198.51.100.60/24]",
        );
        let mut n1: Node = (*node("n1", "198.51.100.11")).clone();
        n1.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            unschedulable: Some(true),
            ..Default::default()
        });
        let mut n2: Node = (*node("n2", "198.51.100.12")).clone();
        n2.metadata.labels = Some([(EXCLUDE_LABEL.to_string(), String::new())].into());
        let nodes = vec![Arc::new(n1), Arc::new(n2), node("n3", "198.51.100.13")];
        let secrets = BTreeMap::new();
        let p = plan(&World {
            vips: &[asks, plain],
            nodes: &nodes,
            configs: &[registered("n1"), registered("n2"), registered("n3")],
            secrets: &secrets,
            now: "2026-11-22T00:00:00Z".parse().unwrap(),
        });
        let drain = |node: &str, vip: &str| {
            p.configs[node]
                .iter()
                .find(|e| e.name == vip)
                .unwrap()
                .drain
                .clone()
        };
        assert_eq!(drain("n1", "asks").as_deref(), Some("node n1 is cordoned"));
        assert_eq!(
            drain("n1", "plain"),
            None,
            "cordon counts only when asked for"
        );
        for v in ["asks", "plain"] {
            assert_eq!(
                drain("n2", v).as_deref(),
                Some(
                    "node n2 has the label node.kubernetes.io/exclude-from-external-load-balancers"
                )
            );
            assert_eq!(drain("n3", v), None);
        }
    }

    #[test]
    fn failing_checks_show_at_a_glance_and_a_lost_mastership_says_why() {
        let check =
            |name: &str, healthy: bool, result: &str, contribution: i32| crate::api::CheckStatus {
                name: name.into(),
                healthy,
                result: Some(result.into()),
                consecutive: 3,
                contribution,
                fault: false,
                last_transition_time: None,
            };
        let mut n1 = report("n1", "Backup");
        n1.checks = vec![
            check("nginx", false, "connection refused", -50),
            check("disk", true, "exit status 0", 0),
        ];
        let mut n2 = report("n2", "Master");
        n2.checks = vec![check("nginx", true, "HTTP 200 in 3 ms", 0)];
        let p = world_plan(
            &[two_node_vip(vec![n1, n2], Some("n1"))],
            &[registered("n1"), registered("n2")],
        );
        let s = &p.statuses["web"];
        assert_eq!(s.failing.as_deref(), Some("n1:nginx"));
        assert_eq!(s.phase, Some(Phase::Degraded));
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            ready.message,
            "n2 holds the addresses; n1 lost mastership: check nginx failed: connection refused; \
             n1 check nginx failing (-50): connection refused"
        );
    }

    #[test]
    fn an_https_check_gets_its_ca_from_the_secret() {
        let v = vip(
            "web",
            "2026-01-01T00:00:00Z",
            "addresses: [198.51.100.50/24]\nhealthChecks: [{name: tls, http: {scheme: HTTPS, port: 443, caSecretRef: {name: ca, namespace: ns, key: ca.crt}}}]",
        );
        assert_eq!(secret_refs(std::slice::from_ref(&v)).len(), 1);
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let r = SecretKeyRef {
            name: "ca".into(),
            namespace: "ns".into(),
            key: "ca.crt".into(),
        };
        let secrets = BTreeMap::from([(r, Ok(pem.to_string()))]);
        let nodes = vec![node("n1", "198.51.100.11")];
        let p = plan(&World {
            vips: &[v],
            nodes: &nodes,
            configs: &[registered("n1")],
            secrets: &secrets,
            now: "2026-11-22T00:00:00Z".parse().unwrap(),
        });
        let http = p.configs["n1"][0].spec.health_checks[0]
            .http
            .clone()
            .unwrap();
        assert_eq!(
            (http.ca_bundle.as_deref(), http.ca_secret_ref),
            (Some(pem), None)
        );
    }
}
