//! The engine's status: every instance as `/status`, `/metrics` and the cluster report show
//! it, made on request from the slots.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use super::{Engine, RunningInstance};
use crate::agent::status::{AgentStatus, InstanceStatus, TrackerStatus, TransitionStatus};
use crate::vrrp::State;
use crate::vrrp::priority::Tracker;

impl Engine {
    /// The status `/status`, `/metrics` and the cluster report are made of.
    pub(super) fn snapshot(&mut self) -> AgentStatus {
        self.changed = false;
        // A leaving master still holds its addresses: it is reported until it has released
        // them (a deleted VirtualIP's entry goes only once nothing is bound). A new instance
        // under the same key is what is reported, though.
        let instances = self
            .leaving
            .iter()
            .map(|l| &l.slot)
            .chain(self.slots.values())
            .map(|s| (s.resolved.key.to_string(), instance_status(s)))
            .collect();
        AgentStatus {
            node: String::new(),
            instances,
            errors: BTreeMap::new(),
            global: self.global.clone(),
            config_error: None,
            checks: BTreeMap::new(),
            virtual_servers: Vec::new(),
            virtual_server_stats: Vec::new(),
            check_latency: Vec::new(),
        }
    }
}

fn instance_status(s: &RunningInstance) -> InstanceStatus {
    let c = s.instance.config();
    let (master, master_priority) = match s.instance.state() {
        State::Master => (Some(c.primary_address), Some(s.instance.priority())),
        State::Backup => s
            .instance
            .master()
            .map(|m| (Some(m.address), Some(m.priority)))
            .unwrap_or_default(),
        _ => (None, None),
    };
    InstanceStatus {
        name: s.resolved.name.clone(),
        family: c.family().as_key().to_string(),
        interface: s.resolved.interface.clone(),
        source: Some(c.primary_address),
        advertised_to: super::destinations(c).collect(),
        virtual_router_id: c.vrid,
        version: u8::from(c.version),
        state: s.instance.state(),
        priority: s.resolved.config.priority,
        effective_priority: s.instance.priority(),
        addresses: c.addresses.iter().map(|a| a.to_string()).collect(),
        master,
        master_priority,
        last_transition: s.instance.last_transition().map(|t| TransitionStatus {
            from: t.from,
            to: t.to,
            time: s
                .last_transition_time
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
            reason: t.reason.to_string(),
        }),
        conflict: s.conflict.text().map(str::to_string),
        trackers: s
            .trackers
            .iter()
            .map(|(name, t)| tracker_status(name, t))
            .collect(),
        addresses_restored: s.restored,
        counters: s.instance.counters().clone(),
    }
}

/// One tracker as the status shows it: failing when it pulls the priority down or faults,
/// its reason only then, and no contribution while it faults.
fn tracker_status(name: &str, t: &Tracker) -> TrackerStatus {
    let failing = t.failing || t.fault() || t.contribution() < 0;
    TrackerStatus {
        name: name.to_string(),
        weight: t.weight,
        failing,
        contribution: if t.fault() { 0 } else { t.contribution() },
        fault: t.fault(),
        reason: failing.then(|| t.reason.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passing_tracker_shows_its_bonus_and_no_reason() {
        let s = tracker_status("check", &Tracker::new(20, false, "check failed"));
        assert!(!s.failing && !s.fault);
        assert_eq!((s.contribution, s.reason), (20, None));
    }

    #[test]
    fn a_failing_negative_weight_pulls_down_with_its_reason() {
        let s = tracker_status("check", &Tracker::new(-30, true, "check failed"));
        assert!(s.failing && !s.fault);
        assert_eq!(s.contribution, -30);
        assert_eq!(s.reason.as_deref(), Some("check failed"));
    }

    #[test]
    fn a_faulting_tracker_contributes_nothing() {
        let s = tracker_status("interface", &Tracker::new(0, true, "interface eth0 down"));
        assert!(s.failing && s.fault);
        assert_eq!(s.contribution, 0);
        assert_eq!(s.reason.as_deref(), Some("interface eth0 down"));
    }

    #[test]
    fn a_file_value_below_the_floor_is_a_fault() {
        let mut t = Tracker::new(-100, false, "file says 3");
        t.value = Some(3);
        let s = tracker_status("file", &t);
        assert!(s.failing && s.fault);
        assert_eq!(s.contribution, 0);
    }
}
