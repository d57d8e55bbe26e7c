//! What the Service side reads (`LbWorld`) and what it decides (`LbPlan`: routers, frozen
//! pools, Service and pool statuses).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use crate::api::{VirtualIP, VirtualIPPool, VirtualIPPoolStatus, VirtualIpSpec};

/// A Service by (namespace, name).
pub(crate) type ServiceKey = (String, String);

/// Everything the Service side of the controller reads.
pub struct LbWorld<'a> {
    pub pools: &'a [Arc<VirtualIPPool>],
    pub services: &'a [Arc<Service>],
    pub slices: &'a [Arc<EndpointSlice>],
    /// Every VirtualIP: the users' (their addresses are never allocated) and the pools'
    /// routers (their status says who is master).
    pub vips: &'a [Arc<VirtualIP>],
    pub nodes: &'a [Arc<Node>],
    /// Serve LoadBalancer Services that name no class.
    pub classless: bool,
    pub now: Timestamp,
}

/// One router to hold, as a VirtualIP owned by `pool`.
#[derive(Debug, Clone, PartialEq)]
pub struct Router {
    pub pool: String,
    pub spec: VirtualIpSpec,
}

/// What a Service's status should say.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceOutcome {
    /// The addresses, IPv4 first; empty: none.
    pub ingress: Vec<IpAddr>,
    /// Our condition; `None`: remove it (the Service is not ours any more).
    pub condition: Option<Condition>,
    /// Emitted once the status saying the same is written: (warning, reason, note).
    pub events: Vec<(bool, &'static str, String)>,
}

#[derive(Debug, Default)]
pub struct LbPlan {
    /// VirtualIP name → the router it should be.
    pub routers: BTreeMap<String, Router>,
    /// Pools whose routers are left as they are (the pool is invalid now: last known good).
    pub frozen: BTreeSet<String>,
    /// (namespace, name) → status, for every Service that is ours or was.
    pub services: BTreeMap<(String, String), ServiceOutcome>,
    pub pools: BTreeMap<String, VirtualIPPoolStatus>,
}
