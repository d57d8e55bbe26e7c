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
pub(crate) fn node_state(states: impl IntoIterator<Item = NodeState>) -> Option<NodeState> {
    let states: Vec<NodeState> = states.into_iter().collect();
    if states.contains(&NodeState::Master) {
        return Some(NodeState::Master);
    }
    states.into_iter().max()
}

/// What the run loop adds to the engine snapshot for the status entries: why things do not run
/// here, by source of the problem, and this node's configured priorities.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReportInputs {
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
    pub(crate) fn by_key(&self) -> BTreeMap<String, String> {
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
pub(crate) fn cluster_report(
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
        entries.insert(
            name.to_string(),
            running_entry(node, name, instances, &errors.of(name)),
        );
    }
    // VirtualIPs with nothing running here: Error, with every reason.
    for name in names_with_problems(errors) {
        if by_name.contains_key(name.as_str()) {
            continue;
        }
        let entry = error_entry(node, &name, errors);
        entries.insert(name, entry);
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

/// The entry of a VirtualIP with instances running here (`instances`, one per family, at
/// least one): their states, and `problems` (of families that cannot run) in the reason.
fn running_entry(
    node: &str,
    name: &str,
    instances: &[&InstanceStatus],
    problems: &[(String, Option<Family>, String)],
) -> NodeStatus {
    let latest = instances
        .iter()
        .filter_map(|i| i.last_transition.as_ref())
        .max_by(|a, b| a.time.total_cmp(&b.time));
    let families = family_statuses(name, instances, problems);
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
        reason: with_problems(latest.map(|t| t.reason.clone()), problems),
        conflict: instances.iter().find_map(|i| i.conflict.clone()),
        checks: Vec::new(),
        families,
        virtual_servers: Vec::new(),
    }
}

/// One status per family running, then an Error one per family of `name` that cannot run here
/// beside one that does.
fn family_statuses(
    name: &str,
    instances: &[&InstanceStatus],
    problems: &[(String, Option<Family>, String)],
) -> Vec<FamilyStatus> {
    let mut families: Vec<FamilyStatus> = instances
        .iter()
        .map(|i| FamilyStatus {
            family: family_name(&i.family),
            state: i.state.into(),
            effective_priority: Some(i.effective_priority),
            reason: i.last_transition.as_ref().map(|t| t.reason.clone()),
        })
        .collect();
    for (k, family, r) in problems {
        if let Some(family) = family
            && k.parse::<InstanceKey>().is_ok_and(|key| key.name() == name)
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
    families
}

/// The last transition's reason followed by every problem, `key: text`, `; `-separated.
fn with_problems(
    reason: Option<String>,
    problems: &[(String, Option<Family>, String)],
) -> Option<String> {
    if problems.is_empty() {
        return reason;
    }
    let text = problems
        .iter()
        .map(|(k, _, r)| format!("{k}: {r}"))
        .collect::<Vec<_>>()
        .join("; ");
    Some(match reason {
        Some(r) => format!("{r}; {text}"),
        None => text,
    })
}

/// Every VirtualIP name some problem is about.
fn names_with_problems(errors: &ReportInputs) -> std::collections::BTreeSet<String> {
    errors
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
        .collect()
}

/// The entry of a VirtualIP with nothing running here: Error, with every reason (a problem of
/// the whole object without its name), and the configured priority when known.
fn error_entry(node: &str, name: &str, errors: &ReportInputs) -> NodeStatus {
    let text = errors
        .of(name)
        .into_iter()
        .map(|(k, _, r)| if k == name { r } else { format!("{k}: {r}") })
        .collect::<Vec<_>>()
        .join("; ");
    let priority = errors
        .invalid
        .get(name)
        .map(|(p, _)| *p)
        .or_else(|| errors.priorities.get(name).copied());
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
        virtual_servers: Vec::new(),
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

    fn problems(list: &[(&str, &str)]) -> Vec<(String, Option<Family>, String)> {
        list.iter()
            .map(|(k, r)| {
                let family = k.parse::<InstanceKey>().ok().map(|k| k.family());
                (k.to_string(), family, r.to_string())
            })
            .collect()
    }

    #[test]
    fn problems_follow_the_transition_reason() {
        assert_eq!(with_problems(Some("up".into()), &[]), Some("up".into()));
        assert_eq!(with_problems(None, &[]), None);
        let p = problems(&[("web/ipv6", "no address"), ("web/ipv4", "no link")]);
        assert_eq!(
            with_problems(Some("up".into()), &p),
            Some("up; web/ipv6: no address; web/ipv4: no link".into())
        );
        assert_eq!(
            with_problems(None, &p[..1]),
            Some("web/ipv6: no address".into())
        );
    }

    #[test]
    fn a_family_that_cannot_run_is_an_error_family_of_its_own_object_only() {
        let p = problems(&[("web/ipv6", "no address"), ("web", "bad"), ("db/ipv4", "x")]);
        let f = family_statuses("web", &[], &p);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].family.as_str(), f[0].state, f[0].reason.as_deref()),
            ("IPv6", NodeState::Error, Some("no address"))
        );
        assert_eq!(f[0].effective_priority, None);
    }

    #[test]
    fn an_object_with_nothing_running_is_an_error_with_every_reason() {
        let errors = ReportInputs {
            invalid: BTreeMap::from([("bad".to_string(), (150, "spec.x: wrong".to_string()))]),
            resolve: BTreeMap::from([("web/ipv4".parse().unwrap(), ("no link".to_string(), true))]),
            start: BTreeMap::from([("web/ipv6".parse().unwrap(), "setup failed".to_string())]),
            priorities: BTreeMap::from([("web".to_string(), 120)]),
        };
        assert_eq!(
            names_with_problems(&errors).into_iter().collect::<Vec<_>>(),
            ["bad", "web"]
        );
        let e = error_entry("n1", "bad", &errors);
        assert_eq!(
            (e.state, e.priority, e.reason.as_deref()),
            (Some(NodeState::Error), Some(150), Some("spec.x: wrong"))
        );
        let e = error_entry("n1", "web", &errors);
        assert_eq!(e.priority, Some(120));
        assert_eq!(
            e.reason.as_deref(),
            Some(
                "web/ipv4: no link (the last good configuration keeps running); \
                 web/ipv6: setup failed"
            )
        );
        assert!(e.families.is_empty());
    }
}
