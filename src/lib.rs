//! kube-vrrp: keepalived's VRRP as a Kubernetes-native virtual IP operator.
//!
//! What is `pub` here is what other crates use: the binary (`cli`), the integration tests
//! (the protocol core and codec, the API types, the shared vocabulary of `ids`, the
//! director's rule set and nftables, the netlink handle) and the benchmarks in `e2e` (the controller's planners). Everything else
//! is the crate's own, and `unreachable_pub` keeps it so.
#![warn(unreachable_pub)]

pub(crate) mod agent;
pub mod api;
pub(crate) mod check;
pub(crate) mod checks;
pub mod cli;
pub mod controller;
pub mod director;
pub(crate) mod hooks;
pub(crate) mod http;
pub mod ids;
pub(crate) mod k8s;
pub(crate) mod keepalived;
pub(crate) mod logging;
pub mod manifest;
pub mod model;
pub mod net;
pub(crate) mod telemetry;
pub(crate) mod units;
pub mod vrrp;
pub(crate) mod yaml;
