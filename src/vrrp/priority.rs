//! Effective priority from trackers, as keepalived's `vrrp_set_effective_priority` computes it:
//! the configured priority plus the weights of the trackers (health checks, tracked interfaces,
//! files, an address conflict), clamped to 1..=254; a failing tracker of weight 0 puts the
//! instance in FAULT; the address owner (255) is never moved, and nothing is raised to 255.
//!
//! Pure: the agent keeps one [`Trackers`] per instance, feeds it results, and hands the
//! [`Effective`] outcome to the state machine (`Input::SetPriority` / `Input::TrackedFault`).

use std::collections::BTreeMap;

/// One tracker's weight and whether it is failing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tracker {
    /// -253..=253. 0: failing means FAULT. Positive: added while succeeding. Negative:
    /// subtracted (added, being negative) while failing.
    pub weight: i16,
    pub failing: bool,
    /// Why it fails, for the FAULT reason (e.g. "interface eth0 down").
    pub reason: String,
    /// keepalived `track_file`: a number read from a file, multiplied by the weight (then
    /// `failing` is not used). With weight 0 a non-zero value is a fault; a product below
    /// -253 is a fault too.
    pub value: Option<i64>,
}

impl Tracker {
    /// A pass/fail tracker.
    pub(crate) fn new(weight: i16, failing: bool, reason: &str) -> Tracker {
        Tracker {
            weight: weight.clamp(-253, 253),
            failing,
            reason: reason.to_string(),
            value: None,
        }
    }

    /// Whether it puts the instance in FAULT now.
    pub(crate) fn fault(&self) -> bool {
        match self.value {
            Some(v) => {
                (self.weight == 0 && v != 0) || v.saturating_mul(i64::from(self.weight)) < -253
            }
            None => self.weight == 0 && self.failing,
        }
    }

    /// What it adds to the priority now (not counting a fault).
    pub(crate) fn contribution(&self) -> i32 {
        match self.value {
            Some(v) => v.saturating_mul(i64::from(self.weight)).clamp(-254, 254) as i32,
            None => match (self.weight > 0, self.failing) {
                (true, false) | (false, true) => i32::from(self.weight),
                _ => 0,
            },
        }
    }
}

/// What the trackers make of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effective {
    /// Run with this priority (1..=255; 255 only for the owner).
    Priority(u8),
    /// A weight-0 tracker fails: the instance must be in FAULT, for this reason (the first
    /// failing weight-0 tracker by name).
    Fault(String),
}

/// The trackers of one instance, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Trackers {
    trackers: BTreeMap<String, Tracker>,
}

impl Trackers {
    /// Sets (or adds) a tracker's state. Returns whether anything changed.
    pub(crate) fn set(&mut self, name: &str, weight: i16, failing: bool, reason: &str) -> bool {
        self.put(name, Tracker::new(weight, failing, reason))
    }

    /// Sets (or adds) a tracker. Returns whether anything changed.
    pub(crate) fn put(&mut self, name: &str, t: Tracker) -> bool {
        if self.trackers.get(name) == Some(&t) {
            return false;
        }
        self.trackers.insert(name.to_string(), t);
        true
    }

    /// Forgets a tracker. Returns whether it existed.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        self.trackers.remove(name).is_some()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Tracker> {
        self.trackers.get(name)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Tracker)> {
        self.trackers.iter()
    }

    /// The outcome for an instance configured with `configured` (1..=255).
    pub(crate) fn effective(&self, configured: u8) -> Effective {
        if let Some(t) = self.trackers.values().find(|t| t.fault()) {
            return Effective::Fault(t.reason.clone());
        }
        if configured == 255 {
            return Effective::Priority(255);
        }
        let sum: i32 = self.trackers.values().map(Tracker::contribution).sum();
        Effective::Priority((i32::from(configured) + sum).clamp(1, 254) as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(entries: &[(&str, i16, bool)]) -> Trackers {
        let mut t = Trackers::default();
        for (name, weight, failing) in entries {
            t.set(name, *weight, *failing, &format!("{name} failing"));
        }
        t
    }

    #[test]
    fn no_trackers_is_the_configured_priority() {
        assert_eq!(Trackers::default().effective(100), Effective::Priority(100));
    }

    #[test]
    fn positive_weights_add_while_succeeding_only() {
        let t = with(&[("a", 10, false), ("b", 20, false), ("c", 30, true)]);
        assert_eq!(t.effective(100), Effective::Priority(130));
    }

    #[test]
    fn negative_weights_subtract_while_failing_only() {
        let t = with(&[("a", -10, true), ("b", -20, false), ("c", -5, true)]);
        assert_eq!(t.effective(100), Effective::Priority(85));
    }

    #[test]
    fn several_trackers_add_up() {
        let t = with(&[("up", 50, false), ("down", -30, true)]);
        assert_eq!(t.effective(100), Effective::Priority(120));
    }

    #[test]
    fn clamped_to_1_and_254() {
        assert_eq!(
            with(&[("a", 200, false)]).effective(100),
            Effective::Priority(254)
        );
        assert_eq!(
            with(&[("a", -200, true)]).effective(100),
            Effective::Priority(1)
        );
    }

    #[test]
    fn nothing_is_raised_to_255() {
        assert_eq!(
            with(&[("a", 1, false)]).effective(254),
            Effective::Priority(254)
        );
    }

    #[test]
    fn the_owner_is_never_moved() {
        assert_eq!(
            with(&[("a", -100, true)]).effective(255),
            Effective::Priority(255)
        );
        assert_eq!(
            with(&[("a", 10, false)]).effective(255),
            Effective::Priority(255)
        );
    }

    #[test]
    fn a_failing_weight_zero_tracker_is_fault_even_for_the_owner() {
        let t = with(&[("b-check", 0, true), ("a-plus", 50, false)]);
        assert_eq!(t.effective(100), Effective::Fault("b-check failing".into()));
        assert_eq!(t.effective(255), Effective::Fault("b-check failing".into()));
        assert_eq!(
            with(&[("b", 0, false)]).effective(100),
            Effective::Priority(100)
        );
    }

    #[test]
    fn weights_are_bounded_and_set_reports_changes() {
        let mut t = Trackers::default();
        assert!(t.set("a", 1000, false, ""));
        assert_eq!(t.get("a").unwrap().weight, 253);
        assert!(!t.set("a", 1000, false, ""));
        assert!(t.set("a", 1000, true, "down"));
        assert!(t.remove("a"));
        assert!(!t.remove("a"));
    }

    #[test]
    fn file_values_are_multiplied_by_the_weight() {
        let mut t = Trackers::default();
        let file = |weight, value| Tracker {
            value: Some(value),
            ..Tracker::new(weight, false, "file value")
        };
        t.put("f", file(-10, 3));
        assert_eq!(t.effective(100), Effective::Priority(70));
        t.put("f", file(5, 2));
        assert_eq!(t.effective(100), Effective::Priority(110));
        // Weight 0: any non-zero value is a fault, zero is fine.
        t.put("f", file(0, 0));
        assert_eq!(t.effective(100), Effective::Priority(100));
        t.put("f", file(0, 7));
        assert_eq!(t.effective(100), Effective::Fault("file value".into()));
        // Below -253 is a fault whatever the priority.
        t.put("f", file(1, -254));
        assert_eq!(t.effective(100), Effective::Fault("file value".into()));
        t.put("f", file(1, -253));
        assert_eq!(t.effective(100), Effective::Priority(1));
    }
}
