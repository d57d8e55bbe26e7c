//! Agent liveness: which nodes have an agent, which agents are silent (heartbeat late), which
//! entries an earlier process of an agent left behind, and the agents' addresses, so that
//! reasons name nodes instead of addresses. What an agent that is not alive said is not
//! believed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::super::resolve::NodeInput;
use super::World;
use k8s_openapi::api::core::v1::Node;

use crate::api::NodeStatus;

/// Every Node, in name order, marked when its agent has registered in its configuration's
/// status.
pub(super) fn nodes(world: &World) -> Vec<NodeInput> {
    let registered: BTreeSet<String> = world
        .configs
        .iter()
        .filter(|c| c.status.as_ref().is_some_and(|s| s.agent.is_some()))
        .map(|c| c.name_any())
        .collect();
    let mut out: Vec<NodeInput> = world
        .nodes
        .iter()
        .map(|n| {
            let mut i = node_input(n);
            i.agent = registered.contains(&i.name);
            i
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// What resolution needs of one Node: its name, labels and InternalIP addresses.
fn node_input(n: &Node) -> NodeInput {
    NodeInput {
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
        agent: false,
    }
}

/// Slack on a heartbeat before its agent counts as silent (API and clock skew).
const HEARTBEAT_SLACK_S: i64 = 2;

/// Nodes whose agent's heartbeat is late (one period plus a little slack), with the seconds
/// since it last renewed: from that moment on, what it last said is not believed.
pub(super) fn silent_agents(world: &World) -> BTreeMap<String, i64> {
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
pub(super) struct Agents {
    pub(super) heartbeats: BTreeMap<String, Timestamp>,
    /// When the agent process started: older entries are a previous process's.
    started: BTreeMap<String, Timestamp>,
    /// Advertisement source address → node name.
    by_address: BTreeMap<String, String>,
}

impl Agents {
    pub(super) fn of(world: &World) -> Agents {
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
    pub(super) fn stale(&self, r: &NodeStatus) -> bool {
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

    /// The entries worth believing: neither a silent agent's (what it last said, not what
    /// is) nor an earlier process's (what that process said before it stopped), with reasons
    /// that name nodes, not their addresses.
    pub(super) fn believed(
        &self,
        entries: &[NodeStatus],
        silent_agents: &BTreeMap<String, i64>,
    ) -> Vec<NodeStatus> {
        entries
            .iter()
            .filter(|r| !silent_agents.contains_key(&r.node) && !self.stale(r))
            .cloned()
            .map(|mut r| {
                r.reason = r.reason.map(|t| self.name_nodes(&t));
                for f in &mut r.families {
                    f.reason = f.reason.take().map(|t| self.name_nodes(&t));
                }
                r
            })
            .collect()
    }

    /// Names nodes instead of their addresses: a link-local address becomes the node's name,
    /// another address the name with the address.
    pub(super) fn name_nodes(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (addr, node) in &self.by_address {
            if !out.contains(addr.as_str()) {
                continue;
            }
            let link_local = addr
                .parse::<IpAddr>()
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
pub(super) fn replace_address(text: &str, addr: &str, with: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::api::{NodeConfigStatus, NodeState, VirtualIPNodeConfig, VirtualIPNodeConfigSpec};

    fn config(node: &str, heartbeat: &str) -> Arc<VirtualIPNodeConfig> {
        let mut c = VirtualIPNodeConfig::new(node, VirtualIPNodeConfigSpec::default());
        c.status = Some(NodeConfigStatus {
            agent: Some("test".into()),
            heartbeat_time: Some(heartbeat.into()),
            heartbeat_seconds: Some(10),
            observed_generation: None,
            started_time: Some("2026-11-21T12:00:00Z".into()),
            addresses: vec!["fe80::1".into(), "198.51.100.11".into()],
        });
        Arc::new(c)
    }

    fn world_at<'a>(
        configs: &'a [Arc<VirtualIPNodeConfig>],
        secrets: &'a BTreeMap<crate::api::SecretKeyRef, super::super::SecretValue>,
    ) -> World<'a> {
        static NONE: std::sync::LazyLock<BTreeMap<String, super::super::Announced>> =
            std::sync::LazyLock::new(BTreeMap::new);
        World {
            vips: &[],
            nodes: &[],
            configs,
            secrets,
            announced: &NONE,
            now: "2026-11-22T00:00:00Z".parse().unwrap(),
        }
    }

    fn entry(node: &str, since: Option<&str>) -> NodeStatus {
        NodeStatus {
            priority: None,
            effective_priority: None,
            last_transition_time: since.map(String::from),
            reason: Some("preempted by fe80::1".into()),
            ..super::super::testutil::node_status(node, NodeState::Master)
        }
    }

    #[test]
    fn an_agent_is_silent_past_one_period_and_the_slack() {
        let secrets = BTreeMap::new();
        let configs = [
            config("late", "2026-11-21T23:59:47Z"),
            config("on-time", "2026-11-21T23:59:48Z"),
        ];
        let silent = silent_agents(&world_at(&configs, &secrets));
        assert_eq!(silent, BTreeMap::from([("late".to_string(), 13)]));
    }

    #[test]
    fn entries_of_an_earlier_process_or_a_silent_agent_are_not_believed() {
        let secrets = BTreeMap::new();
        let configs = [config("n1", "2026-11-21T23:59:59Z")];
        let agents = Agents::of(&world_at(&configs, &secrets));
        let before = entry("n1", Some("2026-11-21T11:00:00Z"));
        let after = entry("n1", Some("2026-11-21T13:00:00Z"));
        assert!(agents.stale(&before));
        assert!(!agents.stale(&after));
        assert!(!agents.stale(&entry("n1", None)), "no time: believed");
        let believed = agents.believed(&[before, after.clone()], &BTreeMap::new());
        assert_eq!(believed.len(), 1);
        assert_eq!(believed[0].reason.as_deref(), Some("preempted by n1"));
        let silent = BTreeMap::from([("n1".to_string(), 30)]);
        assert!(agents.believed(&[after], &silent).is_empty());
    }

    #[test]
    fn addresses_are_replaced_only_whole() {
        assert_eq!(
            replace_address("198.51.100.1 and 198.51.100.11", "198.51.100.1", "n1"),
            "n1 and 198.51.100.11"
        );
        assert_eq!(replace_address("fe80::1:2", "fe80::1", "n1"), "fe80::1:2");
        assert_eq!(
            replace_address("from fe80::1.", "fe80::1", "n1"),
            "from n1."
        );
    }
}
