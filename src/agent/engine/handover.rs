//! Make before break: a master that hands over (stopped, or in FAULT for a check while its
//! link and addresses are fine) keeps its addresses until its successor is heard, then
//! [`HANDOVER_GRACE`] more, at most three advertisement intervals. The decisions are the pure
//! functions and [`HandoverHold`] here; the engine methods below only carry them out.

use std::net::IpAddr;
use std::time::Duration;

use tracing::info;

use super::{Engine, RunningInstance};
use crate::agent::dataplane::CONFLICT_TRACKER;
use crate::agent::messages::{DataplaneCmd, SocketKey};
use crate::ids::InstanceId;
use crate::vrrp::driver::INTERFACE_TRACKER;
use crate::vrrp::priority::Trackers;
use crate::vrrp::{Action, State, VirtualAddress};

/// How long a master that handed over keeps its addresses after its successor's first
/// advertisement: time for the successor's bind and gratuitous ARP / NA to reach clients.
pub(super) const HANDOVER_GRACE: Duration = Duration::from_millis(50);

/// Addresses a master keeps after handing over, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HandoverHold {
    pub addresses: Vec<VirtualAddress>,
    pub until: Duration,
}

impl HandoverHold {
    /// Held from `now` for at most three advertisement intervals.
    pub(super) fn new(
        addresses: Vec<VirtualAddress>,
        now: Duration,
        advert_interval: Duration,
    ) -> Self {
        HandoverHold {
            addresses,
            until: now + 3 * advert_interval,
        }
    }

    /// Another router advertised with `priority` at `now`: a successor (priority above 0)
    /// cuts the hold down to [`HANDOVER_GRACE`]. Returns whether the deadline moved.
    pub(super) fn successor_heard(&mut self, now: Duration, priority: u8) -> bool {
        if priority > 0 && self.until > now + HANDOVER_GRACE {
            self.until = now + HANDOVER_GRACE;
            true
        } else {
            false
        }
    }

    pub(super) fn expired(&self, now: Duration) -> bool {
        self.until <= now
    }
}

/// Whether a master going to FAULT hands over gracefully (keeping its addresses): only when
/// it left for a check, not for its link or an address conflict.
pub(super) fn fault_keeps_addresses(state: State, trackers: &Trackers) -> bool {
    state == State::Master
        && [INTERFACE_TRACKER, CONFLICT_TRACKER]
            .iter()
            .all(|t| trackers.get(t).is_none_or(|t| !t.fault()))
}

/// Takes the address release out of `actions`: the addresses it would have released.
pub(super) fn defer_release(actions: &mut Vec<Action>) -> Option<Vec<VirtualAddress>> {
    let mut deferred = None;
    actions.retain(|a| match a {
        Action::RemoveAddresses(addrs) => {
            deferred = Some(addrs.clone());
            false
        }
        _ => true,
    });
    deferred
}

/// Whether an advertisement for `vrid` from `src` on `socket` comes from another router of
/// the virtual router a slot with `keys`, `own_vrid` and `own_address` runs.
pub(super) fn same_virtual_router(
    keys: &[SocketKey],
    own_vrid: u8,
    own_address: IpAddr,
    socket: SocketKey,
    vrid: u8,
    src: IpAddr,
) -> bool {
    keys.contains(&socket) && own_vrid == vrid && src != own_address
}

/// A stopped master that waits for its successor before releasing its addresses.
pub(super) struct Leaving {
    pub slot: RunningInstance,
    pub hold: HandoverHold,
}

impl Engine {
    /// An advertisement with `priority` was heard for `vrid` from `src`: every leaving master of
    /// that virtual router releases soon.
    pub(super) fn successor_heard_by_leaving(
        &mut self,
        socket: SocketKey,
        src: IpAddr,
        vrid: u8,
        priority: u8,
        now: Duration,
    ) {
        for l in &mut self.leaving {
            let c = &l.slot.resolved.config;
            if same_virtual_router(
                &l.slot.socket_keys(),
                c.vrid,
                c.primary_address,
                socket,
                vrid,
                src,
            ) && l.hold.successor_heard(now, priority)
            {
                info!(instance = %l.slot.resolved.key, new_master = %src, "new master heard; releasing addresses");
            }
        }
    }

    /// The same for a running instance handing over after a check failed.
    pub(super) fn successor_heard_by_slot(
        &mut self,
        id: InstanceId,
        src: IpAddr,
        priority: u8,
        now: Duration,
    ) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        if let Some(hold) = slot.handover.as_mut() {
            let before = hold.until;
            if hold.successor_heard(now, priority) {
                info!(instance = %slot.resolved.key, new_master = %src, "new master heard; releasing addresses");
                self.handover_deadlines.remove(&(before, id));
                self.handover_deadlines.insert((hold.until, id));
            }
        }
    }

    /// Keeps `addresses` of a running instance until its successor is heard.
    pub(super) fn hold_addresses(
        &mut self,
        id: InstanceId,
        addresses: Vec<VirtualAddress>,
        now: Duration,
    ) {
        let slot = self.slots.get_mut(&id).expect("slot");
        let hold = HandoverHold::new(addresses, now, slot.instance.config().advert_interval);
        self.handover_deadlines.insert((hold.until, id));
        slot.handover = Some(hold);
    }

    /// A running instance's hold ends without a release: it became master again.
    pub(super) fn cancel_hold(&mut self, slot: &mut RunningInstance) {
        if let Some(hold) = slot.handover.take() {
            self.handover_deadlines.remove(&(hold.until, slot.id));
        }
    }

    /// Lets a running instance's held addresses go (the new master was heard, or the deadline
    /// passed).
    pub(super) fn release_held(&mut self, id: InstanceId) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        if let Some(hold) = slot.handover.take() {
            self.handover_deadlines.remove(&(hold.until, id));
            super::links::send(
                &self.dataplane,
                &slot.resolved.away,
                DataplaneCmd::Unbind {
                    id,
                    ifindex: slot.addr_ifindex,
                    addresses: hold.addresses,
                },
            );
            self.mark_changed();
        }
    }

    /// Releases whatever hold has run out at `now`, leaving masters and running ones.
    pub(super) fn expire_holds(&mut self, now: Duration) {
        let (done, waiting): (Vec<Leaving>, Vec<Leaving>) = std::mem::take(&mut self.leaving)
            .into_iter()
            .partition(|l| l.hold.expired(now));
        self.leaving = waiting;
        for mut l in done {
            self.execute(&mut l.slot, vec![Action::RemoveAddresses(l.hold.addresses)]);
            self.retire(l.slot);
        }
        let expired: Vec<InstanceId> = self
            .handover_deadlines
            .range(..=(now, InstanceId::LAST))
            .map(|(_, id)| *id)
            .collect();
        for id in expired {
            info!(instance = %self.slots[&id].resolved.key, "no new master heard; releasing addresses");
            self.release_held(id);
        }
    }

    /// The earliest end of a hold.
    pub(super) fn next_hold_deadline(&self) -> Option<Duration> {
        let leaving = self.leaving.iter().map(|l| l.hold.until).min();
        let running = self.handover_deadlines.first().map(|(at, _)| *at);
        leaving.into_iter().chain(running).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::Family;

    const MS: Duration = Duration::from_millis(1);

    fn va(s: &str) -> VirtualAddress {
        s.parse().unwrap()
    }

    #[test]
    fn a_hold_lasts_three_intervals_at_most() {
        let h = HandoverHold::new(vec![va("10.0.0.1/32")], 100 * MS, 1000 * MS);
        assert_eq!(h.until, 3100 * MS);
        assert!(!h.expired(3099 * MS));
        assert!(h.expired(3100 * MS));
    }

    #[test]
    fn a_successor_cuts_the_hold_to_the_grace_once() {
        let mut h = HandoverHold::new(Vec::new(), Duration::ZERO, 1000 * MS);
        assert!(
            !h.successor_heard(10 * MS, 0),
            "priority 0 is someone leaving too"
        );
        assert!(h.successor_heard(10 * MS, 100));
        assert_eq!(h.until, 10 * MS + HANDOVER_GRACE);
        assert!(
            !h.successor_heard(20 * MS, 100),
            "later adverts do not extend it"
        );
        assert_eq!(h.until, 10 * MS + HANDOVER_GRACE);
    }

    #[test]
    fn a_hold_about_to_end_is_not_extended_by_a_successor() {
        let mut h = HandoverHold::new(Vec::new(), Duration::ZERO, 10 * MS);
        assert!(!h.successor_heard(Duration::ZERO, 100));
        assert_eq!(h.until, 30 * MS);
    }

    #[test]
    fn only_a_master_failing_a_check_keeps_its_addresses() {
        let mut t = Trackers::default();
        t.set("check", 0, true, "check failed");
        assert!(fault_keeps_addresses(State::Master, &t));
        assert!(!fault_keeps_addresses(State::Backup, &t));
        let mut link = t.clone();
        link.set(INTERFACE_TRACKER, 0, true, "interface eth0 down");
        assert!(!fault_keeps_addresses(State::Master, &link));
        let mut conflict = t.clone();
        conflict.set(CONFLICT_TRACKER, 0, true, "address taken");
        assert!(!fault_keeps_addresses(State::Master, &conflict));
        // A link tracker that is up does not count.
        t.set(INTERFACE_TRACKER, 0, false, "interface eth0 down");
        assert!(fault_keeps_addresses(State::Master, &t));
    }

    #[test]
    fn deferring_takes_only_the_release_out() {
        let addrs = vec![va("10.0.0.1/32")];
        let mut actions = vec![
            Action::CancelTimer,
            Action::RemoveAddresses(addrs.clone()),
            Action::Announce(Vec::new()),
        ];
        assert_eq!(defer_release(&mut actions), Some(addrs));
        assert_eq!(
            actions,
            vec![Action::CancelTimer, Action::Announce(Vec::new())]
        );
        assert_eq!(defer_release(&mut actions), None);
    }

    #[test]
    fn a_successor_is_another_router_of_the_same_virtual_router() {
        let keys = [(2, Family::V4), (7, Family::V4)];
        let own: IpAddr = "10.0.0.11".parse().unwrap();
        let other: IpAddr = "10.0.0.12".parse().unwrap();
        assert!(same_virtual_router(
            &keys,
            5,
            own,
            (7, Family::V4),
            5,
            other
        ));
        assert!(!same_virtual_router(&keys, 5, own, (2, Family::V4), 5, own));
        assert!(!same_virtual_router(
            &keys,
            5,
            own,
            (2, Family::V4),
            6,
            other
        ));
        assert!(!same_virtual_router(
            &keys,
            5,
            own,
            (3, Family::V4),
            5,
            other
        ));
    }
}
