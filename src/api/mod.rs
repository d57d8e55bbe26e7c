//! The user-facing schema: `VirtualIP` (`kube-vrrp.io/v1alpha1`). The standalone agent reads
//! these from a YAML file; the CRD is generated from the same types.

use serde::{Deserialize, Serialize};

pub const GROUP: &str = "kube-vrrp.io";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "kube-vrrp.io/v1alpha1";
pub const KIND: &str = "VirtualIP";

/// Desired state of a set of virtual addresses held by one VRRP virtual router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualIpSpec {
    /// Virtual addresses as "ip/prefix" (IPv4 and IPv6 may be mixed: each family gets its
    /// own VRRP instance with the same virtual router ID).
    pub addresses: Vec<String>,
    /// Interface to run VRRP on and bind the addresses to. Default: the interface with an
    /// address in the subnet of the first virtual address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// VRRP Virtual Router ID, 1-255, unique per L2 segment.
    #[serde(
        rename = "virtualRouterID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub virtual_router_id: Option<u8>,
    /// VRRP version: 3 (RFC 5798, default) or 2 (RFC 3768, IPv4 only).
    #[serde(default = "default_version")]
    pub version: u8,
    /// Advertisement interval, e.g. "1s", "100ms". v2: whole seconds. Default "1s".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    pub advert_interval: Option<String>,
    /// A higher-priority node takes the addresses back from a lower-priority master.
    #[serde(default = "default_true")]
    pub preempt: bool,
    /// Hold-off before preempting after start-up, e.g. "30s".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    pub preempt_delay: Option<String>,
    /// Per-node priorities (1-255; 255 = address owner).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priorities: Vec<NodePriority>,
    /// Priority of nodes not listed in `priorities`. Default 100.
    #[serde(default = "default_priority")]
    pub default_priority: u8,
    /// Send advertisements to these addresses instead of multicast, and accept only theirs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unicast_peers: Vec<String>,
    /// Use the RFC 5798 virtual MAC (00:00:5e:00:01:VRID) through a macvlan interface, so
    /// clients' ARP entries never change on failover.
    #[serde(rename = "virtualMAC", default)]
    pub virtual_mac: bool,
    /// RFC 5798 Accept_Mode: whether a non-owner master accepts traffic addressed to the
    /// virtual addresses. Carried to the data plane but not enforced yet: a master accepts such
    /// traffic either way, as keepalived does without `vrrp_strict`.
    #[serde(default)]
    pub accept_mode: bool,
    /// Gratuitous ARP / unsolicited NA timing (keepalived garp_master_*).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp: Option<GarpSpec>,
    /// VRRPv2 simple password authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthenticationSpec>,
}

fn default_version() -> u8 {
    3
}
fn default_true() -> bool {
    true
}
fn default_priority() -> u8 {
    100
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodePriority {
    pub node: String,
    pub priority: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GarpSpec {
    /// Second burst this long after becoming master (keepalived garp_master_delay, default 5s;
    /// "0s" disables).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    pub master_delay: Option<String>,
    /// Announcements per burst (garp_master_repeat, default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_repeat: Option<u32>,
    /// Re-announce this often while master (garp_master_refresh; default off).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    pub master_refresh: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticationSpec {
    /// Password, up to 8 characters (standalone mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// Object metadata as far as the standalone file needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ObjectMeta {
    pub name: String,
}

/// A `VirtualIP` document as written in a YAML file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIpDocument {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: VirtualIpSpec,
}

/// Durations are strings with a unit ("1s", "100ms"). A bare number is read as text so that
/// validation can say the unit is missing, instead of a bare type error.
fn duration_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        S(String),
        I(i64),
        F(f64),
    }
    Ok(Option::<Text>::deserialize(d)?.map(|t| match t {
        Text::S(s) => s,
        Text::I(i) => i.to_string(),
        Text::F(f) => f.to_string(),
    }))
}
