//! How an I/O shell drives an [`Instance`], shared by the agent's engine and the simulator so
//! that production and simulation feed the core the same way:
//!
//! * Timer: the shell keeps the one protocol timer as the core's [`Action::ArmTimer`] /
//!   [`Action::CancelTimer`] say ([`ArmedTimer`]), and feeds [`Input::TimerExpired`] when it is
//!   due.
//! * Interface and checks: both are trackers ([`Trackers`]), keepalived's model. The
//!   instance's own interface is the weight-0 tracker [`INTERFACE_TRACKER`] (down: FAULT);
//!   [`tracker_inputs`] turns the trackers' outcome into `SetPriority` / `TrackedFault`.
//!   (`Input::InterfaceDown` / `InterfaceUp` stay in the core for a shell without trackers.)

use std::time::Duration;

use super::instance::{Action, Input, TimerKind};
use super::priority::{Effective, Trackers};

/// The tracker name of the interface an instance runs on.
pub(crate) const INTERFACE_TRACKER: &str = crate::ids::TrackerName::LINK;

/// The protocol timer as the shell knows it from the actions it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ArmedTimer(Option<(TimerKind, Duration)>);

impl ArmedTimer {
    /// The armed timer and when it fires.
    pub(crate) fn get(&self) -> Option<(TimerKind, Duration)> {
        self.0
    }

    /// When the armed timer fires.
    pub(crate) fn deadline(&self) -> Option<Duration> {
        self.0.map(|(_, at)| at)
    }

    /// Follows the timer actions among `actions` (a later one replaces an earlier one).
    pub(crate) fn follow(&mut self, actions: &[Action]) {
        for action in actions {
            match action {
                Action::ArmTimer { kind, at } => self.0 = Some((*kind, *at)),
                Action::CancelTimer => self.0 = None,
                _ => {}
            }
        }
    }

    /// Whether a wake-up for `kind` at `now` is the armed timer firing (not a stale one that
    /// was re-armed or cancelled since). If so the timer is spent: feed
    /// [`Input::TimerExpired`] next.
    pub(crate) fn expire(&mut self, kind: TimerKind, now: Duration) -> bool {
        match self.0 {
            Some((armed, at)) if armed == kind && at <= now => {
                self.0 = None;
                true
            }
            _ => false,
        }
    }
}

/// The inputs that bring an instance running at priority `current`, configured with
/// `configured`, in line with its trackers: FAULT for a failing weight-0 tracker; else the
/// effective priority (when it moved) and any tracked fault cleared.
pub(crate) fn tracker_inputs(trackers: &Trackers, configured: u8, current: u8) -> Vec<Input> {
    match trackers.effective(configured) {
        Effective::Fault(reason) => vec![Input::TrackedFault(Some(reason))],
        Effective::Priority(p) if p != current => {
            vec![Input::SetPriority(p), Input::TrackedFault(None)]
        }
        Effective::Priority(_) => vec![Input::TrackedFault(None)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_timer_follows_the_last_arm_or_cancel() {
        let mut t = ArmedTimer::default();
        t.follow(&[
            Action::ArmTimer {
                kind: TimerKind::MasterDown,
                at: 10 * MS,
            },
            Action::ArmTimer {
                kind: TimerKind::Advertisement,
                at: 20 * MS,
            },
        ]);
        assert_eq!(t.get(), Some((TimerKind::Advertisement, 20 * MS)));
        t.follow(&[Action::Announce(Vec::new())]);
        assert_eq!(t.deadline(), Some(20 * MS));
        t.follow(&[Action::CancelTimer]);
        assert_eq!(t.get(), None);
    }

    #[test]
    fn only_the_armed_kind_expires_and_only_when_due() {
        let mut t = ArmedTimer::default();
        t.follow(&[Action::ArmTimer {
            kind: TimerKind::MasterDown,
            at: 10 * MS,
        }]);
        assert!(!t.expire(TimerKind::MasterDown, 9 * MS), "not due yet");
        assert!(!t.expire(TimerKind::Advertisement, 10 * MS), "stale kind");
        assert!(t.expire(TimerKind::MasterDown, 11 * MS));
        assert_eq!(t.get(), None, "spent");
        assert!(!t.expire(TimerKind::MasterDown, 12 * MS), "fires once");
    }

    #[test]
    fn interface_down_is_a_fault_and_up_clears_it() {
        let mut t = Trackers::default();
        t.set(INTERFACE_TRACKER, 0, true, "interface down");
        assert_eq!(
            tracker_inputs(&t, 100, 100),
            vec![Input::TrackedFault(Some("interface down".into()))]
        );
        t.set(INTERFACE_TRACKER, 0, false, "interface down");
        assert_eq!(
            tracker_inputs(&t, 100, 100),
            vec![Input::TrackedFault(None)]
        );
    }

    #[test]
    fn a_moved_priority_is_set_before_the_fault_clears() {
        let mut t = Trackers::default();
        t.set("check", -30, true, "check failed");
        assert_eq!(
            tracker_inputs(&t, 100, 100),
            vec![Input::SetPriority(70), Input::TrackedFault(None)]
        );
        assert_eq!(tracker_inputs(&t, 100, 70), vec![Input::TrackedFault(None)]);
    }
}
