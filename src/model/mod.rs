//! The pure model the controller and the agent share: address rules, field errors, what a
//! node has (links, addresses), and a `VirtualIP` spec turned into validated per-family
//! instance configurations for one node. No I/O and no kernel types: what a node has is passed
//! in.

pub(crate) mod address;
pub(crate) mod field;
pub(crate) mod host;
pub(crate) mod pool;
pub(crate) mod resolved;
pub(crate) mod spec;
pub(crate) mod tracking;
pub mod virtualserver;
