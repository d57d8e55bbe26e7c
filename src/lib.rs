//! kube-vrrp: keepalived's VRRP as a Kubernetes-native virtual IP operator.

pub mod agent;
pub mod api;
pub mod check;
pub mod checks;
pub mod controller;
pub mod director;
pub mod hooks;
pub mod http;
pub mod ids;
pub(crate) mod k8s;
pub mod keepalived;
pub mod logging;
pub mod manifest;
pub mod model;
pub mod net;
pub(crate) mod telemetry;
pub mod units;
pub mod vrrp;
pub mod yaml;
