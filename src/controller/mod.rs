//! The cluster-wide controller: validate → resolve → publish → status. Only the pure resolve
//! step exists so far; the reconcile loop, per-node configuration, leader election, Events and
//! metrics come with the control-plane issue.

pub mod resolve;
