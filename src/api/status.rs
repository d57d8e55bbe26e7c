//! The observed state of a `VirtualIP`: the controller's summary (phase, master, conditions)
//! and each node's entry, written by that node's agent.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state, written by the controller (summary) and by each node's agent (its entry of
/// `nodes`, by server-side apply under its own field manager).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIPStatus {
    /// The generation the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The virtual router ID in use (explicit or allocated).
    #[serde(
        rename = "virtualRouterID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub virtual_router_id: Option<u8>,
    /// The node holding the addresses now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Invalid, Pending, Ready, Degraded, NoMaster, SplitBrain or Conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Every node at a glance, as believed now: `n1=Master(200),n2=Backup(100)`; a silent
    /// agent shows as `n1=Silent`, a master whose successor took over because its
    /// advertisements stopped as `n1=Unheard`, a node with no report yet as `n1=?`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Failing health checks and tracked interfaces at a glance, as `node:check`, e.g.
    /// `n1:nginx,n2:uplink`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<String>,
    /// Real servers up of all, as the master sees them, e.g. `2/3 up` (virtual servers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers: Option<String>,
    /// One entry per eligible node, each written by that node's agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["node"]))]
    pub nodes: Vec<NodeStatus>,
    /// Ready, Programmed, ConfigValid, VRIDConflict, SplitBrain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
}

/// The summary phase of a VirtualIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// The spec cannot run, and no earlier version of it ever did.
    Invalid,
    Pending,
    Ready,
    Degraded,
    NoMaster,
    SplitBrain,
    Conflict,
}

/// One node's view, written by its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Node name.
    pub node: String,
    /// The node's state: Master when it holds the addresses of any family; otherwise the
    /// least healthy of its families (Error, Fault, Initialize, Backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<NodeState>,
    /// Configured priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Priority advertised now (after health tracking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_priority: Option<u8>,
    /// When the state last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Why, e.g. "master down timer expired (no advertisement for 0.341s)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Another VRRP router on the wire uses this virtual router ID with other addresses or
    /// another password or interval (seen in the last 10 s), e.g. "198.51.100.99 advertises
    /// virtual router 51 with other addresses".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
    /// Health checks and tracked interfaces on this node, and what each does to the
    /// priority now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub checks: Vec<CheckStatus>,
    /// Each address family on its own (they start, fail and report independently).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["family"]))]
    pub families: Vec<FamilyStatus>,
    /// The VirtualIP's virtual servers as this node checks them (the master's view is the
    /// one in force): each real server's health and weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub virtual_servers: Vec<VirtualServerStatus>,
}

/// One health check (or tracked interface, or Kubernetes condition) on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckStatus {
    /// The check's name; `interface:NAME` for tracked interfaces, `node` for the node's own
    /// condition (cordoned, excluded).
    pub name: String,
    /// Passing now (after fall / rise).
    pub healthy: bool,
    /// The last result in words, e.g. "HTTP 200 in 3 ms", "connection refused".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Consecutive successes (while passing) or failures (while failing) so far.
    #[serde(default)]
    pub consecutive: u32,
    /// What it adds to the priority now (negative: subtracts); none with weight 0.
    #[serde(default)]
    pub contribution: i32,
    /// Weight 0 and failing: the node is in FAULT because of it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fault: bool,
    /// When `healthy` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// A virtual server as one node sees it: its real servers' health and the weights in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServerStatus {
    /// The VirtualIP it belongs to.
    pub virtual_ip: String,
    /// `address:port/PROTOCOL`.
    pub name: String,
    /// Real servers up of all, e.g. "2/3".
    pub up: String,
    /// Where new connections go now: "real servers", "sorry server" or "nowhere".
    pub serving: String,
    /// Whether the rules are in force on this node (false: see `error`).
    pub programmed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub real_servers: Vec<RealServerStatus>,
}

/// One real server's health and weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealServerStatus {
    /// `address:port`.
    pub address: String,
    /// Passing its check (or unchecked).
    pub healthy: bool,
    /// The last check result in words; none when unchecked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The weight in force: its weight while up, 0 while down with `inhibitOnFailure`; none:
    /// taken out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Up, but configured with weight 0 (drained): it takes no new connections, and its
    /// established ones stay.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drained: bool,
    /// How often it went down or came back.
    #[serde(default)]
    pub transitions: u64,
    /// When `healthy` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// A node's VRRP state for a VirtualIP (or one family of it).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum NodeState {
    /// Holds the addresses.
    Master,
    /// Ready to take over.
    Backup,
    /// Starting, or stopped.
    Initialize,
    /// Cannot take part now (interface down, an address conflict, a failing check): priority
    /// 0 handed over, addresses released.
    Fault,
    /// Does not run on this node (invalid configuration, no such interface, setup failed).
    Error,
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl From<crate::vrrp::State> for NodeState {
    fn from(s: crate::vrrp::State) -> Self {
        match s {
            crate::vrrp::State::Initialize => NodeState::Initialize,
            crate::vrrp::State::Backup => NodeState::Backup,
            crate::vrrp::State::Master => NodeState::Master,
            crate::vrrp::State::Fault => NodeState::Fault,
        }
    }
}

/// One address family of a node's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FamilyStatus {
    /// IPv4 or IPv6.
    pub family: String,
    pub state: NodeState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_priority: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
