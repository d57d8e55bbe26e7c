//! The pipeline end to end: from a world of objects, nodes and configurations to a plan.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::liveness::replace_address;
use super::testutil::node_status;
use super::*;

use crate::api::{NodeConfigStatus, NodeStatus, Phase, VirtualIPNodeConfigSpec};

fn vip(name: &str, created: &str, yaml: &str) -> Arc<VirtualIP> {
    let mut v = VirtualIP::new(name, yaml_serde::from_str(yaml).unwrap());
    v.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
    v.metadata.generation = Some(1);
    v.metadata.finalizers = Some(vec![FINALIZER.into()]);
    Arc::new(v)
}

fn node(name: &str, ip: &str) -> Arc<Node> {
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}
        }))
        .unwrap(),
    )
}

fn registered(name: &str) -> Arc<VirtualIPNodeConfig> {
    let mut c = VirtualIPNodeConfig::new(name, VirtualIPNodeConfigSpec::default());
    c.status = Some(NodeConfigStatus {
        agent: Some("test".into()),
        heartbeat_time: Some("2026-11-21T23:59:59Z".into()),
        heartbeat_seconds: Some(10),
        observed_generation: None,
        started_time: Some("2026-11-21T00:00:00Z".into()),
        addresses: vec![format!("fe80::{}", &name[1..]), ip_of(name).into()],
    });
    Arc::new(c)
}

fn ip_of(node: &str) -> &'static str {
    match node {
        "n1" => "198.51.100.11",
        "n2" => "198.51.100.12",
        _ => "198.51.100.13",
    }
}

fn report(node: &str, state: &str) -> NodeStatus {
    node_status(
        node,
        serde_json::from_value(serde_json::json!(state)).unwrap(),
    )
}

fn two_node_vip(nodes: Vec<NodeStatus>, master: Option<&str>) -> Arc<VirtualIP> {
    let mut v = (*vip(
        "web",
        "2026-01-01T00:00:00Z",
        "addresses: [198.51.100.50/24]",
    ))
    .clone();
    v.status = Some(VirtualIPStatus {
        master: master.map(String::from),
        nodes,
        ..Default::default()
    });
    Arc::new(v)
}

fn world_plan(vips: &[Arc<VirtualIP>], configs: &[Arc<VirtualIPNodeConfig>]) -> Plan {
    world_plan_after(vips, configs, &BTreeMap::new())
}

/// The plan when the controller last announced `announced`.
fn world_plan_after(
    vips: &[Arc<VirtualIP>],
    configs: &[Arc<VirtualIPNodeConfig>],
    announced: &BTreeMap<String, Announced>,
) -> Plan {
    let nodes = vec![
        node("n1", "198.51.100.11"),
        node("n2", "198.51.100.12"),
        node("n3", "198.51.100.13"),
    ];
    let secrets = BTreeMap::new();
    plan(&World {
        vips,
        nodes: &nodes,
        configs,
        secrets: &secrets,
        announced,
        now: "2026-11-22T00:00:00Z".parse().unwrap(),
    })
}

/// A pass whose cache does not show the last status written yet plans no Event that status
/// already announced: the master lost is one NoMaster Event, not one per pass until the cache
/// catches up (each pass's words differ as the agents report).
#[test]
fn a_change_is_announced_once_though_the_cache_lags_behind_the_write() {
    let configs = [registered("n1"), registered("n2")];
    // n1 was master; now both are backups.
    let stale = two_node_vip(
        vec![report("n1", "Backup"), report("n2", "Backup")],
        Some("n1"),
    );
    let first = world_plan(std::slice::from_ref(&stale), &configs);
    assert_eq!(
        first.events.iter().map(|e| e.reason).collect::<Vec<_>>(),
        ["NoMaster"]
    );
    assert_eq!(first.announced["web"].master, None);
    // The next pass, the cache still at master n1, with what the first pass wrote on record.
    let second = world_plan_after(std::slice::from_ref(&stale), &configs, &first.announced);
    assert!(second.events.is_empty(), "{:?}", second.events);
    // Without the record (a new leader), the cache is all there is.
    assert_eq!(world_plan(&[stale], &configs).events.len(), 1);
}

#[test]
fn publishes_resolved_entries_only_to_nodes_with_an_agent() {
    let v = vip(
        "web",
        "2026-01-01T00:00:00Z",
        "addresses: [198.51.100.50/24]\nunicast: true\npriorities: [{node: n1, priority: 200}]",
    );
    let p = world_plan(&[v], &[registered("n1"), registered("n2")]);
    assert_eq!(p.configs["n3"], vec![], "n3 has no agent");
    let n1 = &p.configs["n1"][0].spec;
    assert_eq!(n1.virtual_router_id, Some(1));
    assert_eq!(n1.default_priority, 200);
    assert!(n1.priorities.is_empty() && !n1.unicast);
    assert_eq!(n1.unicast_peers, vec!["198.51.100.12".to_string()]);
    assert_eq!(p.configs["n2"][0].spec.default_priority, 100);
    let s = &p.statuses["web"];
    assert_eq!(s.phase, Some(Phase::Pending));
    assert_eq!(s.virtual_router_id, Some(1));
    assert!(p.events.is_empty());
}

#[test]
fn status_follows_the_agents_reports() {
    let with = two_node_vip;
    let configs = [registered("n1"), registered("n2")];
    let p = world_plan(
        &[with(
            vec![report("n1", "Master"), report("n2", "Backup")],
            None,
        )],
        &configs,
    );
    let s = &p.statuses["web"];
    assert_eq!(
        (s.master.as_deref(), s.phase),
        (Some("n1"), Some(Phase::Ready))
    );
    assert_eq!(p.events[0].reason, "MasterChanged");
    assert!(
        p.events[0]
            .note
            .contains("n1 is master: Master because of a test"),
        "{:?}",
        p.events
    );

    let p = world_plan(
        &[with(
            vec![report("n1", "Fault"), report("n2", "Master")],
            Some("n1"),
        )],
        &configs,
    );
    let s = &p.statuses["web"];
    assert_eq!(
        (s.master.as_deref(), s.phase),
        (Some("n2"), Some(Phase::Degraded))
    );
    assert!(
        p.events[0].note.starts_with("n2 took over from n1"),
        "{:?}",
        p.events
    );

    let p = world_plan(
        &[with(
            vec![report("n1", "Master"), report("n2", "Master")],
            Some("n1"),
        )],
        &configs,
    );
    assert_eq!(p.statuses["web"].phase, Some(Phase::SplitBrain));
    assert_eq!(p.statuses["web"].master, None);
    assert!(
        p.statuses["web"]
            .conditions
            .iter()
            .any(|c| c.type_ == "SplitBrain" && c.status == "True")
    );

    let p = world_plan(&[with(vec![report("n1", "Backup")], Some("n1"))], &configs);
    assert_eq!(p.statuses["web"].phase, Some(Phase::NoMaster));
    assert!(p.events[0].warning);

    // A foreign router on the VRID, heard by an agent, is a conflict too.
    let mut heard = report("n1", "Backup");
    heard.conflict = Some("198.51.100.99 advertises virtual router 1 with other addresses".into());
    let p = world_plan(&[with(vec![heard, report("n2", "Backup")], None)], &configs);
    let s = &p.statuses["web"];
    assert_eq!(s.phase, Some(Phase::Conflict));
    let c = s
        .conditions
        .iter()
        .find(|c| c.type_ == "VRIDConflict")
        .unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "ForeignRouter")
    );
    assert!(
        c.message.starts_with("n1 hears 198.51.100.99 advertises"),
        "{}",
        c.message
    );
}

#[test]
fn two_masters_are_a_split_brain_only_once_the_older_has_spoken_since() {
    let at = |node: &str, when: &str| {
        let mut r = report(node, "Master");
        r.last_transition_time = Some(when.into());
        r
    };
    let mut v = (*vip(
        "web",
        "2026-01-01T00:00:00Z",
        "addresses: [198.51.100.50/24]",
    ))
    .clone();
    v.status = Some(VirtualIPStatus {
        master: Some("n1".into()),
        nodes: vec![
            at("n1", "2026-11-21T23:59:00Z"),
            at("n2", "2026-11-21T23:59:50Z"),
        ],
        ..Default::default()
    });
    let v = Arc::new(v);
    let heard = |n1_heartbeat: &str| {
        let mut n1 = (*registered("n1")).clone();
        n1.status.as_mut().unwrap().heartbeat_time = Some(n1_heartbeat.into());
        world_plan(std::slice::from_ref(&v), &[Arc::new(n1), registered("n2")])
    };
    // n1 last spoke before n2 took over (+2 s): a takeover, n2 is master.
    let p = heard("2026-11-21T23:59:51Z");
    assert_eq!(p.statuses["web"].master.as_deref(), Some("n2"));
    assert_ne!(p.statuses["web"].phase, Some(Phase::SplitBrain));
    // n1 still says Master 5 s after n2 took over: both hold the addresses.
    let p = heard("2026-11-21T23:59:55Z");
    assert_eq!(p.statuses["web"].phase, Some(Phase::SplitBrain));
    assert_eq!(p.statuses["web"].master, None);
}

#[test]
fn a_silent_agent_is_not_believed() {
    let v = two_node_vip(
        vec![report("n1", "Master"), report("n2", "Master")],
        Some("n1"),
    );
    let mut n1 = (*registered("n1")).clone();
    // Two minutes without a heartbeat, at a 10 s period: the node is down, not master.
    n1.status.as_mut().unwrap().heartbeat_time = Some("2026-11-21T23:58:00Z".into());
    let p = world_plan(&[v], &[Arc::new(n1), registered("n2")]);
    let s = &p.statuses["web"];
    assert_eq!(
        (s.master.as_deref(), s.phase),
        (Some("n2"), Some(Phase::Degraded))
    );
    let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert!(
        ready
            .message
            .contains("n1's agent has been silent for 120s (it last said Master)"),
        "{}",
        ready.message
    );
    let programmed = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Programmed")
        .unwrap();
    assert_eq!(programmed.message, "1 of 2 nodes run it");
    assert!(
        p.events[0].note.starts_with("n2 took over from n1"),
        "{:?}",
        p.events
    );
}

#[test]
fn an_agent_is_not_believed_from_the_moment_its_heartbeat_is_late() {
    let v = two_node_vip(
        vec![report("n1", "Master"), report("n2", "Master")],
        Some("n1"),
    );
    let mut n1 = (*registered("n1")).clone();
    // 13 s since the last heartbeat at a 10 s period: late (10 s + 2 s slack).
    n1.status.as_mut().unwrap().heartbeat_time = Some("2026-11-21T23:59:47Z".into());
    let p = world_plan(
        std::slice::from_ref(&v),
        &[Arc::new(n1.clone()), registered("n2")],
    );
    let s = &p.statuses["web"];
    assert_eq!(s.master.as_deref(), Some("n2"));
    assert_eq!(s.summary.as_deref(), Some("n1=Silent,n2=Master(100)"));
    // 11 s: on time still.
    n1.status.as_mut().unwrap().heartbeat_time = Some("2026-11-21T23:59:49Z".into());
    let p = world_plan(&[v], &[Arc::new(n1), registered("n2")]);
    assert_ne!(
        p.statuses["web"].summary.as_deref(),
        Some("n1=Silent,n2=Master(100)")
    );
}

#[test]
fn a_restarted_agent_is_not_a_split_brain() {
    // n1's entry says Master from before its agent restarted (its transition predates the
    // new process); n2 took over meanwhile. The new n1 heartbeats, but has not spoken.
    let mut n1_old = report("n1", "Master");
    n1_old.last_transition_time = Some("2026-11-20T10:00:00Z".into());
    let mut n2 = report("n2", "Master");
    n2.last_transition_time = Some("2026-11-21T23:59:00Z".into());
    n2.reason = Some("master down timer expired".into());
    let v = two_node_vip(vec![n1_old, n2], Some("n1"));
    let p = world_plan(&[v], &[registered("n1"), registered("n2")]);
    let s = &p.statuses["web"];
    assert_eq!(s.master.as_deref(), Some("n2"));
    assert_ne!(s.phase, Some(Phase::SplitBrain));
    assert_eq!(p.events.len(), 1, "{:?}", p.events);
    assert_eq!(
        p.events[0].note,
        "n2 took over from n1: master down timer expired"
    );
    assert_eq!(s.summary.as_deref(), Some("n1=?,n2=Master(100)"));
}

#[test]
fn a_master_whose_successor_stopped_hearing_it_is_not_shown_as_master() {
    // n1 crashed: its agent's last word (Master) stands until its heartbeat is late, but n2
    // took over because n1's advertisements stopped. n1 has not spoken since.
    let mut n1 = report("n1", "Master");
    n1.last_transition_time = Some("2026-11-21T23:00:00Z".into());
    let mut n2 = report("n2", "Master");
    n2.last_transition_time = Some("2026-11-21T23:59:58Z".into());
    n2.reason = Some("master down timer expired (no advertisement for 0.341s)".into());
    let mut n1_cfg = (*registered("n1")).clone();
    n1_cfg.status.as_mut().unwrap().heartbeat_time = Some("2026-11-21T23:59:57Z".into());
    let configs = [Arc::new(n1_cfg), registered("n2")];
    let p = world_plan(
        &[two_node_vip(vec![n1.clone(), n2.clone()], Some("n1"))],
        &configs,
    );
    let s = &p.statuses["web"];
    assert_eq!(s.master.as_deref(), Some("n2"));
    assert_eq!(s.summary.as_deref(), Some("n1=Unheard,n2=Master(100)"));
    assert_eq!(s.phase, Some(Phase::Degraded));
    let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert!(
        ready
            .message
            .contains("n1 is not heard: n2 took over when its advertisements stopped"),
        "{ready:?}"
    );
    // A takeover for another reason (a preemption) is a handover in progress: both stay.
    n2.reason = Some("preempting lower priority master 198.51.100.11".into());
    let p = world_plan(&[two_node_vip(vec![n1, n2], Some("n1"))], &configs);
    assert_eq!(
        p.statuses["web"].summary.as_deref(),
        Some("n1=Master(100),n2=Master(100)")
    );
}

#[test]
fn programmed_counts_only_nodes_whose_instances_run() {
    let v = two_node_vip(vec![report("n1", "Error"), report("n2", "Error")], None);
    let p = world_plan(&[v], &[registered("n1"), registered("n2")]);
    let programmed = p.statuses["web"]
        .conditions
        .iter()
        .find(|c| c.type_ == "Programmed")
        .unwrap();
    assert_eq!(programmed.status, "False");
    assert_eq!(programmed.message, "0 of 2 nodes run it");
}

#[test]
fn reasons_name_nodes_not_their_addresses() {
    let mut n2 = report("n2", "Backup");
    n2.reason = Some("preempted by higher priority 200 from fe80::1".into());
    let mut n1 = report("n1", "Fault");
    n1.reason = Some("198.51.100.12 advertises virtual router 51 with other addresses".into());
    let v = two_node_vip(vec![n1, n2], None);
    let p = world_plan(&[v], &[registered("n1"), registered("n2")]);
    let ready = p.statuses["web"]
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(
        ready
            .message
            .contains("n1 is Fault: n2 (198.51.100.12) advertises virtual router 51"),
        "{}",
        ready.message
    );
    assert_eq!(
        replace_address("from fe80::1 and fe80::12", "fe80::1", "n1"),
        "from n1 and fe80::12"
    );
}

#[test]
fn conflicts_are_reported_on_the_newer_object_which_is_not_deployed() {
    let a = vip(
        "a",
        "2026-01-01T00:00:00Z",
        "addresses: [198.51.100.50/24]\nvirtualRouterID: 7",
    );
    let b = vip(
        "b",
        "2026-01-02T00:00:00Z",
        "addresses: [198.51.100.51/24]\nvirtualRouterID: 7",
    );
    let p = world_plan(&[a, b], &[registered("n1")]);
    assert_eq!(p.configs["n1"].len(), 1);
    assert_eq!(p.configs["n1"][0].name, "a");
    assert_eq!(p.statuses["b"].phase, Some(Phase::Conflict));
    let c = p.statuses["b"]
        .conditions
        .iter()
        .find(|c| c.type_ == "VRIDConflict")
        .unwrap();
    assert_eq!(c.status, "True");
    assert!(c.message.contains("\"a\""), "{}", c.message);
    assert_eq!(p.events[0].reason, "VRIDConflict");
}

#[test]
fn deletion_waits_for_every_node_to_release() {
    let mut v = (*vip(
        "web",
        "2026-01-01T00:00:00Z",
        "addresses: [198.51.100.50/24]",
    ))
    .clone();
    v.metadata.deletion_timestamp = Some(Time("2026-11-21T23:59:50Z".parse().unwrap()));
    v.status = Some(VirtualIPStatus {
        nodes: vec![report("n1", "Master")],
        ..Default::default()
    });
    let p = world_plan(&[Arc::new(v.clone())], &[registered("n1")]);
    assert!(p.configs["n1"].is_empty(), "taken off the nodes at once");
    assert!(p.release.is_empty(), "n1 still reports it");
    v.status = None;
    let p = world_plan(&[Arc::new(v)], &[registered("n1")]);
    assert_eq!(p.release, vec!["web".to_string()]);
}

#[test]
fn a_missing_secret_is_reported_not_deployed() {
    let v = vip(
        "v2",
        "2026-01-01T00:00:00Z",
        "addresses: [198.51.100.50/24]\nversion: 2\nauthentication: {passwordSecretRef: {name: s, namespace: ns, key: k}}",
    );
    let p = world_plan(&[v], &[registered("n1")]);
    assert!(p.configs["n1"].is_empty());
    let ready = p.statuses["v2"]
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason, "Invalid");
    assert!(ready.message.contains("Secret ns/s"), "{}", ready.message);
}

#[test]
fn an_invalid_edit_keeps_the_last_good_configuration_running() {
    // Deployed and running on n1 and n2...
    let good = vip(
        "v2",
        "2026-01-01T00:00:00Z",
        "addresses: [198.51.100.50/24]\nversion: 2\nauthentication: {password: s3cret}",
    );
    let p = world_plan(&[good], &[registered("n1"), registered("n2")]);
    let published = |node: &str| {
        let mut c = (*registered(node)).clone();
        c.spec.virtual_ips = p.configs[node].clone();
        Arc::new(c)
    };
    let configs = [published("n1"), published("n2")];
    // ... then edited into something that cannot run (a 17-character password).
    let mut bad = (*vip(
        "v2",
        "2026-01-01T00:00:00Z",
        "addresses: [198.51.100.50/24]\nversion: 2\nauthentication: {password: seventeen-chars!!}",
    ))
    .clone();
    bad.status = Some(VirtualIPStatus {
        master: Some("n1".into()),
        nodes: vec![report("n1", "Master"), report("n2", "Backup")],
        ..Default::default()
    });
    let q = world_plan(&[Arc::new(bad)], &configs);
    assert_eq!(q.configs["n1"], p.configs["n1"], "the working entry stays");
    assert_eq!(q.configs["n2"], p.configs["n2"]);
    let s = &q.statuses["v2"];
    assert_eq!(
        (s.master.as_deref(), s.phase),
        (Some("n1"), Some(Phase::Ready))
    );
    let valid = s
        .conditions
        .iter()
        .find(|c| c.type_ == "ConfigValid")
        .unwrap();
    assert_eq!(valid.status, "False");
    assert!(
        valid.message.contains("1 to 8 characters"),
        "{}",
        valid.message
    );
    assert!(
        valid
            .message
            .contains("last good configuration keeps running")
    );
    // Never deployed: Invalid.
    let fresh = vip(
        "v3",
        "2026-01-01T00:00:00Z",
        "addresses: [198.51.100.60/24]\nversion: 2\nauthentication: {password: seventeen-chars!!}",
    );
    let r = world_plan(&[fresh], &[registered("n1")]);
    assert_eq!(r.statuses["v3"].phase, Some(Phase::Invalid));
    assert!(r.configs["n1"].is_empty());
}

#[test]
fn cordoned_or_excluded_nodes_hand_over() {
    let asks = vip(
        "asks",
        "2026-01-01T00:00:00Z",
        "addresses: [198.51.100.50/24]\nleaveCordonedNodes: true",
    );
    let plain = vip(
        "plain",
        "2026-01-02T00:00:00Z",
        "addresses: [198.51.100.60/24]",
    );
    let mut n1: Node = (*node("n1", "198.51.100.11")).clone();
    n1.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
        unschedulable: Some(true),
        ..Default::default()
    });
    let mut n2: Node = (*node("n2", "198.51.100.12")).clone();
    n2.metadata.labels = Some([(EXCLUDE_LABEL.to_string(), String::new())].into());
    let nodes = vec![Arc::new(n1), Arc::new(n2), node("n3", "198.51.100.13")];
    let secrets = BTreeMap::new();
    let p = plan(&World {
        vips: &[asks, plain],
        nodes: &nodes,
        configs: &[registered("n1"), registered("n2"), registered("n3")],
        secrets: &secrets,
        announced: &Default::default(),
        now: "2026-11-22T00:00:00Z".parse().unwrap(),
    });
    let drain = |node: &str, vip: &str| {
        p.configs[node]
            .iter()
            .find(|e| e.name == vip)
            .unwrap()
            .drain
            .clone()
    };
    assert_eq!(drain("n1", "asks").as_deref(), Some("node n1 is cordoned"));
    assert_eq!(
        drain("n1", "plain"),
        None,
        "cordon counts only when asked for"
    );
    for v in ["asks", "plain"] {
        assert_eq!(
            drain("n2", v).as_deref(),
            Some("node n2 has the label node.kubernetes.io/exclude-from-external-load-balancers")
        );
        assert_eq!(drain("n3", v), None);
    }
}

#[test]
fn failing_checks_show_at_a_glance_and_a_lost_mastership_says_why() {
    let check =
        |name: &str, healthy: bool, result: &str, contribution: i32| crate::api::CheckStatus {
            name: name.into(),
            healthy,
            result: Some(result.into()),
            consecutive: 3,
            contribution,
            fault: false,
            last_transition_time: None,
        };
    let mut n1 = report("n1", "Backup");
    n1.checks = vec![
        check("nginx", false, "connection refused", -50),
        check("disk", true, "exit status 0", 0),
    ];
    let mut n2 = report("n2", "Master");
    n2.checks = vec![check("nginx", true, "HTTP 200 in 3 ms", 0)];
    let p = world_plan(
        &[two_node_vip(vec![n1, n2], Some("n1"))],
        &[registered("n1"), registered("n2")],
    );
    let s = &p.statuses["web"];
    assert_eq!(s.failing.as_deref(), Some("n1:nginx"));
    assert_eq!(s.phase, Some(Phase::Degraded));
    let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(
        ready.message,
        "n2 holds the addresses; n1 lost mastership: check nginx failed: connection refused; \
         n1 check nginx failing (-50): connection refused"
    );
}

#[test]
fn an_https_check_gets_its_ca_from_the_secret() {
    let v = vip(
        "web",
        "2026-01-01T00:00:00Z",
        "addresses: [198.51.100.50/24]\nhealthChecks: [{name: tls, http: {scheme: HTTPS, port: 443, caSecretRef: {name: ca, namespace: ns, key: ca.crt}}}]",
    );
    assert_eq!(secret_refs(std::slice::from_ref(&v)).len(), 1);
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let r = SecretKeyRef {
        name: "ca".into(),
        namespace: "ns".into(),
        key: "ca.crt".into(),
    };
    let secrets = BTreeMap::from([(r, Ok(pem.to_string()))]);
    let nodes = vec![node("n1", "198.51.100.11")];
    let p = plan(&World {
        vips: &[v],
        nodes: &nodes,
        configs: &[registered("n1")],
        secrets: &secrets,
        announced: &Default::default(),
        now: "2026-11-22T00:00:00Z".parse().unwrap(),
    });
    let http = p.configs["n1"][0].spec.health_checks[0]
        .http
        .clone()
        .unwrap();
    assert_eq!(
        (http.ca_bundle.as_deref(), http.ca_secret_ref),
        (Some(pem), None)
    );
}
