//! `VirtualIPNodeConfig` (`kube-vrrp.io/v1alpha1`, cluster-scoped): what one node runs,
//! written by the controller and watched by that node's agent, with the agent's status.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::VirtualIpSpec;

/// What one node runs: written by the controller (one object per node, named after it),
/// watched by that node's agent. Each entry is a resolved `VirtualIP`: its virtual router ID
/// set, this node's priority as `defaultPriority` (no `priorities`, no `nodeSelector`),
/// unicast peers spelled out and a Secret password read. Agents never read user objects.
#[allow(clippy::duplicated_attributes)] // repeated `type_ = "string"` of the printcolumns
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kube-vrrp.io",
    version = "v1alpha1",
    kind = "VirtualIPNodeConfig",
    plural = "virtualipnodeconfigs",
    singular = "virtualipnodeconfig",
    shortname = "vipnc",
    status = "NodeConfigStatus",
    derive = "PartialEq",
    printcolumn(
        name = "VirtualIPs",
        type_ = "string",
        json_path = ".spec.virtualIPs[*].name"
    ),
    printcolumn(name = "Agent", type_ = "string", json_path = ".status.agent"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIPNodeConfigSpec {
    /// The node these entries are for. The first shard is named after the node; a node
    /// with more than one object's worth of entries also has `<node>.shard-N` objects, all
    /// labelled `kube-vrrp.io/node` (see [`node_label_value`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The virtual routers this node takes part in, by VirtualIP name.
    #[serde(rename = "virtualIPs", default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub virtual_ips: Vec<NodeVirtualIP>,
}

/// The label that finds every configuration object of a node.
pub const LABEL_NODE: &str = "kube-vrrp.io/node";

/// The value of [`LABEL_NODE`] for a node: its name when that is a valid label value (63
/// characters at most), else a hash of it (the agent then also checks `spec.node`).
pub fn node_label_value(node: &str) -> String {
    if node.len() <= 63 {
        return node.to_string();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("h-{h:016x}")
}

/// One resolved VirtualIP as a node runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeVirtualIP {
    /// The VirtualIP's name.
    pub name: String,
    /// The VirtualIP's metadata.generation this entry was resolved from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Set by the controller when this node must hand the addresses over and take none (it
    /// is cordoned, or excluded from load balancers): the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<String>,
    /// The resolved specification (a VirtualIP spec; not validated again by the API server:
    /// the controller wrote it from a validated object, and per-entry CEL rules over a list of
    /// every VirtualIP on a node would cost the API server on each write).
    #[schemars(schema_with = "resolved_spec_schema")]
    pub spec: VirtualIpSpec,
}

fn resolved_spec_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Written by the node's agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfigStatus {
    /// The agent running on this node (its version): the controller places VirtualIPs only on
    /// nodes that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The metadata.generation of this object the agent runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Renewed by the agent every `heartbeatSeconds` (RFC 3339): a node whose agent has been
    /// silent for three periods is reported as not reporting, and its last entries are not
    /// believed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<u32>,
    /// When this agent process started (RFC 3339): entries whose last transition is older
    /// were written by an earlier process on the node and are not believed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_time: Option<String>,
    /// The addresses this node's advertisements come from (IPv4 primaries, IPv6 link-local):
    /// reasons that name an address are shown with the node's name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}
