//! From what the engine runs and what could not run to this node's entry in each VirtualIP's
//! status (cluster mode). Pure.

use std::collections::BTreeMap;

use super::status::{AgentStatus, InstanceStatus};
use crate::api::NodeStatus;

/// Why things do not run here, by source of the problem.
#[derive(Debug, Clone, Default)]
pub struct Errors {
    /// VirtualIP name → (configured priority, reason): the configuration itself is invalid.
    pub invalid: BTreeMap<String, (u8, String)>,
    /// Instance key → (reason, whether the last good configuration still runs).
    pub resolve: BTreeMap<String, (String, bool)>,
    /// Instance key → reason its setup failed.
    pub start: BTreeMap<String, String>,
    /// VirtualIP name → this node's configured priority.
    pub priorities: BTreeMap<String, u8>,
}

impl Errors {
    /// Everything by instance key (or VirtualIP name), for `/status`.
    pub fn by_key(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (name, (_, reason)) in &self.invalid {
            out.insert(name.clone(), reason.clone());
        }
        for (key, (reason, kept)) in &self.resolve {
            let text = if *kept {
                format!("{reason} (the last good configuration keeps running)")
            } else {
                reason.clone()
            };
            out.insert(key.clone(), text);
        }
        for (key, reason) in &self.start {
            out.insert(key.clone(), reason.clone());
        }
        out
    }

    /// Errors of one VirtualIP: (key or name, text, whether something still runs for it).
    fn of(&self, name: &str) -> Vec<(String, String)> {
        let prefix = format!("{name}/");
        let mut out = Vec::new();
        if let Some((_, r)) = self.invalid.get(name) {
            out.push((name.to_string(), r.clone()));
        }
        for (k, (r, kept)) in &self.resolve {
            if k.starts_with(&prefix) {
                let text = if *kept {
                    format!("{r} (the last good configuration keeps running)")
                } else {
                    r.clone()
                };
                out.push((k.clone(), text));
            }
        }
        for (k, r) in &self.start {
            if k.starts_with(&prefix) {
                out.push((k.clone(), r.clone()));
            }
        }
        out
    }
}

/// This node's entry of every VirtualIP it runs or was asked to run.
pub fn cluster_report(
    node: &str,
    snapshot: &AgentStatus,
    errors: &Errors,
    config_generation: Option<i64>,
    epoch: u64,
) -> super::cluster::Report {
    let mut by_name: BTreeMap<&str, Vec<&InstanceStatus>> = BTreeMap::new();
    for i in snapshot.instances.values() {
        by_name.entry(i.name.as_str()).or_default().push(i);
    }
    let mut entries = BTreeMap::new();
    for (name, instances) in &by_name {
        let mut states: Vec<String> = instances.iter().map(|i| i.state.to_string()).collect();
        states.dedup();
        let latest = instances
            .iter()
            .filter_map(|i| i.last_transition.as_ref())
            .max_by(|a, b| a.time.total_cmp(&b.time));
        let mut reason = latest.map(|t| t.reason.clone());
        let problems = errors.of(name);
        if !problems.is_empty() {
            let text = problems
                .iter()
                .map(|(k, r)| format!("{k}: {r}"))
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
                state: Some(states.join("/")),
                priority: Some(instances[0].priority),
                effective_priority: Some(instances[0].effective_priority),
                last_transition_time: latest.and_then(|t| {
                    k8s_openapi::jiff::Timestamp::from_microsecond((t.time * 1e6) as i64)
                        .ok()
                        .map(|ts| ts.to_string())
                }),
                reason,
                conflict: instances.iter().find_map(|i| i.conflict.clone()),
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
                .filter_map(|k| k.split('/').next().map(String::from)),
        )
        .collect::<std::collections::BTreeSet<String>>();
    for name in names {
        if by_name.contains_key(name.as_str()) {
            continue;
        }
        let text = errors
            .of(&name)
            .into_iter()
            .map(|(k, r)| if k == name { r } else { format!("{k}: {r}") })
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
                state: Some("Error".into()),
                priority,
                effective_priority: None,
                last_transition_time: None,
                reason: Some(text),
                conflict: None,
            },
        );
    }
    super::cluster::Report {
        entries,
        config_generation,
        epoch,
    }
}
