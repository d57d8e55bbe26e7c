//! Another VRRP router on our virtual router ID that is not one of ours, or another master
//! while we are master (a split brain): noticed from the counters an advertisement moves
//! (address list, authentication, interval, lower-priority master), reported in the
//! status until it has been silent for [`CONFLICT_HOLD`]. Pure: the engine feeds it counters
//! and the time.

use std::net::IpAddr;
use std::time::Duration;

use tracing::warn;

use super::Engine;
use crate::ids::InstanceId;
use crate::vrrp::Counters;

/// A foreign router on our VRID is reported until it has been silent this long.
pub(super) const CONFLICT_HOLD: Duration = Duration::from_secs(10);

/// The counters that move when an advertisement for our VRID is not from one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ForeignSigns {
    address_list: u64,
    authentication: u64,
    interval: u64,
    lower_master: u64,
}

impl ForeignSigns {
    pub(super) fn of(c: &Counters) -> Self {
        ForeignSigns {
            address_list: c.address_list_errors,
            authentication: c.auth_failures + c.auth_type_mismatch + c.invalid_auth_type,
            interval: c.advert_interval_errors,
            lower_master: c.lower_priority_masters,
        }
    }

    /// What the advertisement between `self` and `after` had that ours do not, if anything.
    pub(super) fn what_differs(&self, after: &ForeignSigns) -> Option<&'static str> {
        if after.address_list != self.address_list {
            Some("other addresses")
        } else if after.authentication != self.authentication {
            Some("another password")
        } else if after.interval != self.interval {
            Some("another advertisement interval")
        } else if after.lower_master != self.lower_master {
            Some(SPLIT_BRAIN)
        } else {
            None
        }
    }
}

/// What another master heard while master is called.
pub(super) const SPLIT_BRAIN: &str = "a lower priority while this node is master (split brain)";

/// Another master heard while master: since when, without a gap, from which address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct OtherMaster(Option<(IpAddr, Duration, Duration)>);

impl OtherMaster {
    /// Heard `src` at `now`; returns whether it has gone on for three intervals (a split
    /// brain), not just the overlap of a preemption. A gap over three intervals starts over.
    pub(super) fn heard(&mut self, src: IpAddr, now: Duration, interval: Duration) -> bool {
        let since = match self.0 {
            Some((s, since, last)) if s == src && now.saturating_sub(last) <= interval * 3 => since,
            _ => now,
        };
        self.0 = Some((src, since, now));
        now.saturating_sub(since) >= interval * 3
    }
}

/// The conflict line for the status.
pub(super) fn describe(src: IpAddr, vrid: u8, what: &str) -> String {
    format!("{src} advertises virtual router {vrid} with {what}")
}

/// The conflict an instance reports, and when it was last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ConflictReport(Option<(Duration, String)>);

impl ConflictReport {
    /// Seen again at `now`. Returns whether it is news (none before, or another one).
    pub(super) fn seen(&mut self, now: Duration, text: String) -> bool {
        let new = self.0.as_ref().is_none_or(|(_, t)| *t != text);
        self.0 = Some((now, text));
        new
    }

    /// Forgets a conflict silent for longer than [`CONFLICT_HOLD`]. Returns whether it did.
    pub(super) fn expire(&mut self, now: Duration) -> bool {
        let stale = self
            .0
            .as_ref()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > CONFLICT_HOLD);
        if stale {
            self.0 = None;
        }
        stale
    }

    pub(super) fn text(&self) -> Option<&str> {
        self.0.as_ref().map(|(_, t)| t.as_str())
    }
}

impl Engine {
    /// Compares an instance's counters before and after one advertisement from `src`.
    pub(super) fn note_conflict(
        &mut self,
        id: InstanceId,
        before: ForeignSigns,
        src: IpAddr,
        vrid: u8,
        now: Duration,
    ) {
        let slot = self.slots.get_mut(&id).expect("slot");
        let Some(what) = before.what_differs(&ForeignSigns::of(slot.instance.counters())) else {
            return;
        };
        if what == SPLIT_BRAIN {
            // Every preemption overlaps for about an interval (the old master advertises until
            // it hears the new one): only another master that goes on is a split brain.
            let interval = slot.instance.config().advert_interval;
            if !slot.other_master.heard(src, now, interval) {
                return;
            }
        }
        let text = describe(src, vrid, what);
        if slot.conflict.seen(now, text.clone()) {
            warn!(instance = %slot.resolved.key, conflict = %text, "another VRRP router uses this virtual router ID");
            self.mark_changed();
        }
    }

    pub(super) fn expire_conflicts(&mut self) {
        let now = self.now();
        let mut changed = false;
        for s in self.slots.values_mut() {
            changed |= s.conflict.expire(now);
        }
        if changed {
            self.mark_changed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_moved_counter_names_the_difference() {
        let before = ForeignSigns::of(&Counters::default());
        let mut c = Counters::default();
        assert_eq!(before.what_differs(&ForeignSigns::of(&c)), None);
        c.lower_priority_masters = 1;
        assert_eq!(
            before.what_differs(&ForeignSigns::of(&c)),
            Some("a lower priority while this node is master (split brain)")
        );
        assert_eq!(
            describe(
                "198.51.100.12".parse().unwrap(),
                51,
                "a lower priority while this node is master (split brain)"
            ),
            "198.51.100.12 advertises virtual router 51 with a lower priority while this node is master (split brain)"
        );
        c.advert_interval_errors = 1;
        assert_eq!(
            before.what_differs(&ForeignSigns::of(&c)),
            Some("another advertisement interval")
        );
        c.auth_type_mismatch = 1;
        assert_eq!(
            before.what_differs(&ForeignSigns::of(&c)),
            Some("another password")
        );
        c.address_list_errors = 1;
        assert_eq!(
            before.what_differs(&ForeignSigns::of(&c)),
            Some("other addresses")
        );
    }

    #[test]
    fn another_master_is_a_split_brain_only_when_it_goes_on() {
        let (a, b): (IpAddr, IpAddr) = (
            "198.51.100.11".parse().unwrap(),
            "198.51.100.13".parse().unwrap(),
        );
        let i = Duration::from_millis(100);
        let ms = Duration::from_millis;
        let mut m = OtherMaster::default();
        // A preemption's overlap: one or two advertisements.
        assert!(!m.heard(a, ms(1000), i));
        assert!(!m.heard(a, ms(1100), i));
        // Much later, the same address again: starts over.
        assert!(!m.heard(a, ms(5000), i));
        assert!(!m.heard(a, ms(5100), i));
        assert!(!m.heard(a, ms(5200), i));
        assert!(m.heard(a, ms(5300), i), "three intervals without a gap");
        // Another address starts over.
        assert!(!m.heard(b, ms(5400), i));
    }

    #[test]
    fn every_authentication_counter_counts() {
        let before = ForeignSigns::of(&Counters::default());
        for set in [
            |c: &mut Counters| c.auth_failures = 1,
            |c: &mut Counters| c.auth_type_mismatch = 1,
            |c: &mut Counters| c.invalid_auth_type = 1,
        ] {
            let mut c = Counters::default();
            set(&mut c);
            assert_eq!(
                before.what_differs(&ForeignSigns::of(&c)),
                Some("another password")
            );
        }
    }

    #[test]
    fn a_conflict_is_news_once_and_expires_after_the_hold() {
        let mut r = ConflictReport::default();
        let text = describe("10.0.0.9".parse().unwrap(), 7, "other addresses");
        assert_eq!(
            text,
            "10.0.0.9 advertises virtual router 7 with other addresses"
        );
        assert!(r.seen(Duration::from_secs(1), text.clone()));
        assert!(
            !r.seen(Duration::from_secs(2), text.clone()),
            "the same again"
        );
        assert!(
            !r.expire(Duration::from_secs(12)),
            "10 s after the last sight"
        );
        assert_eq!(r.text(), Some(text.as_str()));
        assert!(r.expire(Duration::from_secs(13)));
        assert_eq!(r.text(), None);
        assert!(!r.expire(Duration::from_secs(14)));
    }

    #[test]
    fn another_conflict_is_news() {
        let mut r = ConflictReport::default();
        assert!(r.seen(Duration::ZERO, "a".into()));
        assert!(r.seen(Duration::ZERO, "b".into()));
    }
}
