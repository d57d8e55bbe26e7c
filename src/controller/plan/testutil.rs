//! Test helpers shared by the plan's test modules.

use crate::api::{NodeState, NodeStatus};

/// A node's status entry in `state`, priority 100, no checks.
pub(crate) fn node_status(node: &str, state: NodeState) -> NodeStatus {
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
        virtual_servers: Vec::new(),
    }
}
