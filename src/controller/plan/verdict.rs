//! Verdict: from the [`Findings`] of one VirtualIP, its phase with the Ready reason and
//! message, the five conditions (Ready, Programmed, ConfigValid, VRIDConflict, SplitBrain)
//! and the Events a change of master or a new conflict deserves.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::super::conditions::{reasons, status, types};
use super::super::resolve::Resolution;
use super::PlannedEvent;
use super::findings::Findings;
use crate::api::Phase;

/// The phase, and the reason and message of the Ready condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Verdict {
    pub(super) phase: Phase,
    pub(super) reason: &'static str,
    pub(super) message: String,
}

impl Verdict {
    fn new(phase: Phase, reason: &'static str, message: String) -> Verdict {
        Verdict {
            phase,
            reason,
            message,
        }
    }
}

/// The phase, first match wins: invalid, conflict, not deployed, split brain, master elected
/// (Ready or Degraded), waiting for the agents, no master.
pub(super) fn verdict(
    f: &Findings,
    master: Option<&str>,
    invalid: Option<&str>,
    resolution: Option<&Resolution>,
) -> Verdict {
    // What is wrong, with the members that have not reported.
    let why = || {
        let mut why = f.unhealthy.clone();
        if !f.unreported.is_empty() {
            why.push(format!("no report from {}", f.unreported.join(", ")));
        }
        why
    };
    if let Some(e) = invalid {
        Verdict::new(Phase::Invalid, reasons::INVALID, e.to_string())
    } else if let Some((reason, message)) = &f.conflict {
        Verdict::new(Phase::Conflict, reason, message.clone())
    } else if let Some(Resolution::Rejected { reason, message }) = resolution {
        Verdict::new(Phase::Pending, reason, message.clone())
    } else if f.masters.len() > 1 {
        Verdict::new(
            Phase::SplitBrain,
            reasons::SPLIT_BRAIN,
            format!("{} all hold the addresses", f.masters.join(", ")),
        )
    } else if let Some(m) = master {
        let why = why();
        if why.is_empty() {
            Verdict::new(
                Phase::Ready,
                reasons::MASTER_ELECTED,
                format!("{m} holds the addresses"),
            )
        } else {
            Verdict::new(
                Phase::Degraded,
                reasons::MASTER_ELECTED,
                format!("{m} holds the addresses; {}", why.join("; ")),
            )
        }
    } else if f.reports.is_empty() {
        Verdict::new(
            Phase::Pending,
            reasons::PROGRAMMING,
            format!("waiting for the agents on {}", f.members.join(", ")),
        )
    } else {
        let mut why = why();
        if why.is_empty() {
            why.push("every node is backup".into());
        }
        Verdict::new(
            Phase::NoMaster,
            reasons::NO_MASTER,
            format!("no node holds the addresses: {}", why.join("; ")),
        )
    }
}

/// One condition; its transition time moves only when its status does.
fn condition(
    old: &[Condition],
    type_: &str,
    is: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if is { status::TRUE } else { status::FALSE }.to_string();
    let since = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message,
        last_transition_time: since,
        observed_generation: generation,
    }
}

/// The five conditions. `invalid` is the validation error of the current spec, with whether
/// the last good configuration keeps running.
pub(super) fn conditions(
    old: &[Condition],
    f: &Findings,
    v: &Verdict,
    has_master: bool,
    invalid: Option<(&str, bool)>,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let c = |type_: &str, is: bool, reason: &str, message: String| {
        condition(old, type_, is, reason, message, generation, now)
    };
    let (programmed, programmed_reason, programmed_message) = if f.members.is_empty() {
        (false, reasons::NOT_DEPLOYED, v.message.clone())
    } else {
        let waiting = if f.unreported.is_empty() {
            String::new()
        } else {
            format!("; waiting for {}", f.unreported.join(", "))
        };
        let reason = if f.not_running == 0 {
            reasons::ALL_NODES_RUNNING
        } else {
            reasons::WAITING_FOR_NODES
        };
        let message = format!(
            "{} of {} nodes run it{waiting}",
            f.members.len() - f.not_running,
            f.members.len(),
        );
        (f.not_running == 0, reason, message)
    };
    let split = f.masters.len() > 1;
    vec![
        c(
            types::READY,
            has_master && f.conflict.is_none(),
            v.reason,
            v.message.clone(),
        ),
        c(
            types::PROGRAMMED,
            programmed,
            programmed_reason,
            programmed_message,
        ),
        match invalid {
            Some((e, kept)) => c(
                types::CONFIG_VALID,
                false,
                reasons::INVALID,
                if kept {
                    format!("{e}; the last good configuration keeps running")
                } else {
                    e.to_string()
                },
            ),
            None => c(
                types::CONFIG_VALID,
                true,
                reasons::VALID,
                "the specification is valid".into(),
            ),
        },
        match &f.conflict {
            Some((reason, message)) => c(types::VRID_CONFLICT, true, reason, message.clone()),
            None => c(
                types::VRID_CONFLICT,
                false,
                reasons::NO_CONFLICT,
                "no other VirtualIP uses this virtual router ID or these addresses".into(),
            ),
        },
        if split {
            c(
                types::SPLIT_BRAIN,
                true,
                reasons::SEVERAL_MASTERS,
                format!("{} all hold the addresses", f.masters.join(", ")),
            )
        } else {
            c(
                types::SPLIT_BRAIN,
                false,
                reasons::SINGLE_MASTER,
                "at most one node holds the addresses".into(),
            )
        },
    ]
}

/// A new master (with the reason its agent gave), a master lost, and a new conflict.
pub(super) fn events(
    vip: &str,
    old: &super::Announced,
    master: Option<&str>,
    f: &Findings,
    v: &Verdict,
) -> Vec<PlannedEvent> {
    let mut events = Vec::new();
    let event = |warning, reason, note| PlannedEvent {
        vip: vip.to_string(),
        warning,
        reason,
        note,
    };
    match (master, old.master.as_deref()) {
        (Some(m), prev) if Some(m) != prev => {
            let why = f
                .reports
                .iter()
                .find(|r| r.node == m)
                .and_then(|r| r.reason.clone())
                .unwrap_or_default();
            let note = match prev {
                Some(prev) => format!("{m} took over from {prev}: {why}"),
                None => format!("{m} is master: {why}"),
            };
            events.push(event(false, reasons::MASTER_CHANGED, note));
        }
        (None, Some(prev)) => {
            let reason = if f.masters.len() > 1 {
                reasons::SPLIT_BRAIN
            } else {
                reasons::NO_MASTER
            };
            let note = format!("{prev} is no longer master: {}", v.message);
            events.push(event(true, reason, note));
        }
        _ => {}
    }
    if v.phase == Phase::Conflict && !old.conflict {
        events.push(event(true, v.reason, v.message.clone()));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{NodeState, NodeStatus};

    fn findings<'a>(members: &[&str], reports: Vec<&'a NodeStatus>) -> Findings<'a> {
        Findings {
            members: members.iter().map(|m| m.to_string()).collect(),
            reports,
            ..Default::default()
        }
    }

    fn master_entry(node: &str) -> NodeStatus {
        NodeStatus {
            priority: None,
            effective_priority: None,
            reason: Some("higher priority".into()),
            ..super::super::testutil::node_status(node, NodeState::Master)
        }
    }

    fn now() -> Timestamp {
        "2026-11-22T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn invalid_wins_over_everything_then_conflict() {
        let mut f = findings(&["n1"], Vec::new());
        f.conflict = Some(("VRIDConflict", "\"a\" has it".into()));
        let v = verdict(&f, Some("n1"), Some("spec.addresses: empty"), None);
        assert_eq!(
            (v.phase, v.reason, v.message.as_str()),
            (Phase::Invalid, "Invalid", "spec.addresses: empty")
        );
        let v = verdict(&f, Some("n1"), None, None);
        assert_eq!((v.phase, v.reason), (Phase::Conflict, "VRIDConflict"));
    }

    #[test]
    fn a_master_with_trouble_is_degraded_and_no_agent_yet_is_pending() {
        let n1 = master_entry("n1");
        let mut f = findings(&["n1", "n2"], vec![&n1]);
        f.masters = vec!["n1"];
        f.unreported = vec!["n2".into()];
        let v = verdict(&f, Some("n1"), None, None);
        assert_eq!(v.phase, Phase::Degraded);
        assert_eq!(v.message, "n1 holds the addresses; no report from n2");
        let f = findings(&["n1", "n2"], Vec::new());
        let v = verdict(&f, None, None, None);
        assert_eq!(
            (v.phase, v.reason, v.message.as_str()),
            (
                Phase::Pending,
                "Programming",
                "waiting for the agents on n1, n2"
            )
        );
    }

    #[test]
    fn no_master_among_backups_says_so() {
        let mut b = master_entry("n1");
        b.state = Some(NodeState::Backup);
        let f = findings(&["n1"], vec![&b]);
        let v = verdict(&f, None, None, None);
        assert_eq!(
            (v.phase, v.message.as_str()),
            (
                Phase::NoMaster,
                "no node holds the addresses: every node is backup"
            )
        );
    }

    #[test]
    fn conditions_keep_their_transition_time_while_their_status_holds() {
        let mut f = findings(&["n1"], Vec::new());
        f.unreported = vec!["n1".into()];
        f.not_running = 1;
        let v = verdict(&f, None, None, None);
        let first = conditions(&[], &f, &v, false, None, Some(3), now());
        let types: Vec<&str> = first.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            [
                "Ready",
                "Programmed",
                "ConfigValid",
                "VRIDConflict",
                "SplitBrain"
            ]
        );
        assert_eq!(first[1].reason, "WaitingForNodes");
        assert_eq!(first[1].message, "0 of 1 nodes run it; waiting for n1");
        let later: Timestamp = "2026-11-22T00:01:00Z".parse().unwrap();
        let second = conditions(&first, &f, &v, false, Some(("bad", true)), Some(4), later);
        assert_eq!(second[0].last_transition_time, Time(now()), "Ready held");
        assert_eq!(
            second[2].last_transition_time,
            Time(later),
            "ConfigValid flipped"
        );
        assert_eq!(
            second[2].message,
            "bad; the last good configuration keeps running"
        );
        assert_eq!(second[0].observed_generation, Some(4));
    }

    #[test]
    fn events_follow_the_master_and_a_new_conflict() {
        let n2 = master_entry("n2");
        let f = findings(&["n1", "n2"], vec![&n2]);
        let old = super::super::Announced {
            master: Some("n1".into()),
            ..Default::default()
        };
        let v = Verdict::new(Phase::Ready, "MasterElected", String::new());
        let e = events("web", &old, Some("n2"), &f, &v);
        assert_eq!(
            (e[0].reason, e[0].warning, e[0].note.as_str()),
            (
                "MasterChanged",
                false,
                "n2 took over from n1: higher priority"
            )
        );
        assert!(events("web", &old, Some("n1"), &f, &v).is_empty());
        let v = Verdict::new(Phase::Conflict, "ForeignRouter", "n1 hears x".into());
        let e = events("web", &old, None, &f, &v);
        assert_eq!(
            e.iter().map(|e| e.reason).collect::<Vec<_>>(),
            ["NoMaster", "ForeignRouter"]
        );
        assert_eq!(e[0].note, "n1 is no longer master: n1 hears x");
    }
}
