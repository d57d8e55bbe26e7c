//! Summary: what the agents' believed entries say about one VirtualIP — where it runs, who is
//! master (a takeover in progress is not a split brain), what is unhealthy and why, which
//! checks fail, who has not reported, and the one-line `summary`. [`summarize`] runs these
//! stages and hands the findings to [`super::verdict`] for phase, conditions and Events.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::super::conditions::reasons;
use super::super::resolve::Resolution;
use super::findings::Findings;
use super::liveness::Agents;
use super::verdict;
use super::{Announced, HANDOVER_GRACE_MS, PlannedEvent};
use crate::api::{NodeState, NodeStatus, Phase, VirtualIP, VirtualIPStatus};
use crate::ids::TrackerName;

/// The status fields the controller owns, for one object, from the agents' entries.
pub(super) fn summarize(
    vip: &VirtualIP,
    resolution: Option<&Resolution>,
    invalid: Option<&str>,
    kept: Option<&(u8, Vec<String>)>,
    (silent_agents, agents): (&BTreeMap<String, i64>, &Agents),
    now: Timestamp,
    prev: Option<&Announced>,
) -> (VirtualIPStatus, Vec<PlannedEvent>, Announced) {
    let old = vip.status.clone().unwrap_or_default();
    // What was last announced: the controller's own record of its last write (the cache may
    // not show it yet), else, after a start, the status as cached (its servers unknown: no
    // server Event until the next change).
    let prev = prev.cloned().unwrap_or_else(|| Announced {
        uid: vip.metadata.uid.clone(),
        master: old.master.clone(),
        servers: None,
        conflict: old.phase == Some(Phase::Conflict),
    });
    let believed = agents.believed(&old.nodes, silent_agents);
    let (vrid, members) = membership(resolution, kept);
    let findings = find(
        &old,
        &believed,
        members,
        resolution,
        silent_agents,
        &agents.heartbeats,
    );
    let master = (findings.masters.len() == 1).then(|| findings.masters[0].to_string());
    // An invalid edit of a deployed object is not Invalid: the last good one runs.
    let blocking = if kept.is_some() { None } else { invalid };
    let v = verdict::verdict(&findings, master.as_deref(), blocking, resolution);
    let generation = vip.metadata.generation;
    let conditions = verdict::conditions(
        &old.conditions,
        &findings,
        &v,
        master.is_some(),
        invalid.map(|e| (e, kept.is_some())),
        generation,
        now,
    );
    let mut events = verdict::events(&vip.name_any(), &prev, master.as_deref(), &findings, &v);
    let servers = servers_line(master.as_deref(), &findings.reports);
    events.extend(server_events(
        &vip.name_any(),
        prev.servers.as_ref(),
        servers.as_ref(),
        master.as_deref(),
        &findings.reports,
    ));
    let status = VirtualIPStatus {
        observed_generation: generation,
        virtual_router_id: vrid,
        master,
        phase: Some(v.phase),
        summary: summary_line(
            &findings.members,
            &findings.reports,
            silent_agents,
            &findings.unheard,
        ),
        failing: (!findings.failing.is_empty()).then(|| findings.failing.join(",")),
        servers: servers.map(|s| s.to_string()),
        nodes: Vec::new(),
        conditions,
    };
    let announced = Announced {
        uid: vip.metadata.uid.clone(),
        master: status.master.clone(),
        servers,
        conflict: v.phase == Phase::Conflict,
    };
    (status, events, announced)
}

/// Real servers up of all on the master, over its virtual servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Servers {
    up: usize,
    all: usize,
    /// Up with weight 0: taking no new connections on purpose (not up, not down).
    drained: usize,
}

impl std::fmt::Display for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} up", self.up, self.all)?;
        if self.drained > 0 {
            write!(f, ", {} drained", self.drained)?;
        }
        Ok(())
    }
}

impl Servers {
    /// Those failing (neither up nor drained).
    fn down(&self) -> usize {
        self.all.saturating_sub(self.up + self.drained)
    }
}

/// The master's real servers at a glance; none without a master or virtual servers.
fn servers_line(master: Option<&str>, reports: &[&NodeStatus]) -> Option<Servers> {
    let m = reports.iter().find(|r| Some(r.node.as_str()) == master)?;
    let reals = m.virtual_servers.iter().flat_map(|v| &v.real_servers);
    let all = reals.clone().count();
    (!m.virtual_servers.is_empty()).then(|| Servers {
        up: reals.clone().filter(|r| r.healthy && !r.drained).count(),
        all,
        drained: reals.filter(|r| r.healthy && r.drained).count(),
    })
}

/// An Event when more of the master's real servers are down (naming them and why) or fewer;
/// a drain (weight 0) or a configuration change alone is none.
fn server_events(
    vip: &str,
    old: Option<&Servers>,
    new: Option<&Servers>,
    master: Option<&str>,
    reports: &[&NodeStatus],
) -> Vec<PlannedEvent> {
    let (Some(old), Some(new)) = (old, new) else {
        return Vec::new();
    };
    let down: Vec<String> = reports
        .iter()
        .filter(|r| Some(r.node.as_str()) == master)
        .flat_map(|r| &r.virtual_servers)
        .flat_map(|v| {
            v.real_servers.iter().filter(|r| !r.healthy).map(move |r| {
                format!(
                    "{} of {} ({})",
                    r.address,
                    v.name,
                    r.result.as_deref().unwrap_or("failing")
                )
            })
        })
        .collect();
    let (warning, reason, note) = if new.down() > old.down() {
        (
            true,
            reasons::REAL_SERVER_DOWN,
            format!(
                "{new} on {}: down: {}",
                master.unwrap_or("?"),
                down.join(", ")
            ),
        )
    } else if new.down() < old.down() {
        (
            false,
            reasons::REAL_SERVER_UP,
            format!("{new} on {}", master.unwrap_or("?")),
        )
    } else {
        return Vec::new();
    };
    vec![PlannedEvent {
        vip: vip.to_string(),
        warning,
        reason,
        note,
    }]
}

/// Every finding from the believed entries of the members.
fn find<'a>(
    old: &VirtualIPStatus,
    believed: &'a [NodeStatus],
    members: Vec<String>,
    resolution: Option<&Resolution>,
    silent_agents: &BTreeMap<String, i64>,
    heartbeats: &BTreeMap<String, Timestamp>,
) -> Findings<'a> {
    let reports: Vec<&NodeStatus> = believed
        .iter()
        .filter(|r| members.contains(&r.node))
        .collect();
    let masters = masters(&reports, heartbeats);
    let (unheard, unheard_words) = unheard(&reports, &masters);
    let (failing, failing_words) = failing_checks(&reports);
    let mut unhealthy = unheard_words;
    unhealthy.extend(state_findings(&reports));
    unhealthy.extend(failing_words);
    if let Some(lost) = lost_mastership(old.master.as_deref(), &masters, &reports) {
        unhealthy.insert(0, lost);
    }
    unhealthy.extend(silence_findings(&members, silent_agents, &old.nodes));
    let unreported: Vec<String> = members
        .iter()
        .filter(|m| !reports.iter().any(|r| &r.node == *m))
        .filter(|m| !silent_agents.contains_key(*m))
        .cloned()
        .collect();
    // Programmed counts nodes whose instances run: not silent, not Error.
    let not_running = unreported.len()
        + members
            .iter()
            .filter(|m| silent_agents.contains_key(*m))
            .count()
        + reports
            .iter()
            .filter(|r| r.state == Some(NodeState::Error))
            .count();
    let conflict = conflict(resolution, &reports);
    Findings {
        members,
        reports,
        masters,
        unheard,
        unhealthy,
        failing,
        unreported,
        not_running,
        conflict,
    }
}

/// The virtual router ID and the nodes the object runs on: as resolved, or as it ran before
/// an invalid edit (the last good configuration keeps running where it ran).
fn membership(
    resolution: Option<&Resolution>,
    kept: Option<&(u8, Vec<String>)>,
) -> (Option<u8>, Vec<String>) {
    match (resolution, kept) {
        (Some(Resolution::Deployed { vrid, members }), _) => (
            Some(*vrid),
            members.iter().map(|m| m.node.clone()).collect(),
        ),
        (_, Some((vrid, nodes))) => (Some(*vrid), nodes.clone()),
        _ => (None, Vec::new()),
    }
}

/// The members that hold the addresses.
///
/// Two nodes saying Master is usually a takeover not yet finished: after a preemption the
/// old master steps down when it hears the newcomer; after a crash the old one's last word
/// stays until its agent is found silent. It is a split brain only when an older master
/// has provably spoken (its heartbeat) since the newcomer's transition plus a grace.
fn masters<'a>(
    reports: &[&'a NodeStatus],
    heartbeats: &BTreeMap<String, Timestamp>,
) -> Vec<&'a str> {
    let claims = || {
        reports
            .iter()
            .filter(|r| r.state == Some(NodeState::Master))
    };
    let masters: Vec<&str> = claims().map(|r| r.node.as_str()).collect();
    if masters.len() <= 1 {
        return masters;
    }
    let newest = claims()
        .filter_map(|r| {
            let t: Timestamp = r.last_transition_time.as_ref()?.parse().ok()?;
            Some((t, r.node.as_str()))
        })
        .max();
    let Some((t, node)) = newest else {
        return masters;
    };
    let still_claims = |m: &&str| {
        heartbeats
            .get(*m)
            .is_none_or(|hb| hb.as_millisecond() > t.as_millisecond() + HANDOVER_GRACE_MS)
    };
    if masters.iter().filter(|m| **m != node).any(still_claims) {
        masters
    } else {
        vec![node]
    }
}

/// Older masters that the one master took over from because their advertisements stopped:
/// they are not master now (a crash, a cut link), although their agent's last word, until it
/// is found silent, still says so. With their findings.
fn unheard(reports: &[&NodeStatus], masters: &[&str]) -> (Vec<String>, Vec<String>) {
    let [master] = masters else {
        return Default::default();
    };
    let Some(reason) = reports
        .iter()
        .find(|r| r.node == *master)
        .and_then(|r| r.reason.as_deref())
        .filter(|r| r.starts_with(crate::vrrp::instance::MASTER_DOWN))
    else {
        return Default::default();
    };
    reports
        .iter()
        .filter(|r| r.node != *master && r.state == Some(NodeState::Master))
        .map(|r| {
            (
                r.node.clone(),
                format!(
                    "{} is not heard: {master} took over when its advertisements stopped ({reason})",
                    r.node
                ),
            )
        })
        .unzip()
}

fn down(r: &NodeStatus) -> bool {
    matches!(r.state, Some(NodeState::Fault) | Some(NodeState::Error))
}

/// Nodes in FAULT or ERROR, and a master (or backup) whose other family cannot run.
fn state_findings(reports: &[&NodeStatus]) -> Vec<String> {
    let mut out = Vec::new();
    for r in reports {
        if down(r) {
            out.push(format!(
                "{} is {}: {}",
                r.node,
                r.state.map(|s| s.to_string()).unwrap_or_default(),
                r.reason.as_deref().unwrap_or("no reason given")
            ));
            continue;
        }
        for f in r
            .families
            .iter()
            .filter(|f| matches!(f.state, NodeState::Fault | NodeState::Error))
        {
            out.push(format!(
                "{} {} is {}: {}",
                r.node,
                f.family,
                f.state,
                f.reason.as_deref().unwrap_or("no reason given")
            ));
        }
    }
    out
}

/// Failing checks: at a glance (`n1:nginx`), and in words for the Ready message. A node in
/// FAULT already says which check put it there, so it has no words here.
fn failing_checks(reports: &[&NodeStatus]) -> (Vec<String>, Vec<String>) {
    let mut glance = Vec::new();
    let mut words = Vec::new();
    for r in reports {
        for c in r.checks.iter().filter(|c| !c.healthy) {
            glance.push(format!("{}:{}", r.node, c.name));
            if down(r) {
                continue;
            }
            let effect = match c.contribution {
                0 => String::new(),
                n => format!(" ({n:+})"),
            };
            words.push(format!(
                "{} {} failing{effect}: {}",
                r.node,
                match TrackerName::parse(&c.name) {
                    TrackerName::Node
                    | TrackerName::Interface(_)
                    | TrackerName::Link
                    | TrackerName::AddressConflict => c.name.clone(),
                    TrackerName::Check(_) | TrackerName::Notify => format!("check {}", c.name),
                },
                c.result.as_deref().unwrap_or("no result yet")
            ));
        }
    }
    (glance, words)
}

/// Why the previous master lost the addresses, if its checks or a FAULT say so.
fn lost_mastership(
    old_master: Option<&str>,
    masters: &[&str],
    reports: &[&NodeStatus],
) -> Option<String> {
    let old_master = old_master?;
    if masters.contains(&old_master) {
        return None;
    }
    let r = reports.iter().find(|r| r.node == old_master)?;
    let cause = r
        .checks
        .iter()
        .find(|c| !c.healthy)
        .map(|c| {
            let result = c.result.as_deref().unwrap_or("no result");
            match TrackerName::parse(&c.name) {
                TrackerName::Node => result.to_string(),
                TrackerName::Interface(_) | TrackerName::Link | TrackerName::AddressConflict => {
                    format!("{}: {result}", c.name)
                }
                TrackerName::Check(_) | TrackerName::Notify => {
                    format!("check {} failed: {result}", c.name)
                }
            }
        })
        .or_else(|| {
            matches!(r.state, Some(NodeState::Fault)).then(|| r.reason.clone().unwrap_or_default())
        })?;
    Some(format!("{old_master} lost mastership: {cause}"))
}

/// Members whose agent is silent, with what it last said.
fn silence_findings(
    members: &[String],
    silent_agents: &BTreeMap<String, i64>,
    entries: &[NodeStatus],
) -> Vec<String> {
    members
        .iter()
        .filter_map(|m| {
            let secs = silent_agents.get(m)?;
            let said = entries
                .iter()
                .find(|r| &r.node == m)
                .and_then(|r| r.state.map(|s| s.to_string()))
                .unwrap_or_else(|| "nothing".into());
            Some(format!(
                "{m}'s agent has been silent for {secs}s (it last said {said})"
            ))
        })
        .collect()
}

/// `n1=Master(200),n2=Backup(100),n3=Silent,n4=Unheard`, or nothing when it runs nowhere.
fn summary_line(
    members: &[String],
    reports: &[&NodeStatus],
    silent_agents: &BTreeMap<String, i64>,
    unheard: &[String],
) -> Option<String> {
    if members.is_empty() {
        return None;
    }
    let one = |m: &String| {
        if silent_agents.contains_key(m) {
            return format!("{m}=Silent");
        }
        if unheard.contains(m) {
            return format!("{m}=Unheard");
        }
        match reports.iter().find(|r| &r.node == m) {
            Some(r) => match (r.state, r.effective_priority) {
                (Some(s), Some(p)) => format!("{m}={s}({p})"),
                (Some(s), None) => format!("{m}={s}"),
                (None, _) => format!("{m}=?"),
            },
            None => format!("{m}=?"),
        }
    };
    Some(members.iter().map(one).collect::<Vec<_>>().join(","))
}

/// Ours (another object, found by resolution), or a foreign router on the wire that an agent
/// heard: the reason and the message.
fn conflict(
    resolution: Option<&Resolution>,
    reports: &[&NodeStatus],
) -> Option<(&'static str, String)> {
    let wire: Vec<String> = reports
        .iter()
        .filter_map(|r| r.conflict.as_ref().map(|c| format!("{} hears {c}", r.node)))
        .collect();
    match resolution {
        Some(Resolution::Rejected { reason, message })
            if [
                reasons::VRID_CONFLICT,
                reasons::DUPLICATE_ADDRESS,
                reasons::NODE_ADDRESS,
            ]
            .contains(reason) =>
        {
            Some((*reason, message.clone()))
        }
        _ if !wire.is_empty() => Some((reasons::FOREIGN_ROUTER, wire.join("; "))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::node_status;
    use super::*;
    use crate::api::CheckStatus;

    fn sv(up: usize, all: usize, drained: usize) -> Servers {
        Servers { up, all, drained }
    }

    fn check(name: &str, result: &str, contribution: i32) -> CheckStatus {
        CheckStatus {
            name: name.into(),
            healthy: false,
            result: Some(result.into()),
            consecutive: 3,
            contribution,
            fault: false,
            last_transition_time: None,
        }
    }

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    fn with_servers(node: &str, state: NodeState, healthy: &[bool]) -> NodeStatus {
        let mut n = node_status(node, state);
        n.virtual_servers = vec![crate::api::VirtualServerStatus {
            virtual_ip: "web".into(),
            name: "198.51.100.50:80/TCP".into(),
            up: String::new(),
            serving: "real servers".into(),
            programmed: true,
            error: None,
            real_servers: healthy
                .iter()
                .enumerate()
                .map(|(i, h)| crate::api::RealServerStatus {
                    address: format!("198.51.100.{}:80", 21 + i),
                    healthy: *h,
                    result: (!h).then(|| "connection refused".to_string()),
                    weight: h.then_some(1),
                    drained: false,
                    transitions: 0,
                    last_transition_time: None,
                })
                .collect(),
        }];
        n
    }

    #[test]
    fn the_masters_real_servers_are_counted_and_a_fall_is_an_event_naming_them() {
        let m = with_servers("n1", NodeState::Master, &[true, false, true]);
        let b = with_servers("n2", NodeState::Backup, &[false, false, false]);
        let reports = [&m, &b];
        let s = servers_line(Some("n1"), &reports).unwrap();
        assert_eq!(s.to_string(), "2/3 up");
        assert_eq!(servers_line(None, &reports), None);
        let e = server_events("web", Some(&sv(3, 3, 0)), Some(&s), Some("n1"), &reports);
        assert_eq!(e.len(), 1);
        assert!(e[0].warning);
        assert_eq!(e[0].reason, reasons::REAL_SERVER_DOWN);
        assert_eq!(
            e[0].note,
            "2/3 up on n1: down: 198.51.100.22:80 of 198.51.100.50:80/TCP (connection refused)"
        );
        let e = server_events("web", Some(&sv(1, 3, 0)), Some(&s), Some("n1"), &reports);
        assert_eq!(
            (e[0].warning, e[0].reason),
            (false, reasons::REAL_SERVER_UP)
        );
        assert!(
            server_events("web", Some(&sv(2, 3, 0)), Some(&s), Some("n1"), &reports).is_empty()
        );
        assert!(server_events("web", None, Some(&s), Some("n1"), &reports).is_empty());
    }

    /// Issue "What an LVS operator sees", item 3: a drained server (weight 0) is shown as
    /// drained, not up, and draining it is no "real server down".
    #[test]
    fn a_drained_server_is_counted_apart_and_its_drain_is_no_event() {
        let mut m = with_servers("n1", NodeState::Master, &[true, true, true]);
        m.virtual_servers[0].real_servers[0].drained = true;
        m.virtual_servers[0].real_servers[0].weight = Some(0);
        let reports = [&m];
        let s = servers_line(Some("n1"), &reports).unwrap();
        assert_eq!(s.to_string(), "2/3 up, 1 drained");
        assert!(
            server_events("web", Some(&sv(3, 3, 0)), Some(&s), Some("n1"), &reports).is_empty()
        );
        // A drained server that then fails is down: that is an event.
        m.virtual_servers[0].real_servers[1].healthy = false;
        let reports = [&m];
        let s = servers_line(Some("n1"), &reports).unwrap();
        assert_eq!(s.to_string(), "1/3 up, 1 drained");
        let e = server_events("web", Some(&sv(2, 3, 1)), Some(&s), Some("n1"), &reports);
        assert_eq!((e.len(), e[0].reason), (1, reasons::REAL_SERVER_DOWN));
    }

    #[test]
    fn a_newer_master_wins_unless_the_older_spoke_after_the_grace() {
        let mut n1 = node_status("n1", NodeState::Master);
        n1.last_transition_time = Some("2026-11-21T23:59:00Z".into());
        let mut n2 = node_status("n2", NodeState::Master);
        n2.last_transition_time = Some("2026-11-21T23:59:50Z".into());
        let reports = [&n1, &n2];
        let heard = |hb: &str| BTreeMap::from([("n1".to_string(), at(hb))]);
        assert_eq!(masters(&reports, &heard("2026-11-21T23:59:52Z")), ["n2"]);
        assert_eq!(
            masters(&reports, &heard("2026-11-21T23:59:53Z")),
            ["n1", "n2"]
        );
        // Without transition times nothing tells a takeover from a split brain.
        let (a, b) = (
            node_status("n1", NodeState::Master),
            node_status("n2", NodeState::Master),
        );
        assert_eq!(masters(&[&a, &b], &BTreeMap::new()), ["n1", "n2"]);
    }

    #[test]
    fn a_faulty_node_says_why_and_its_checks_are_not_repeated() {
        let mut n1 = node_status("n1", NodeState::Fault);
        n1.checks = vec![check("nginx", "connection refused", -50)];
        let mut n2 = node_status("n2", NodeState::Backup);
        n2.checks = vec![
            check("interface:eth0", "down", 0),
            check("disk", "exit status 1", -10),
        ];
        let reports = [&n1, &n2];
        assert_eq!(
            state_findings(&reports),
            ["n1 is Fault: Fault because of a test"]
        );
        let (glance, words) = failing_checks(&reports);
        assert_eq!(glance, ["n1:nginx", "n2:interface:eth0", "n2:disk"]);
        assert_eq!(
            words,
            [
                "n2 interface:eth0 failing: down",
                "n2 check disk failing (-10): exit status 1"
            ]
        );
    }

    #[test]
    fn a_lost_mastership_names_the_check_or_the_fault() {
        let mut n1 = node_status("n1", NodeState::Backup);
        n1.checks = vec![check("nginx", "HTTP 500", -50)];
        assert_eq!(
            lost_mastership(Some("n1"), &["n2"], &[&n1]).as_deref(),
            Some("n1 lost mastership: check nginx failed: HTTP 500")
        );
        let n1 = node_status("n1", NodeState::Fault);
        assert_eq!(
            lost_mastership(Some("n1"), &[], &[&n1]).as_deref(),
            Some("n1 lost mastership: Fault because of a test")
        );
        // Still master, or stepped down without a cause: nothing to say.
        assert_eq!(lost_mastership(Some("n1"), &["n1"], &[&n1]), None);
        let n1 = node_status("n1", NodeState::Backup);
        assert_eq!(lost_mastership(Some("n1"), &["n2"], &[&n1]), None);
    }

    #[test]
    fn the_summary_line_shows_every_member() {
        let n1 = node_status("n1", NodeState::Master);
        let mut n2 = node_status("n2", NodeState::Backup);
        n2.effective_priority = None;
        let members: Vec<String> = ["n1", "n2", "n3", "n4"].map(String::from).to_vec();
        let silent = BTreeMap::from([("n3".to_string(), 30)]);
        assert_eq!(
            summary_line(&members, &[&n1, &n2], &silent, &[]).as_deref(),
            Some("n1=Master(100),n2=Backup,n3=Silent,n4=?")
        );
        assert_eq!(summary_line(&[], &[], &silent, &[]), None);
        assert_eq!(
            silence_findings(&members, &silent, &[node_status("n3", NodeState::Master)]),
            ["n3's agent has been silent for 30s (it last said Master)"]
        );
    }

    #[test]
    fn a_conflict_comes_from_resolution_or_from_the_wire() {
        let rejected = |reason| Resolution::Rejected {
            reason,
            message: "taken".into(),
        };
        let mut n1 = node_status("n1", NodeState::Backup);
        n1.conflict = Some("198.51.100.99 advertises virtual router 1".into());
        assert_eq!(
            conflict(Some(&rejected("DuplicateAddress")), &[&n1]),
            Some(("DuplicateAddress", "taken".to_string()))
        );
        assert_eq!(
            conflict(Some(&rejected("NoEligibleNodes")), &[&n1]),
            Some((
                "ForeignRouter",
                "n1 hears 198.51.100.99 advertises virtual router 1".to_string()
            ))
        );
        assert_eq!(
            conflict(None, &[&node_status("n1", NodeState::Backup)]),
            None
        );
    }

    #[test]
    fn a_kept_configuration_keeps_its_members() {
        let kept = (7, vec!["n1".to_string()]);
        assert_eq!(membership(None, Some(&kept)), (Some(7), kept.1.clone()));
        assert_eq!(membership(None, None), (None, Vec::new()));
    }
}
