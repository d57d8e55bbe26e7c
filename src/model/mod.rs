//! The pure model the controller and the agent share: address rules, field errors, what a
//! node has (links, addresses), and a `VirtualIP` spec turned into validated per-family
//! instance configurations for one node. No I/O and no kernel types: what a node has is passed
//! in.

pub mod address;
pub mod field;
pub mod host;
pub mod pool;
pub mod spec;
pub mod tracking;
pub mod virtualserver;
