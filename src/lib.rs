//! kube-vrrp: keepalived's VRRP as a Kubernetes-native virtual IP operator.

pub mod agent;
pub mod api;
pub mod check;
pub mod controller;
pub mod health;
pub mod http;
pub mod ids;
pub mod keepalived;
pub(crate) mod k8s;
pub mod logging;
pub mod manifest;
pub mod model;
pub mod net;
pub mod units;
pub(crate) mod telemetry;
pub mod vrrp;
pub mod yaml;
