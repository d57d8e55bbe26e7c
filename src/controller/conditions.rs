//! The controller's vocabulary for status and Events: condition types, condition reasons and
//! Event reasons, each spelled once. The values are part of the API users read and alert on
//! (`kubectl wait --for=condition=Ready`): never change one.

/// `status.conditions[].type` of a VirtualIP.
pub(crate) mod types {
    /// One node holds the addresses and no conflict stands in the way.
    pub(crate) const READY: &str = "Ready";
    /// Every node the object runs on runs its instances.
    pub(crate) const PROGRAMMED: &str = "Programmed";
    /// The specification can run.
    pub(crate) const CONFIG_VALID: &str = "ConfigValid";
    /// Another router (ours or foreign) uses the virtual router ID or the addresses.
    pub(crate) const VRID_CONFLICT: &str = "VRIDConflict";
    /// More than one node holds the addresses.
    pub(crate) const SPLIT_BRAIN: &str = "SplitBrain";
}

/// `status.conditions[].reason` of a VirtualIP, and the reasons of its Events.
pub(crate) mod reasons {
    /// The specification cannot run.
    pub(crate) const INVALID: &str = "Invalid";
    /// The specification is valid.
    pub(crate) const VALID: &str = "Valid";
    /// Another VirtualIP uses the same virtual router ID on the segment.
    pub(crate) const VRID_CONFLICT: &str = "VRIDConflict";
    /// Another VirtualIP holds one of the addresses.
    pub(crate) const DUPLICATE_ADDRESS: &str = "DuplicateAddress";
    /// One of the addresses is a Node's own (InternalIP, ExternalIP).
    pub(crate) const NODE_ADDRESS: &str = "NodeAddress";
    /// Every virtual router ID of the segment is taken.
    pub(crate) const VRID_EXHAUSTED: &str = "VRIDExhausted";
    /// No node can run the VirtualIP.
    pub(crate) const NO_ELIGIBLE_NODES: &str = "NoEligibleNodes";
    /// A router outside the cluster advertises the virtual router ID.
    pub(crate) const FOREIGN_ROUTER: &str = "ForeignRouter";
    /// No conflict.
    pub(crate) const NO_CONFLICT: &str = "NoConflict";
    /// Several nodes hold the addresses (Ready reason and Event reason).
    pub(crate) const SPLIT_BRAIN: &str = "SplitBrain";
    /// One node holds the addresses.
    pub(crate) const MASTER_ELECTED: &str = "MasterElected";
    /// Deployed, but no agent has reported yet.
    pub(crate) const PROGRAMMING: &str = "Programming";
    /// No node holds the addresses (Ready reason and Event reason).
    pub(crate) const NO_MASTER: &str = "NoMaster";
    /// Runs on no node.
    pub(crate) const NOT_DEPLOYED: &str = "NotDeployed";
    /// Every node it runs on runs its instances.
    pub(crate) const ALL_NODES_RUNNING: &str = "AllNodesRunning";
    /// Some node is silent, has not reported or cannot run it.
    pub(crate) const WAITING_FOR_NODES: &str = "WaitingForNodes";
    /// SplitBrain condition: more than one master.
    pub(crate) const SEVERAL_MASTERS: &str = "SeveralMasters";
    /// SplitBrain condition: at most one master.
    pub(crate) const SINGLE_MASTER: &str = "SingleMaster";
    /// A virtual server's real server went down (Event).
    pub(crate) const REAL_SERVER_DOWN: &str = "RealServerDown";
    /// A virtual server's real servers came back (Event).
    pub(crate) const REAL_SERVER_UP: &str = "RealServerUp";
    /// Event: another node (or a first one) holds the addresses.
    pub(crate) const MASTER_CHANGED: &str = "MasterChanged";
}

/// `status` of a condition.
pub(crate) mod status {
    pub(crate) const TRUE: &str = "True";
    pub(crate) const FALSE: &str = "False";
}

/// `type` and `action` of an `events.k8s.io/v1` Event the controller emits.
pub(crate) mod events {
    pub(crate) const NORMAL: &str = "Normal";
    pub(crate) const WARNING: &str = "Warning";
    /// Events about mastership on a VirtualIP.
    pub(crate) const ELECT: &str = "Elect";
    /// Events about addresses on a Service.
    pub(crate) const ALLOCATE: &str = "Allocate";
}
