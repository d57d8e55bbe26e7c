//! Trackers (the instance's interface, health checks, tracked interfaces, an address
//! conflict, the node's own condition) into the state machine: effective priority in place,
//! or FAULT, as [`tracker_inputs`] decides; a master that faults for a check hands over
//! gracefully ([`super::handover`]).

use tracing::info;

use super::Engine;
use super::handover::{defer_release, fault_keeps_addresses};
use crate::ids::{Family, InstanceId, InstanceKey};
use crate::vrrp::Input;
use crate::vrrp::driver::{INTERFACE_TRACKER, tracker_inputs};
use crate::vrrp::priority::Tracker;

/// The fault reason of an instance whose interface is down.
pub(super) fn interface_down(interface: &str) -> String {
    format!("interface {interface} down")
}

impl Engine {
    /// A tracker of every instance of VirtualIP `vip` changed (`None`: it is gone).
    pub(super) fn vip_tracker(&mut self, vip: &str, name: &str, tracker: Option<Tracker>) {
        let known = self.vip_trackers.entry(vip.to_string()).or_default();
        match &tracker {
            Some(t) => {
                known.insert(name.to_string(), t.clone());
            }
            None => {
                known.remove(name);
            }
        }
        if known.is_empty() {
            self.vip_trackers.remove(vip);
        }
        let ids: Vec<InstanceId> = Family::ALL
            .into_iter()
            .filter_map(|f| self.by_key.get(&InstanceKey::new(vip, f)).copied())
            .collect();
        for id in ids {
            let slot = self.slots.get_mut(&id).expect("slot");
            let changed = match &tracker {
                Some(t) => slot.trackers.put(name, t.clone()),
                None => slot.trackers.remove(name),
            };
            if changed {
                self.apply_trackers(id);
                self.mark_changed();
            }
        }
    }

    /// Feeds the trackers' outcome to the state machine: priority in place, or FAULT.
    pub(super) fn apply_trackers(&mut self, id: InstanceId) {
        let now = self.now();
        let slot = self.slots.get_mut(&id).expect("slot");
        let inputs = tracker_inputs(
            &slot.trackers,
            slot.resolved.config.priority,
            slot.instance.priority(),
        );
        for input in inputs {
            let slot = self.slots.get_mut(&id).expect("slot");
            match input {
                Input::SetPriority(p) => {
                    // Advertised from the next advertisement on, no state change.
                    slot.instance.handle(now, Input::SetPriority(p));
                    self.mark_changed();
                }
                fault @ Input::TrackedFault(Some(_)) => {
                    // Make before break: a master leaving for a check (its link and addresses
                    // being fine) hands over with priority 0 and keeps the addresses until the
                    // new master is heard.
                    let graceful = fault_keeps_addresses(slot.instance.state(), &slot.trackers);
                    let mut actions = slot.instance.handle(now, fault);
                    if graceful && let Some(addresses) = defer_release(&mut actions) {
                        self.hold_addresses(id, addresses, now);
                    }
                    self.after_handle(id, actions);
                }
                other => self.handle(id, now, other),
            }
        }
    }

    pub(super) fn link_changed(&mut self, ifindex: u32, up: bool) {
        let ids: Vec<InstanceId> = self
            .slots
            .values()
            .filter(|s| s.resolved.ifindex == ifindex)
            .map(|s| s.id)
            .collect();
        for id in ids {
            let slot = self.slots.get_mut(&id).expect("slot");
            let reason = interface_down(&slot.resolved.interface);
            if slot.trackers.set(INTERFACE_TRACKER, 0, !up, &reason) {
                info!(instance = %slot.resolved.key, interface = %slot.resolved.interface, up, "interface state changed");
                self.apply_trackers(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interface_fault_names_the_interface() {
        assert_eq!(interface_down("eth0"), "interface eth0 down");
    }
}
