//! `VirtualIPPool` (`kube-vrrp.io/v1alpha1`, cluster-scoped): addresses for `type:
//! LoadBalancer` Services, and the VRRP settings they are held with. The controller allocates
//! from it and holds the addresses with a few shared virtual routers per pool (VirtualIPs it
//! owns, named after the pool), however many Services there are.
// Every type here is re-exported as `api::*`. kube's `KubeSchema` derive copies the structs
// it validates into a private module of its own, and those copies are what unreachable_pub
// sees.
#![allow(unreachable_pub)]

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DurationText, GarpSpec, HealthCheckSpec, NodePriority, TrackInterfaceSpec};

/// The `spec.loadBalancerClass` of the Services kube-vrrp serves.
pub const LOAD_BALANCER_CLASS: &str = "kube-vrrp.io/vrrp";
/// Service annotation: the addresses asked for, one per family, comma-separated.
pub const ANNOTATION_IPS: &str = "kube-vrrp.io/loadBalancerIPs";
/// Service annotation: the pool to allocate from.
pub const ANNOTATION_POOL: &str = "kube-vrrp.io/address-pool";
/// Service annotation: Services with the same key may share an address (MetalLB's rules).
pub const ANNOTATION_SHARED: &str = "kube-vrrp.io/allow-shared-ip";
/// Label on the VirtualIPs the controller makes for a pool: the pool's name.
pub const LABEL_POOL: &str = "kube-vrrp.io/pool";
/// The Service condition saying which node answers for it.
pub const CONDITION_ANNOUNCED: &str = "kube-vrrp.io/Announced";

/// Addresses for LoadBalancer Services and how they are held.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[kube(
    group = "kube-vrrp.io",
    version = "v1alpha1",
    kind = "VirtualIPPool",
    plural = "virtualippools",
    singular = "virtualippool",
    shortname = "vippool",
    status = "VirtualIPPoolStatus",
    derive = "PartialEq",
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses"),
    printcolumn(name = "Used", type_ = "integer", json_path = ".status.used"),
    printcolumn(name = "Free", type_ = "integer", json_path = ".status.free"),
    printcolumn(name = "Routers", type_ = "string", json_path = ".status.summary"),
    printcolumn(name = "Problem", type_ = "string", json_path = ".status.problem"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIPPoolSpec {
    /// Addresses to allocate from, IPv4 and IPv6 mixed: CIDRs ("198.51.100.64/26") or
    /// inclusive ranges ("198.51.100.200-198.51.100.220"). Each is bound as a /32 or /128 on
    /// the node that answers for it.
    #[schemars(length(min = 1, max = 64), inner(length(max = 100)))]
    pub addresses: Vec<String>,
    /// Services that name no pool and ask for no address get theirs from pools with
    /// autoAssign (the first by name that allows them). Default true.
    #[serde(default = "super::virtualip::default_true")]
    pub auto_assign: bool,
    /// Which Services may use this pool. Default: every namespace, every Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
    /// Virtual routers that share the masters out per family (each takes a different node
    /// as its first choice, by rendezvous hashing of node names), 1 to 16. Default 2. A pool
    /// adds one set more for each 4,096 addresses in use, and one router per
    /// `externalTrafficPolicy: Local` selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16))]
    pub spread: Option<u8>,
    /// How the addresses are held: the VirtualIP settings that apply to a pool.
    #[serde(default)]
    pub vrrp: PoolVrrpSpec,
}

/// Which Services may take addresses from a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Namespaces allowed; empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Labels a Service must have; empty: any.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_selector: BTreeMap<String, String>,
}

/// The VRRP settings of a pool's virtual routers (see VirtualIP for each field).
#[derive(KubeSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.version == 3 || !has(self.advertInterval) || self.advertInterval.matches('^[0-9]+s$')")
        .message("VRRPv2 advertisement intervals are whole seconds (1s to 255s): write e.g. 1s, or use version 3")
)]
pub struct PoolVrrpSpec {
    /// Interface to run VRRP on and bind the addresses to. Default: on each node, the
    /// interface with an address in the subnet of the pool's first address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// 3 (default) or 2 (IPv4 pools only).
    #[serde(default = "super::virtualip::default_version")]
    #[schemars(range(min = 2, max = 3))]
    pub version: u8,
    /// Advertisement interval, e.g. "100ms". Default "1s".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "DurationText::strict"
    )]
    #[schemars(length(max = 32))]
    pub advert_interval: Option<DurationText>,
    /// Default true.
    #[serde(default = "super::virtualip::default_true")]
    pub preempt: bool,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "DurationText::strict"
    )]
    #[schemars(length(max = 32))]
    pub preempt_delay: Option<DurationText>,
    /// Only nodes with these labels answer for the pool's addresses.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Fixed per-node priorities for every router of the pool (then masters are not spread).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["node"]))]
    pub priorities: Vec<NodePriority>,
    /// Send advertisements to the eligible nodes instead of multicast.
    #[serde(default)]
    pub unicast: bool,
    #[serde(rename = "virtualMAC", default)]
    pub virtual_mac: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp: Option<GarpSpec>,
    /// Health checks every node runs for each of the pool's routers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub health_checks: Vec<HealthCheckSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub track_interfaces: Vec<TrackInterfaceSpec>,
    /// A cordoned node hands over and takes none.
    #[serde(default)]
    pub leave_cordoned_nodes: bool,
}

impl Default for PoolVrrpSpec {
    fn default() -> Self {
        PoolVrrpSpec {
            interface: None,
            version: 3,
            advert_interval: None,
            preempt: true,
            preempt_delay: None,
            node_selector: BTreeMap::new(),
            priorities: Vec::new(),
            unicast: false,
            virtual_mac: false,
            garp: None,
            health_checks: Vec::new(),
            track_interfaces: Vec::new(),
            leave_cordoned_nodes: false,
        }
    }
}

/// Written by the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIPPoolStatus {
    /// Addresses in the pool (IPv6 ranges count up to 2^32).
    #[serde(default)]
    pub total: u64,
    /// Addresses given to Services (a shared address counts once).
    #[serde(default)]
    pub used: u64,
    #[serde(default)]
    pub free: u64,
    /// Services served from this pool.
    #[serde(default)]
    pub services: u64,
    /// The pool's virtual routers at a glance: `web-ipv4-0=n1(1000),web-ipv4-1=n2(1000)`
    /// (VirtualIP = master (addresses)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The pool's virtual routers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routers: Vec<PoolRouter>,
    /// Nodes and how many of the pool's addresses each answers for now: `n1=1000,n2=1000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masters: Option<String>,
    /// What is wrong, if anything: an invalid spec, or Services refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One of a pool's virtual routers (a VirtualIP the controller owns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolRouter {
    /// The VirtualIP's name.
    pub name: String,
    /// IPv4 or IPv6.
    pub family: String,
    /// Addresses it holds.
    pub addresses: u64,
    #[serde(
        rename = "virtualRouterID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub virtual_router_id: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// For `externalTrafficPolicy: Local` routers: the Services' namespace and selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
}
