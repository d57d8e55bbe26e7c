//! What the believed entries of an object's nodes say, as `summary` finds it and `verdict`
//! judges it (a stage of its own, so neither imports the other's internals).

use crate::api::NodeStatus;

/// What the believed entries of the nodes an object runs on say.
#[derive(Debug, Default)]
pub(super) struct Findings<'a> {
    /// The nodes it runs on.
    pub(super) members: Vec<String>,
    /// The members' believed entries.
    pub(super) reports: Vec<&'a NodeStatus>,
    /// The nodes that hold the addresses (more than one: a split brain).
    pub(super) masters: Vec<&'a str>,
    /// Nodes whose last word is Master but whose successor took over because their
    /// advertisements stopped: not master now, whatever their agent last said.
    pub(super) unheard: Vec<String>,
    /// What is wrong, in words, worst first.
    pub(super) unhealthy: Vec<String>,
    /// Failing checks at a glance (`n1:nginx`).
    pub(super) failing: Vec<String>,
    /// Members with a live agent but no entry yet.
    pub(super) unreported: Vec<String>,
    /// Members whose instances do not run: silent, unreported or Error.
    pub(super) not_running: usize,
    /// A conflict with another object (from resolution) or a foreign router on the wire.
    pub(super) conflict: Option<(&'static str, String)>,
}
