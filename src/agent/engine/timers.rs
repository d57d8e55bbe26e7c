//! The engine's timer wheel: every instance's protocol timer by deadline, and which of the
//! due ones go first. The instance's own [`ArmedTimer`](crate::vrrp::driver::ArmedTimer) says
//! what is armed; the wheel only orders the deadlines across instances.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::Engine;
use crate::ids::InstanceId;
use crate::vrrp::Input;

/// When many timers are due together, at most this many are handled before the due set is
/// read again.
const BATCH: usize = 16;
/// How long the engine sleeps when nothing is armed (any command wakes it).
const IDLE: Duration = Duration::from_secs(3600);

/// Deadlines of every armed protocol timer: (when, instance id).
#[derive(Debug, Default)]
pub(super) struct TimerWheel(BTreeSet<(Duration, InstanceId)>);

impl TimerWheel {
    /// Moves instance `id`'s entry from `from` to `to` (either may be none).
    pub(super) fn rearm(&mut self, id: InstanceId, from: Option<Duration>, to: Option<Duration>) {
        if from == to {
            return;
        }
        if let Some(at) = from {
            self.0.remove(&(at, id));
        }
        if let Some(at) = to {
            self.0.insert((at, id));
        }
    }

    pub(super) fn first(&self) -> Option<Duration> {
        self.0.first().map(|(at, _)| *at)
    }

    /// Every entry due at `now`.
    pub(super) fn due(&self, now: Duration) -> Vec<(Duration, InstanceId)> {
        self.0.range(..=(now, InstanceId::LAST)).copied().collect()
    }
}

/// Which due timers go first: the shortest advertisement intervals, a few at a time, so a
/// burst of 100 ms advertisements never makes a 20 ms one late (instances that became master
/// at one moment keep that phase; sending is a system call, and on a busy host it is not
/// free). `due` is (interval, deadline, id).
pub(super) fn first_batch(
    mut due: Vec<(Duration, Duration, InstanceId)>,
) -> Vec<(Duration, InstanceId)> {
    due.sort_unstable();
    due.into_iter()
        .take(BATCH)
        .map(|(_, at, id)| (at, id))
        .collect()
}

/// When the engine must wake next, from now: the earliest of the protocol timers and the
/// handover holds.
pub(super) fn next_wake(
    now: Duration,
    timer: Option<Duration>,
    hold: Option<Duration>,
) -> Duration {
    timer
        .into_iter()
        .chain(hold)
        .min()
        .unwrap_or(now + IDLE)
        .min(now + IDLE)
}

impl Engine {
    pub(super) fn next_deadline(&self) -> Instant {
        self.start + next_wake(self.now(), self.timers.first(), self.next_hold_deadline())
    }

    /// Fires every due protocol timer, then releases the handover holds that ran out.
    pub(super) fn on_timers(&mut self) {
        loop {
            let now = self.now();
            let due: Vec<(Duration, Duration, InstanceId)> = self
                .timers
                .due(now)
                .into_iter()
                .map(|(at, id)| {
                    let interval = self
                        .slots
                        .get(&id)
                        .map(|s| s.instance.master_adver_interval())
                        .unwrap_or_default();
                    (interval, at, id)
                })
                .collect();
            if due.is_empty() {
                break;
            }
            for (at, id) in first_batch(due) {
                self.timers.rearm(id, Some(at), None);
                let Some(slot) = self.slots.get_mut(&id) else {
                    continue;
                };
                match slot.timer.get() {
                    Some((kind, armed)) if armed == at && slot.timer.expire(kind, now) => {
                        let late = (now - at).as_micros() as u64;
                        self.global.max_timer_lateness_us =
                            self.global.max_timer_lateness_us.max(late);
                        self.handle(id, now, Input::TimerExpired(kind));
                    }
                    // Not this deadline after all: keep what is armed in the wheel.
                    armed => self.timers.rearm(id, None, armed.map(|(_, at)| at)),
                }
            }
        }
        let now = self.now();
        self.expire_holds(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> InstanceId {
        InstanceId::nth(n)
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_wheel_moves_entries_and_lists_the_due_ones() {
        let mut w = TimerWheel::default();
        w.rearm(id(1), None, Some(30 * MS));
        w.rearm(id(2), None, Some(10 * MS));
        w.rearm(id(3), None, Some(20 * MS));
        assert_eq!(w.first(), Some(10 * MS));
        assert_eq!(w.due(20 * MS), vec![(10 * MS, id(2)), (20 * MS, id(3))]);
        w.rearm(id(2), Some(10 * MS), Some(40 * MS));
        w.rearm(id(3), Some(20 * MS), None);
        assert_eq!(w.due(35 * MS), vec![(30 * MS, id(1))]);
        assert_eq!(w.first(), Some(30 * MS));
    }

    #[test]
    fn shortest_intervals_go_first_a_batch_at_a_time() {
        let mut due: Vec<(Duration, Duration, InstanceId)> =
            (1..=20).map(|n| (100 * MS, 5 * MS, id(n))).collect();
        due.push((20 * MS, 6 * MS, id(99)));
        let batch = first_batch(due);
        assert_eq!(batch.len(), BATCH);
        assert_eq!(
            batch[0],
            (6 * MS, id(99)),
            "the 20 ms instance first, though due later"
        );
    }

    #[test]
    fn the_engine_wakes_for_the_earliest_deadline_or_idles() {
        assert_eq!(next_wake(MS, Some(9 * MS), Some(5 * MS)), 5 * MS);
        assert_eq!(next_wake(MS, Some(9 * MS), None), 9 * MS);
        assert_eq!(next_wake(MS, None, None), MS + IDLE);
    }
}
