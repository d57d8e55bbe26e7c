//! kube-vrrp: keepalived's VRRP as a Kubernetes-native virtual IP operator.

pub mod vrrp;
