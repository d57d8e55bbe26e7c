//! The controller's vocabulary for status and Events: condition types, condition reasons and
//! Event reasons, each spelled once. The values are part of the API users read and alert on
//! (`kubectl wait --for=condition=Ready`): never change one.

/// `status.conditions[].type` of a VirtualIP.
pub mod types {
    /// One node holds the addresses and no conflict stands in the way.
    pub const READY: &str = "Ready";
    /// Every node the object runs on runs its instances.
    pub const PROGRAMMED: &str = "Programmed";
    /// The specification can run.
    pub const CONFIG_VALID: &str = "ConfigValid";
    /// Another router (ours or foreign) uses the virtual router ID or the addresses.
    pub const VRID_CONFLICT: &str = "VRIDConflict";
    /// More than one node holds the addresses.
    pub const SPLIT_BRAIN: &str = "SplitBrain";
}

/// `status.conditions[].reason` of a VirtualIP, and the reasons of its Events.
pub mod reasons {
    /// The specification cannot run.
    pub const INVALID: &str = "Invalid";
    /// The specification is valid.
    pub const VALID: &str = "Valid";
    /// Another VirtualIP uses the same virtual router ID on the segment.
    pub const VRID_CONFLICT: &str = "VRIDConflict";
    /// Another VirtualIP holds one of the addresses.
    pub const DUPLICATE_ADDRESS: &str = "DuplicateAddress";
    /// One of the addresses is a Node's own (InternalIP, ExternalIP).
    pub const NODE_ADDRESS: &str = "NodeAddress";
    /// Every virtual router ID of the segment is taken.
    pub const VRID_EXHAUSTED: &str = "VRIDExhausted";
    /// No node can run the VirtualIP.
    pub const NO_ELIGIBLE_NODES: &str = "NoEligibleNodes";
    /// A router outside the cluster advertises the virtual router ID.
    pub const FOREIGN_ROUTER: &str = "ForeignRouter";
    /// No conflict.
    pub const NO_CONFLICT: &str = "NoConflict";
    /// Several nodes hold the addresses (Ready reason and Event reason).
    pub const SPLIT_BRAIN: &str = "SplitBrain";
    /// One node holds the addresses.
    pub const MASTER_ELECTED: &str = "MasterElected";
    /// Deployed, but no agent has reported yet.
    pub const PROGRAMMING: &str = "Programming";
    /// No node holds the addresses (Ready reason and Event reason).
    pub const NO_MASTER: &str = "NoMaster";
    /// Runs on no node.
    pub const NOT_DEPLOYED: &str = "NotDeployed";
    /// Every node it runs on runs its instances.
    pub const ALL_NODES_RUNNING: &str = "AllNodesRunning";
    /// Some node is silent, has not reported or cannot run it.
    pub const WAITING_FOR_NODES: &str = "WaitingForNodes";
    /// SplitBrain condition: more than one master.
    pub const SEVERAL_MASTERS: &str = "SeveralMasters";
    /// SplitBrain condition: at most one master.
    pub const SINGLE_MASTER: &str = "SingleMaster";
    /// A virtual server's real server went down (Event).
    pub const REAL_SERVER_DOWN: &str = "RealServerDown";
    /// A virtual server's real servers came back (Event).
    pub const REAL_SERVER_UP: &str = "RealServerUp";
    /// Event: another node (or a first one) holds the addresses.
    pub const MASTER_CHANGED: &str = "MasterChanged";
}

/// `status` of a condition.
pub mod status {
    pub const TRUE: &str = "True";
    pub const FALSE: &str = "False";
}

/// `type` and `action` of an `events.k8s.io/v1` Event the controller emits.
pub mod events {
    pub const NORMAL: &str = "Normal";
    pub const WARNING: &str = "Warning";
    /// Events about mastership on a VirtualIP.
    pub const ELECT: &str = "Elect";
    /// Events about addresses on a Service.
    pub const ALLOCATE: &str = "Allocate";
}
