//! From what the engine runs and what could not run to this node's entry in each VirtualIP's
//! status (cluster mode). Pure.

use std::collections::BTreeMap;

use super::status::{AgentStatus, InstanceStatus};
use crate::api::{FamilyStatus, NodeState, NodeStatus};
use crate::ids::{Family, InstanceKey};

/// The status' spelling (`IPv4`) of an instance's family key (`ipv4`).
fn family_name(key: &str) -> String {
    key.parse::<Family>()
        .map_or_else(|_| key.to_string(), |f| f.label().to_string())
}

/// The node-level state of several families: Master when it holds any addresses (what split
/// brain and "who answers" are about), else the least healthy one.
pub fn node_state(states: impl IntoIterator<Item = NodeState>) -> Option<NodeState> {
    let states: Vec<NodeState> = states.into_iter().collect();
    if states.contains(&NodeState::Master) {
        return Some(NodeState::Master);
    }
    states.into_iter().max()
}

/// What the run loop adds to the engine snapshot for the status entries: why things do not run
/// here, by source of the problem, and this node's configured priorities.
#[derive(Debug, Clone, Default)]
pub struct ReportInputs {
    /// VirtualIP name → (configured priority, reason): the configuration itself is invalid.
    pub invalid: BTreeMap<String, (u8, String)>,
    /// Instance key → (reason, whether the last good configuration still runs).
    pub resolve: BTreeMap<InstanceKey, (String, bool)>,
    /// Instance key → reason its setup failed.
    pub start: BTreeMap<InstanceKey, String>,
    /// VirtualIP name → this node's configured priority.
    pub priorities: BTreeMap<String, u8>,
}

fn resolve_text(reason: &str, kept: bool) -> String {
    if kept {
        format!("{reason} (the last good configuration keeps running)")
    } else {
        reason.to_string()
    }
}

impl ReportInputs {
    /// Everything by instance key (or VirtualIP name), for `/status`.
    pub fn by_key(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (name, (_, reason)) in &self.invalid {
            out.insert(name.clone(), reason.clone());
        }
        for (key, (reason, kept)) in &self.resolve {
            out.insert(key.to_string(), resolve_text(reason, *kept));
        }
        for (key, reason) in &self.start {
            out.insert(key.to_string(), reason.clone());
        }
        out
    }

    /// Problems of one VirtualIP: (key or name, text, whether something still runs for it).
    fn of(&self, name: &str) -> Vec<(String, Option<Family>, String)> {
        let mut out = Vec::new();
        if let Some((_, r)) = self.invalid.get(name) {
            out.push((name.to_string(), None, r.clone()));
        }
        for (k, (r, kept)) in &self.resolve {
            if k.name() == name {
                out.push((k.to_string(), Some(k.family()), resolve_text(r, *kept)));
            }
        }
        for (k, r) in &self.start {
            if k.name() == name {
                out.push((k.to_string(), Some(k.family()), r.clone()));
            }
        }
        out
    }
}

/// This node's entry of every VirtualIP it runs or was asked to run.
pub fn cluster_report(
    node: &str,
    snapshot: &AgentStatus,
    errors: &ReportInputs,
    config_generation: Option<i64>,
    epoch: u64,
) -> super::cluster::Report {
    let mut by_name: BTreeMap<&str, Vec<&InstanceStatus>> = BTreeMap::new();
    for i in snapshot.instances.values() {
        by_name.entry(i.name.as_str()).or_default().push(i);
    }
    let mut entries = BTreeMap::new();
    for (name, instances) in &by_name {
        let latest = instances
            .iter()
            .filter_map(|i| i.last_transition.as_ref())
            .max_by(|a, b| a.time.total_cmp(&b.time));
        let mut reason = latest.map(|t| t.reason.clone());
        let problems = errors.of(name);
        let mut families: Vec<FamilyStatus> = instances
            .iter()
            .map(|i| FamilyStatus {
                family: family_name(&i.family),
                state: i.state.into(),
                effective_priority: Some(i.effective_priority),
                reason: i.last_transition.as_ref().map(|t| t.reason.clone()),
            })
            .collect();
        // A family that cannot run here beside one that does.
        for (_, family, r) in &problems {
            if let Some(family) = family
                && !families.iter().any(|f| f.family == family.label())
            {
                families.push(FamilyStatus {
                    family: family.label().to_string(),
                    state: NodeState::Error,
                    effective_priority: None,
                    reason: Some(r.clone()),
                });
            }
        }
        if !problems.is_empty() {
            let text = problems
                .iter()
                .map(|(k, _, r)| format!("{k}: {r}"))
                .collect::<Vec<_>>()
                .join("; ");
            reason = Some(match reason {
                Some(r) => format!("{r}; {text}"),
                None => text,
            });
        }
        entries.insert(
            name.to_string(),
            NodeStatus {
                node: node.to_string(),
                state: node_state(families.iter().map(|f| f.state)),
                priority: Some(instances[0].priority),
                effective_priority: Some(instances[0].effective_priority),
                last_transition_time: latest.and_then(|t| {
                    k8s_openapi::jiff::Timestamp::from_microsecond((t.time * 1e6) as i64)
                        .ok()
                        .map(|ts| ts.to_string())
                }),
                reason,
                conflict: instances.iter().find_map(|i| i.conflict.clone()),
                checks: Vec::new(),
                families,
            },
        );
    }
    // VirtualIPs with nothing running here: Error, with every reason.
    let names = errors
        .invalid
        .keys()
        .cloned()
        .chain(
            errors
                .resolve
                .keys()
                .chain(errors.start.keys())
                .map(|k| k.name().to_string()),
        )
        .collect::<std::collections::BTreeSet<String>>();
    for name in names {
        if by_name.contains_key(name.as_str()) {
            continue;
        }
        let text = errors
            .of(&name)
            .into_iter()
            .map(|(k, _, r)| if k == name { r } else { format!("{k}: {r}") })
            .collect::<Vec<_>>()
            .join("; ");
        let priority = errors
            .invalid
            .get(&name)
            .map(|(p, _)| *p)
            .or_else(|| errors.priorities.get(&name).copied());
        entries.insert(
            name,
            NodeStatus {
                node: node.to_string(),
                state: Some(NodeState::Error),
                priority,
                effective_priority: None,
                last_transition_time: None,
                reason: Some(text),
                conflict: None,
                checks: Vec::new(),
                families: Vec::new(),
            },
        );
    }
    let mut addresses: Vec<String> = snapshot
        .instances
        .values()
        .filter_map(|i| i.source.map(|a| a.to_string()))
        .collect();
    addresses.sort();
    addresses.dedup();
    super::cluster::Report {
        entries,
        config_generation,
        epoch,
        addresses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_holding_any_family_is_master_otherwise_the_least_healthy() {
        use NodeState::*;
        assert_eq!(node_state([Master, Fault]), Some(Master));
        assert_eq!(node_state([Backup, Fault]), Some(Fault));
        assert_eq!(node_state([Backup, Error]), Some(Error));
        assert_eq!(node_state([Backup, Initialize]), Some(Initialize));
        assert_eq!(node_state([Backup]), Some(Backup));
        assert_eq!(node_state([]), None);
    }
}
