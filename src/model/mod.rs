//! The pure model the controller and the agent share: address rules, durations, and a
//! `VirtualIP` spec turned into validated per-family instance configurations for one node.
//! No I/O: what a node has (links, addresses) is passed in.

pub mod address;
pub mod health;
pub mod spec;
