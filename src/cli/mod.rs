//! One file per subcommand: what it does once its options are parsed (`main.rs` parses and
//! dispatches). `daemon` holds what the long-running `agent` and `controller` share.

pub(crate) mod agent;
pub(crate) mod check;
pub(crate) mod controller;
pub(crate) mod crd;
pub(crate) mod daemon;
pub(crate) mod import;
pub(crate) mod manifest;
pub(crate) mod simulate;
pub(crate) mod status;
