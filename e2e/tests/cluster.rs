//! The control plane end to end on the namespace lab: the API stand-in on the management
//! segment, `kube-vrrp controller` in the client namespace, `kube-vrrp agent` (cluster mode) on
//! nodes n1 and n2, kubectl as the user. Real raw sockets, real addresses, real processes.

use std::time::{Duration, Instant};

use kube_vrrp_e2e::standin::{Api, KUBE_VRRP_CRDS};
use kube_vrrp_e2e::{AGENT_STATUS, wait_for};
use serde_json::Value;

const SAMPLE: &str = include_str!("../../config/web-vip.yaml");
const VIP4: &str = "198.51.100.50";
const VIP6: &str = "2001:db8:1::50";

/// The stand-in, two nodes with agents, one controller, every agent registered.
fn cluster() -> Api {
    cluster_with_pid().0
}

/// As [`cluster`], also returning the controller's pid.
fn cluster_with_pid() -> (Api, u32) {
    let (api, controller, _) = cluster_of(2);
    (api, controller)
}

/// `lab_nodes` lab nodes, of which n1 and n2 are the cluster (agents heartbeat every 1 s);
/// returns the controller's and the agents' pids.
fn cluster_of(lab_nodes: usize) -> (Api, u32, [u32; 2]) {
    let mut api = Api::start_lab(lab_nodes, KUBE_VRRP_CRDS, &[]);
    assert!(
        !api.external,
        "these tests run agents in lab namespaces: they need the stand-in"
    );
    api.add_some_nodes(&["n1", "n2"]);
    let controller = api.spawn_controller("c1", 9651);
    let agents = [api.spawn_cluster_agent("n1"), api.spawn_cluster_agent("n2")];
    api.wait_registered(&["n1", "n2"]);
    (api, controller, agents)
}

fn vip(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

fn master(v: &Value) -> Option<&str> {
    v["status"]["master"].as_str()
}

fn phase(v: &Value) -> Option<&str> {
    v["status"]["phase"].as_str()
}

fn entry<'a>(v: &'a Value, node: &str) -> Option<&'a Value> {
    v["status"]["nodes"]
        .as_array()?
        .iter()
        .find(|e| e["node"] == node)
}

fn condition<'a>(v: &'a Value, type_: &str) -> Option<&'a Value> {
    v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn apply(api: &Api, yaml: &str) {
    let out = api.apply(yaml, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until exactly `node` holds `address` among the lab nodes.
fn wait_held(api: &Api, address: &str, node: &str, timeout: Duration) -> Duration {
    let took = wait_for(timeout, || {
        api.lab.holders(address) == vec![node.to_string()]
    });
    took.unwrap_or_else(|| {
        panic!(
            "{address} not held by {node} alone after {timeout:?} (holders {:?})\n{}",
            api.lab.holders(address),
            api.logs()
        )
    })
}

/// Waits until `node` holds `address` (whoever else still does: a crashed master keeps it);
/// returns how long that took, or panics with the logs.
fn wait_takes(api: &Api, node: &str, address: &str, timeout: Duration) -> Duration {
    let ns = api.lab.node(node).ns.clone();
    wait_for(timeout, || api.lab.holds(&ns, address))
        .unwrap_or_else(|| panic!("{node} did not take over {address}\n{}", api.logs()))
}

/// The agent's last transition of an instance (from its /status): unchanged means no move.
fn transitions(api: &Api, node: &str, instance: &str) -> Value {
    let ns = api.lab.node(node).ns.clone();
    let body = api
        .lab
        .http_get(&ns, AGENT_STATUS.parse().unwrap(), "/status")
        .unwrap_or_else(|e| panic!("agent on {node}: {e}"));
    let v: Value = serde_json::from_str(&body).unwrap();
    let i = &v["instances"][instance];
    assert!(i.is_object(), "{node} does not run {instance}: {v}");
    i["lastTransition"].clone()
}

/// Lists Events about `name` as (reason, note).
fn events(api: &Api, name: &str) -> Vec<(String, String)> {
    let v = api.json(&["get", "events.events.k8s.io", "-n", "default"]);
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["regarding"]["name"] == name)
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["note"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn apply_binds_on_the_highest_priority_node_follows_priority_changes_and_deletes() {
    let api = cluster();
    apply(&api, SAMPLE);
    wait_held(&api, VIP4, "n1", Duration::from_secs(10));
    wait_held(&api, VIP6, "n1", Duration::from_secs(10));
    let v = api.wait_vip(
        "web",
        Duration::from_secs(10),
        "Ready with master n1",
        |v| master(v) == Some("n1") && phase(v) == Some("Ready"),
    );
    assert_eq!(v["status"]["virtualRouterID"], 51);
    assert_eq!(
        v["status"]["observedGeneration"],
        v["metadata"]["generation"]
    );
    let n1 = entry(&v, "n1").expect("n1 reports");
    assert_eq!(n1["state"], "Master");
    assert_eq!(n1["priority"], 200);
    assert!(
        n1["reason"].as_str().unwrap().contains("master down timer")
            || n1["reason"].as_str().unwrap().contains("preempt"),
        "{n1}"
    );
    let n2 = entry(&v, "n2").expect("n2 reports");
    assert_eq!(
        (n2["state"].as_str(), n2["priority"].as_u64()),
        (Some("Backup"), Some(150))
    );
    for t in ["Ready", "Programmed"] {
        assert_eq!(condition(&v, t).unwrap()["status"], "True", "{t}: {v}");
    }
    for t in ["VRIDConflict", "SplitBrain"] {
        assert_eq!(condition(&v, t).unwrap()["status"], "False", "{t}: {v}");
    }
    // What the user sees.
    let table = api.ok(&["get", "virtualips"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..6],
        [
            "web",
            "198.51.100.50/24,2001:db8:1::50/64",
            "51",
            "n1",
            "Ready",
            "n1=Master(200),n2=Backup(150)"
        ],
        "{table}"
    );
    assert!(
        events(&api, "web")
            .iter()
            .any(|(r, n)| r == "MasterChanged" && n.starts_with("n1 is master")),
        "{:?}",
        events(&api, "web")
    );

    // n1 lower but still first: changed in place, nothing moves.
    let before = transitions(&api, "n1", "web/ipv4");
    api.ok(&[
        "patch",
        "virtualip",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"priorities":[{"node":"n1","priority":190},{"node":"n2","priority":150}]}}"#,
    ]);
    api.wait_vip("web", Duration::from_secs(10), "n1 at 190", |v| {
        entry(v, "n1").is_some_and(|e| e["priority"] == 190 && e["effectivePriority"] == 190)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(api.lab.holders(VIP4), vec!["n1".to_string()]);
    assert_eq!(
        transitions(&api, "n1", "web/ipv4"),
        before,
        "n1 did not move"
    );

    // n2 outranks n1 now: it preempts, and the status follows.
    api.ok(&[
        "patch",
        "virtualip",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"priorities":[{"node":"n1","priority":200},{"node":"n2","priority":250}]}}"#,
    ]);
    wait_held(&api, VIP4, "n2", Duration::from_secs(10));
    wait_held(&api, VIP6, "n2", Duration::from_secs(10));
    api.wait_vip("web", Duration::from_secs(10), "master n2", |v| {
        master(v) == Some("n2")
            && phase(v) == Some("Ready")
            && v["status"]["observedGeneration"] == v["metadata"]["generation"]
            && entry(v, "n2").is_some_and(|e| e["priority"] == 250 && e["state"] == "Master")
            && entry(v, "n1").is_some_and(|e| e["state"] == "Backup")
    });
    // (Usually "n2 took over from n1"; "n2 is master" when a report of n1 stepping down
    // arrived first.)
    assert!(
        events(&api, "web").iter().any(|(r, n)| r == "MasterChanged"
            && (n.starts_with("n2 took over from n1") || n.starts_with("n2 is master"))
            && n.contains("preempting lower priority 200")),
        "{:?}",
        events(&api, "web")
    );

    // Delete: the finalizer holds the object until every node released the addresses.
    let out = api.kubectl(&["delete", "virtualip", "web", "--wait=true", "--timeout=20s"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        api.logs()
    );
    assert!(api.get_json("virtualip", "web").is_none());
    for a in [VIP4, VIP6] {
        assert_eq!(api.lab.holders(a), Vec::<String>::new(), "{a} still bound");
    }
    for n in ["n1", "n2"] {
        let c = api.get_json("virtualipnodeconfig", n).unwrap();
        assert_eq!(c["spec"]["virtualIPs"], serde_json::json!([]), "{c}");
    }
}

#[test]
fn a_cut_link_fails_over_and_status_and_an_event_say_so() {
    let api = cluster();
    apply(&api, SAMPLE);
    wait_held(&api, VIP4, "n1", Duration::from_secs(10));
    api.wait_vip("web", Duration::from_secs(10), "master n1", |v| {
        master(v) == Some("n1") && phase(v) == Some("Ready")
    });
    let cut = Instant::now();
    api.lab.set_link(api.lab.node("n1"), false);
    let failover = wait_takes(&api, "n2", VIP4, Duration::from_secs(5));
    eprintln!("n1's link cut: n2 holds {VIP4} after {failover:?} (the figure is failover-bench's)");
    let v = api.wait_vip("web", Duration::from_secs(10), "master n2, n1 Fault", |v| {
        master(v) == Some("n2") && entry(v, "n1").is_some_and(|e| e["state"] == "Fault")
    });
    assert_eq!(phase(&v), Some("Degraded"), "{v}");
    let ready = condition(&v, "Ready").unwrap();
    assert!(
        ready["message"].as_str().unwrap().contains("n1 is Fault"),
        "{ready}"
    );
    // n1 faults (and lets go) at once; n2 takes over one Master_Down_Interval later. The
    // status and the Events tell both steps, each with its reason.
    let ev = events(&api, "web");
    assert!(
        ev.iter().any(|(r, n)| r == "NoMaster"
            && n.starts_with("n1 is no longer master")
            && n.contains("n1 is Fault: fault: interface eth0 down")),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|(r, n)| r == "MasterChanged"
            && n.starts_with("n2 is master: master down timer expired")),
        "{ev:?}"
    );
    eprintln!(
        "link cut → n2 holds {VIP4}: {:?}; status master n2 after {:?}",
        failover,
        cut.elapsed()
    );

    api.lab.set_link(api.lab.node("n1"), true);
    wait_held(&api, VIP4, "n1", Duration::from_secs(10));
    api.wait_vip(
        "web",
        Duration::from_secs(10),
        "master n1 again, Ready",
        |v| master(v) == Some("n1") && phase(v) == Some("Ready"),
    );
}

#[test]
fn with_the_api_paused_vrrp_still_fails_over_and_status_catches_up() {
    let api = cluster();
    apply(&api, SAMPLE);
    wait_held(&api, VIP4, "n1", Duration::from_secs(10));
    api.wait_vip("web", Duration::from_secs(10), "master n1", |v| {
        master(v) == Some("n1")
    });
    api.control("/_standin/fault", r#"{"mode": "pause"}"#);
    let paused = Instant::now();
    api.lab.set_link(api.lab.node("n1"), false);
    // Order: n2 takes over while the API is still paused for 30 s (VRRP waits on nothing
    // else): wait_takes gives up after 5 s.
    let failover = wait_takes(&api, "n2", VIP4, Duration::from_secs(5));
    eprintln!("n2 took {VIP4} {failover:?} after the cut, the API paused");
    // The IPv6 instance fails over on its own timer: a few milliseconds apart.
    wait_takes(&api, "n2", VIP6, Duration::from_secs(2));
    // The API stays away for 30 s in all.
    std::thread::sleep(Duration::from_secs(30).saturating_sub(paused.elapsed()));
    api.control("/_standin/fault", r#"{"mode": "none"}"#);
    let resumed = Instant::now();
    api.wait_vip(
        "web",
        Duration::from_secs(20),
        "master n2 after the outage",
        |v| {
            master(v) == Some("n2")
                && entry(v, "n2").is_some_and(|e| e["state"] == "Master")
                && entry(v, "n1").is_some_and(|e| e["state"] == "Fault")
        },
    );
    eprintln!(
        "API paused: failover in {failover:?}; status caught up {:?} after the API came back",
        resumed.elapsed()
    );
}

#[test]
fn restarting_or_replacing_the_controller_moves_no_vip() {
    let (mut api, c1) = cluster_with_pid();
    let standby = api.spawn_controller("c2", 9652);
    apply(&api, SAMPLE);
    wait_held(&api, VIP4, "n1", Duration::from_secs(10));
    api.wait_vip("web", Duration::from_secs(10), "Ready", |v| {
        phase(v) == Some("Ready")
    });
    let leaders = |api: &Api| -> Vec<u16> {
        [9651u16, 9652]
            .into_iter()
            .filter(|p| {
                api.lab
                    .http_get(
                        &api.lab.client.ns,
                        format!("127.0.0.1:{p}").parse().unwrap(),
                        "/metrics",
                    )
                    .is_ok_and(|m| m.lines().any(|l| l == "kube_vrrp_controller_leader 1"))
            })
            .collect()
    };
    let led = wait_for(Duration::from_secs(5), || leaders(&api) == vec![9651]);
    // The controller's exposition passes Prometheus' linter.
    let metrics = api
        .lab
        .http_get(
            &api.lab.client.ns,
            "127.0.0.1:9651".parse().unwrap(),
            "/metrics",
        )
        .unwrap();
    kube_vrrp_e2e::promtool_check(&metrics).unwrap();
    assert!(
        led.is_some(),
        "c1 started first and leads, c2 stands by: {:?}\n{}\n{}",
        leaders(&api),
        api.ok(&[
            "get",
            "lease",
            "-n",
            kube_vrrp_e2e::standin::RELEASE_NAMESPACE,
            "-o",
            "yaml"
        ]),
        api.logs()
    );
    let config_versions = |api: &Api| -> Vec<Value> {
        ["n1", "n2"]
            .iter()
            // The generation moves with the spec only (the agents' heartbeats touch status).
            .map(|n| {
                api.get_json("virtualipnodeconfig", n).unwrap()["metadata"]["generation"].clone()
            })
            .collect()
    };
    let before = config_versions(&api);
    let t1 = transitions(&api, "n1", "web/ipv4");
    let t2 = transitions(&api, "n2", "web/ipv4");
    let prober = kube_vrrp_e2e::Prober::start(
        &api.lab.client.ns.clone(),
        VIP4.parse().unwrap(),
        Duration::from_millis(10),
    );

    // The leader crashes: the standby takes over once the 5 s lease runs out.
    api.lab.signal(c1, nix::sys::signal::Signal::SIGKILL);
    let took = wait_for(Duration::from_secs(15), || leaders(&api) == vec![9652])
        .unwrap_or_else(|| panic!("c2 did not take over\n{}", api.logs()));
    eprintln!("standby leads {took:?} after the leader was killed");
    // A new replica replaces the killed one; then the leader stops gracefully and hands over.
    api.spawn_controller("c3", 9651);
    std::thread::sleep(Duration::from_secs(2));
    api.lab.signal(standby, nix::sys::signal::Signal::SIGTERM);
    wait_for(Duration::from_secs(10), || leaders(&api) == vec![9651])
        .unwrap_or_else(|| panic!("c3 did not take over\n{}", api.logs()));
    // Give the new leader time to run its pipeline, then change something to prove it acts.
    std::thread::sleep(Duration::from_secs(2));
    let outage = prober.stop();
    assert_eq!(
        outage.lost, 0,
        "probes lost while controllers changed: {outage:?}"
    );
    assert_eq!(api.lab.holders(VIP4), vec!["n1".to_string()]);
    assert_eq!(
        config_versions(&api),
        before,
        "no configuration was rewritten"
    );
    assert_eq!(transitions(&api, "n1", "web/ipv4"), t1);
    assert_eq!(transitions(&api, "n2", "web/ipv4"), t2);
    let v = api.get_json("virtualip", "web").unwrap();
    assert_eq!((master(&v), phase(&v)), (Some("n1"), Some("Ready")));
    // The new leader does act.
    apply(
        &api,
        &vip(
            "extra",
            "  addresses: [\"198.51.100.60/24\"]\n  advertInterval: 100ms\n  priorities: [{node: n2, priority: 200}]\n",
        ),
    );
    wait_held(&api, "198.51.100.60", "n2", Duration::from_secs(10));
    api.wait_vip("extra", Duration::from_secs(10), "master n2", |v| {
        master(v) == Some("n2")
    });
}

#[test]
fn two_virtualips_with_one_vrid_on_a_segment_conflict_and_nothing_flaps() {
    let api = cluster();
    apply(&api, SAMPLE);
    wait_held(&api, VIP4, "n1", Duration::from_secs(10));
    api.wait_vip("web", Duration::from_secs(10), "Ready", |v| {
        phase(v) == Some("Ready")
    });
    let t1 = transitions(&api, "n1", "web/ipv4");
    std::thread::sleep(Duration::from_millis(500));
    apply(
        &api,
        &vip(
            "copycat",
            "  addresses: [\"198.51.100.70/24\"]\n  virtualRouterID: 51\n  advertInterval: 100ms\n",
        ),
    );
    let v = api.wait_vip("copycat", Duration::from_secs(10), "Conflict", |v| {
        phase(v) == Some("Conflict")
    });
    let c = condition(&v, "VRIDConflict").unwrap();
    assert_eq!(c["status"], "True");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("virtual router ID 51")
            && c["message"].as_str().unwrap().contains("\"web\""),
        "{c}"
    );
    assert!(
        events(&api, "copycat")
            .iter()
            .any(|(r, _)| r == "VRIDConflict")
    );
    // Nothing moves: the older object keeps running, the newer is never deployed.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(api.lab.holders("198.51.100.70"), Vec::<String>::new());
    assert_eq!(api.lab.holders(VIP4), vec!["n1".to_string()]);
    assert_eq!(transitions(&api, "n1", "web/ipv4"), t1);
    let web = api.get_json("virtualip", "web").unwrap();
    assert_eq!((master(&web), phase(&web)), (Some("n1"), Some("Ready")));
    // Fixing the VRID deploys it.
    api.ok(&[
        "patch",
        "virtualip",
        "copycat",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"virtualRouterID":52}}"#,
    ]);
    // Equal priorities: whichever node is master first keeps it (a backup never preempts an
    // equal priority).
    wait_for(Duration::from_secs(10), || {
        api.lab.holders("198.51.100.70").len() == 1
    })
    .unwrap_or_else(|| panic!("copycat not deployed\n{}", api.logs()));
    api.wait_vip("copycat", Duration::from_secs(10), "Ready", |v| {
        phase(v) == Some("Ready")
    });
}

#[test]
fn a_nodes_address_is_refused_and_a_deleted_objects_address_waits_until_released() {
    let api = cluster();
    // A node's own address: refused for every node, with the reason, and bound nowhere.
    let n1 = api.lab.node("n1").ipv4.clone();
    apply(
        &api,
        &vip("steals-n1", &format!("  addresses: [\"{n1}/24\"]\n")),
    );
    let v = api.wait_vip("steals-n1", Duration::from_secs(10), "NodeAddress", |v| {
        condition(v, "Ready").is_some_and(|c| c["reason"] == "NodeAddress")
    });
    assert_eq!(phase(&v), Some("Conflict"));
    let msg = condition(&v, "Ready").unwrap()["message"].as_str().unwrap();
    assert_eq!(
        msg,
        format!(
            "{n1} is the InternalIP of node n1: a virtual address must not be a node's own address"
        )
    );
    for n in ["n1", "n2"] {
        let c = api.get_json("virtualipnodeconfig", n).unwrap();
        assert!(
            c["spec"]["virtualIPs"]
                .as_array()
                .is_none_or(|e| e.iter().all(|e| e["name"] != "steals-n1")),
            "{c}"
        );
    }
    assert!(!api.lab.holds(&api.lab.node("n2").ns, &n1));
    api.ok(&["delete", "virtualip", "steals-n1"]);

    // Two objects on one address: the newer waits. Deleting both (as `kubectl delete --all`
    // does) must not start the newer on the older's VRID and address while a node still runs
    // the older, and must leave the address bound nowhere.
    const ADDR: &str = "198.51.100.90";
    apply(
        &api,
        &vip(
            "first",
            &format!("  addresses: [\"{ADDR}/24\"]\n  advertInterval: 100ms\n"),
        ),
    );
    api.wait_vip("first", Duration::from_secs(10), "Ready", |v| {
        phase(v) == Some("Ready")
    });
    apply(
        &api,
        &vip(
            "second",
            &format!("  addresses: [\"{ADDR}/24\"]\n  advertInterval: 100ms\n"),
        ),
    );
    api.wait_vip("second", Duration::from_secs(10), "DuplicateAddress", |v| {
        condition(v, "Ready").is_some_and(|c| c["reason"] == "DuplicateAddress")
    });
    api.ok(&["delete", "virtualip", "first", "--wait=false"]);
    // While a node still runs "first", no node is given "second".
    let mut seen_first = 0;
    let gone = wait_for(Duration::from_secs(20), || {
        let all = api.json(&["get", "virtualips,virtualipnodeconfigs", "-o", "json"]);
        let items = all["items"].as_array().cloned().unwrap_or_default();
        let first = items
            .iter()
            .find(|i| i["kind"] == "VirtualIP" && i["metadata"]["name"] == "first");
        // Still run by a node: some node still reports it.
        let running = first.is_some_and(|f| {
            f["status"]["nodes"]
                .as_array()
                .is_some_and(|n| !n.is_empty())
        });
        let second_deployed = items.iter().any(|i| {
            i["kind"] == "VirtualIPNodeConfig"
                && i["spec"]["virtualIPs"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|e| e["name"] == "second"))
        });
        if running {
            seen_first += 1;
            assert!(
                !second_deployed,
                "\"second\" was given to a node while \"first\" still runs:\n{all:#}"
            );
        }
        first.is_none()
    });
    assert!(gone.is_some(), "\"first\" never released\n{}", api.logs());
    assert!(seen_first > 0);
    let v = api.wait_vip("second", Duration::from_secs(10), "Ready", |v| {
        phase(v) == Some("Ready")
    });
    assert_eq!(api.lab.holders(ADDR).len(), 1, "{v:#}");
    api.ok(&["delete", "virtualips", "--all"]);
    wait_for(Duration::from_secs(15), || api.lab.holders(ADDR).is_empty())
        .unwrap_or_else(|| panic!("{ADDR} still bound after delete --all\n{}", api.logs()));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(api.lab.holders(ADDR), Vec::<String>::new());
}

#[test]
fn invalid_objects_are_rejected_or_reported_with_the_reason() {
    let mut api = cluster();
    // The schema refuses what can never work.
    let out = api.apply(&vip("bad", "  addresses: [\"198.51.100.50/24\"]\n  version: 3\n  authentication: {password: secret}\n"), &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("authentication exists only in VRRPv2"));
    // A Secret where the chart lets the controller read none: the status says which value
    // of the chart to change (the stand-in enforces the chart's RBAC).
    if api.rbac.is_some() {
        api.expected_denials
            .push("secrets \"vrrp\" is forbidden".into());
        apply(
            &api,
            &vip(
                "v2",
                "  addresses: [\"198.51.100.80/24\"]\n  version: 2\n  authentication:\n    passwordSecretRef: {name: vrrp, namespace: default, key: password}\n",
            ),
        );
        let v = api.wait_vip("v2", Duration::from_secs(10), "refused the Secret", |v| {
            condition(v, "Ready").is_some_and(|c| c["reason"] == "Invalid")
        });
        let msg = condition(&v, "Ready").unwrap()["message"].as_str().unwrap();
        assert!(
            msg.contains("may not read Secrets in namespace \"default\"")
                && msg.contains("controller.secretNamespaces"),
            "{msg}"
        );
    }
    // A Secret that is missing is reported in the status, and nothing runs.
    apply(
        &api,
        &vip(
            "v2",
            "  addresses: [\"198.51.100.80/24\"]\n  version: 2\n  authentication:\n    passwordSecretRef: {name: vrrp, namespace: kube-vrrp-system, key: password}\n",
        ),
    );
    let v = api.wait_vip(
        "v2",
        Duration::from_secs(10),
        "Pending for the Secret",
        |v| {
            condition(v, "Ready").is_some_and(|c| {
                c["reason"] == "Invalid"
                    && c["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("kube-vrrp-system"))
            })
        },
    );
    // Nothing of it ever ran: Invalid (an edit of a running object keeps the last good one).
    assert_eq!(phase(&v), Some("Invalid"));
    assert_eq!(condition(&v, "ConfigValid").unwrap()["status"], "False");
    let msg = condition(&v, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("Secret kube-vrrp-system/vrrp not found"),
        "{msg}"
    );
    assert_eq!(api.lab.holders("198.51.100.80"), Vec::<String>::new());
    // Once it exists, the password travels to the nodes and VRRPv2 runs with it.
    // (base64 of "s3cret"; kubectl's `create secret` speaks protobuf, which the stand-in does not.)
    apply(
        &api,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: vrrp, namespace: kube-vrrp-system}\ndata: {password: czNjcmV0}\n",
    );
    // The controller reads Secrets on its resync; touching the object triggers a pass at once.
    api.ok(&["annotate", "virtualip", "v2", "touch=1"]);
    wait_for(Duration::from_secs(40), || {
        api.lab.holders("198.51.100.80").len() == 1
    })
    .unwrap_or_else(|| panic!("v2 not deployed\n{}", api.logs()));
    let c = api.get_json("virtualipnodeconfig", "n1").unwrap();
    assert_eq!(
        c["spec"]["virtualIPs"][0]["spec"]["authentication"]["password"],
        "s3cret"
    );
}

#[test]
fn a_foreign_router_on_the_vrid_is_reported_as_a_conflict() {
    // n3 is not in the cluster: a hand-run keepalived that someone gave VRID 51 too.
    let (mut api, _, _) = cluster_of(3);
    apply(&api, SAMPLE);
    wait_held(&api, VIP4, "n1", Duration::from_secs(10));
    api.wait_vip("web", Duration::from_secs(10), "Ready", |v| {
        phase(v) == Some("Ready")
    });
    let keepalived = api.lab.spawn_keepalived(
        "n3",
        "global_defs {\n    router_id foreign\n    vrrp_version 3\n}\n\
         vrrp_instance FOREIGN {\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n    \
         priority 254\n    advert_int 0.1\n    virtual_ipaddress {\n        198.51.100.99/24\n    }\n}\n",
    );
    let v = api.wait_vip(
        "web",
        Duration::from_secs(15),
        "Conflict from the wire",
        |v| phase(v) == Some("Conflict"),
    );
    let c = condition(&v, "VRIDConflict").unwrap();
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("True"), Some("ForeignRouter")),
        "{c}"
    );
    let msg = c["message"].as_str().unwrap();
    assert!(
        msg.contains("198.51.100.13 advertises virtual router 51 with other addresses"),
        "{msg}"
    );
    assert!(
        events(&api, "web")
            .iter()
            .any(|(r, _)| r == "ForeignRouter"),
        "{:?}",
        events(&api, "web")
    );
    // keepalived (254) outranks both nodes: they stand back, and the status says so too.
    let n1 = entry(&v, "n1").unwrap();
    assert!(n1["conflict"].as_str().is_some(), "{n1}");
    // Once the foreign router is gone (and silent for 10 s), the conflict clears and n1 is
    // master again.
    api.lab
        .signal(keepalived, nix::sys::signal::Signal::SIGTERM);
    wait_held(&api, VIP4, "n1", Duration::from_secs(5));
    let v = api.wait_vip("web", Duration::from_secs(25), "Ready again", |v| {
        phase(v) == Some("Ready") && master(v) == Some("n1")
    });
    assert_eq!(
        condition(&v, "VRIDConflict").unwrap()["status"],
        "False",
        "{v}"
    );
}

#[test]
fn a_crashed_node_is_not_believed_once_its_agent_falls_silent() {
    let (mut api, _, [n1_agent, _]) = cluster_of(2);
    apply(&api, SAMPLE);
    wait_held(&api, VIP4, "n1", Duration::from_secs(10));
    api.wait_vip("web", Duration::from_secs(10), "Ready", |v| {
        phase(v) == Some("Ready")
    });
    // The node dies: its agent stops mid-sentence and its link goes.
    api.lab.signal(n1_agent, nix::sys::signal::Signal::SIGKILL);
    api.lab.set_link(api.lab.node("n1"), false);
    wait_takes(&api, "n2", VIP4, Duration::from_secs(5));
    // From n2's report on, n1 is not shown as master: n2 took over because n1's
    // advertisements stopped (before, "n1=Master(200),n2=Master(150)" stood until n1's
    // heartbeat was late, about 3 s).
    let v = api.wait_vip("web", Duration::from_secs(5), "master n2", |v| {
        master(v) == Some("n2")
    });
    let summary = v["status"]["summary"].as_str().unwrap_or_default();
    if entry(&v, "n1").is_some_and(|e| e["state"] == "Master") && !summary.contains("n1=Silent") {
        assert!(summary.contains("n1=Unheard"), "{v:#}");
        assert_eq!(phase(&v), Some("Degraded"), "{v:#}");
    }
    assert!(!summary.contains("n1=Master"), "{v:#}");
    // n1's last word was "Master": believed, that would be a split brain. After three missed
    // heartbeats (1 s here) it is not believed any more.
    let v = api.wait_vip(
        "web",
        Duration::from_secs(20),
        "master n2, n1 silent",
        |v| {
            master(v) == Some("n2")
                && condition(v, "Ready").is_some_and(|c| {
                    c["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("n1's agent has been silent")
                })
        },
    );
    assert_eq!(phase(&v), Some("Degraded"), "{v}");
    assert_eq!(
        entry(&v, "n1").unwrap()["state"],
        "Master",
        "the stale entry stays, unbelieved"
    );
    assert_eq!(condition(&v, "SplitBrain").unwrap()["status"], "False");
}

#[test]
fn a_rolling_agent_restart_hands_over_without_loss_and_comes_back() {
    let (mut api, _, [n1_agent, _]) = cluster_of(2);
    apply(&api, SAMPLE);
    wait_held(&api, VIP4, "n1", Duration::from_secs(10));
    api.wait_vip("web", Duration::from_secs(10), "Ready", |v| {
        phase(v) == Some("Ready")
    });
    let prober = kube_vrrp_e2e::Prober::start(
        &api.lab.client.ns.clone(),
        VIP4.parse().unwrap(),
        Duration::from_millis(10),
    );
    std::thread::sleep(Duration::from_millis(300));
    // A DaemonSet rolling update: SIGTERM. The agent sends priority 0, keeps the addresses
    // until n2's first advertisement, and withdraws its status entries before it exits.
    api.lab.signal(n1_agent, nix::sys::signal::Signal::SIGTERM);
    wait_held(&api, VIP4, "n2", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let outage = prober.stop();
    assert_eq!(
        outage.lost, 0,
        "probes lost in a graceful handover: {outage:?}"
    );
    let v = api.wait_vip("web", Duration::from_secs(10), "master n2, n1 gone", |v| {
        master(v) == Some("n2") && entry(v, "n1").is_none()
    });
    assert_eq!(phase(&v), Some("Degraded"), "{v}");
    assert!(
        condition(&v, "Ready").unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("no report from n1"),
        "{v}"
    );
    // The new pod starts: n1 (200) preempts n2 (150) again and the status is whole.
    api.spawn_cluster_agent("n1");
    wait_held(&api, VIP4, "n1", Duration::from_secs(10));
    api.wait_vip("web", Duration::from_secs(10), "Ready on n1", |v| {
        master(v) == Some("n1")
            && phase(v) == Some("Ready")
            && entry(v, "n2").is_some_and(|e| e["state"] == "Backup")
    });
}

/// A bad edit never withdraws a working VIP: an interface no node has keeps the last good
/// configuration running on every node, each node's entry says why; fixing it runs the new one.
#[test]
fn a_bad_edit_keeps_the_last_good_configuration_running() {
    let api = cluster();
    apply(&api, SAMPLE);
    wait_held(&api, VIP4, "n1", Duration::from_secs(10));
    api.wait_vip("web", Duration::from_secs(10), "Ready", |v| {
        phase(v) == Some("Ready")
    });
    // An interface that exists on no node.
    api.ok(&[
        "patch",
        "virtualip",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"interface":"bond0"}}"#,
    ]);
    let v = api.wait_vip(
        "web",
        Duration::from_secs(15),
        "both nodes say the edit cannot run",
        |v| {
            ["n1", "n2"].iter().all(|n| {
                entry(v, n).is_some_and(|e| {
                    e["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("\"bond0\" does not exist"))
                })
            })
        },
    );
    // Still running: n1 holds the VIP, n2 stands by, the status says master n1.
    assert_eq!(master(&v), Some("n1"), "{v}");
    assert_eq!(entry(&v, "n1").unwrap()["state"], "Master", "{v}");
    assert!(
        entry(&v, "n1").unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("last good configuration keeps running"),
        "{v}"
    );
    assert_eq!(api.lab.holders(VIP4), ["n1"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        api.lab.holders(VIP4),
        ["n1"],
        "the VIP moved after a bad edit"
    );
    // Fixed: the configuration runs again as written, and the reasons are gone.
    api.ok(&[
        "patch",
        "virtualip",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/interface"}]"#,
    ]);
    api.wait_vip("web", Duration::from_secs(15), "reasons cleared", |v| {
        entry(v, "n1").is_some_and(|e| e["reason"].as_str().is_some_and(|r| !r.contains("bond0")))
            && phase(v) == Some("Ready")
    });
    assert_eq!(api.lab.holders(VIP4), ["n1"]);
}

/// Health in a cluster: a failing check shows in `status.nodes[]` and in the Failing column,
/// an `exec` check on an agent without `--allow-exec` is refused with the reason, and a
/// cordoned master (the VirtualIP asks for it) hands over with no lost probe.
#[test]
fn checks_show_in_the_status_exec_needs_the_allowlist_and_a_cordoned_master_hands_over() {
    let mut api = Api::start_lab(2, KUBE_VRRP_CRDS, &[]);
    api.add_some_nodes(&["n1", "n2"]);
    api.spawn_controller("c1", 9651);
    // n1 allows /usr/bin/true; n2 allows nothing. A real nginx answers on n1 only.
    api.spawn_cluster_agent_with("n1", &["--allow-exec", "/usr/bin/true"]);
    api.spawn_cluster_agent("n2");
    api.wait_registered(&["n1", "n2"]);
    api.lab.spawn_nginx("n1", 8080, None);
    let spec = SAMPLE.split("spec:\n").nth(1).unwrap();
    let yaml = vip(
        "web",
        &format!(
            "{spec}  leaveCordonedNodes: true\n  healthChecks:\n  \
             - {{name: app, interval: 200ms, weight: -100, http: {{port: 8080}}}}\n  \
             - {{name: probe, interval: 200ms, exec: {{command: [/usr/bin/true]}}}}\n"
        ),
    );
    apply(&api, &yaml);
    wait_held(&api, VIP4, "n1", Duration::from_secs(10));
    let v = api.wait_vip(
        "web",
        Duration::from_secs(10),
        "n2's checks reported",
        |v| v["status"]["failing"] == "n2:app,n2:probe",
    );
    let n2 = entry(&v, "n2").unwrap();
    let check = |e: &Value, name: &str| {
        e["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no check {name}: {e}"))
    };
    let app = check(n2, "app");
    assert_eq!(
        (
            app["healthy"].as_bool(),
            app["result"].as_str(),
            app["contribution"].as_i64()
        ),
        (Some(false), Some("connection refused"), Some(-100)),
        "{app}"
    );
    assert_eq!(n2["effectivePriority"], 50, "{n2}");
    let refused = check(n2, "probe")["result"].as_str().unwrap().to_string();
    assert!(
        refused.starts_with("refused: /usr/bin/true") && refused.contains("--allow-exec"),
        "{refused}"
    );
    let n1 = entry(&v, "n1").unwrap();
    assert_eq!(check(n1, "probe")["healthy"], true, "{n1}");
    assert!(
        check(n1, "app")["result"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 200"),
        "{n1}"
    );
    assert_eq!(phase(&v), Some("Degraded"), "{v}");
    let ready = condition(&v, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        ready.contains("n2 check app failing (-100): connection refused"),
        "{ready}"
    );
    // The column, as kubectl shows it.
    let out = api.kubectl(&["get", "virtualips"]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(table.lines().next().unwrap().contains("FAILING"), "{table}");
    assert!(table.contains("n2:app,n2:probe"), "{table}");

    // Cordon the master: it hands over (priority 0, addresses kept until n2 is heard).
    let prober = kube_vrrp_e2e::Prober::start(
        &api.lab.client.ns.clone(),
        VIP4.parse().unwrap(),
        Duration::from_millis(10),
    );
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let out = api.kubectl(&["cordon", "n1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_held(&api, VIP4, "n2", Duration::from_secs(10));
    let moved = t0.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let outage = prober.stop();
    println!(
        "{}",
        serde_json::json!({"scenario": "cordon the master", "moved_ms": moved.as_millis() as u64, "lost": outage.lost, "sent": outage.sent})
    );
    assert_eq!(
        outage.lost, 0,
        "probes lost while a cordoned master handed over: {outage:?}"
    );
    let v = api.wait_vip(
        "web",
        Duration::from_secs(10),
        "n2 master, n1 drained",
        |v| master(v) == Some("n2") && entry(v, "n1").is_some_and(|e| e["state"] == "Fault"),
    );
    let ready = condition(&v, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ready.contains("node n1 is cordoned"), "{ready}");
    // n1 takes none while cordoned, and takes it back once uncordoned (200 > 50).
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(api.lab.holders(VIP4), ["n2"]);
    // kubectl describe shows the Events (it reads core/v1 Events by involvedObject; the
    // controller writes events.k8s.io/v1: one store, as the API server has).
    let ok = wait_for(Duration::from_secs(10), || {
        let out = api.kubectl(&["describe", "virtualip", "web"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.contains("Events:") && text.contains("MasterChanged") && text.contains("n2")
    });
    assert!(
        ok.is_some(),
        "{}",
        String::from_utf8_lossy(&api.kubectl(&["describe", "virtualip", "web"]).stdout)
    );
    let out = api.kubectl(&["uncordon", "n1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_held(&api, VIP4, "n1", Duration::from_secs(10));
}

/// A virtual server in the cluster whose real servers are the Nodes a selector matches: they
/// follow the labels, the master's count of real servers up is the `Servers` column, each
/// node's entry lists its real servers, and a real server that dies is a RealServerDown Event
/// naming it and why.
#[test]
fn a_virtual_servers_real_servers_follow_the_nodes_show_in_the_status_and_a_dead_one_is_an_event() {
    let (mut api, _, _) = cluster_of(3);
    let nginx = api.lab.spawn_nginx("n3", 80, None);
    // The real servers are the Nodes labelled role=web, n3 for now (a Node without an agent).
    api.add_some_nodes(&["n3"]);
    api.ok(&["label", "node", "n3", "role=web"]);
    apply(
        &api,
        &vip(
            "lb",
            "  addresses: [\"198.51.100.60/24\"]\n  advertInterval: 100ms\n  virtualServers:\n  - address: 198.51.100.60\n    port: 80\n    forwarding: FullNAT\n    realServerNodes: {nodeSelector: {role: web}}\n    check: {delayLoop: 200ms, connectTimeout: 100ms, retry: 0, http: {path: /}}\n",
        ),
    );
    let v = api.wait_vip("lb", Duration::from_secs(15), "1/1 up", |v| {
        v["status"]["servers"] == "1/1 up"
    });
    let master = master(&v).unwrap().to_string();
    let reals = &entry(&v, &master).unwrap()["virtualServers"][0]["realServers"][0];
    assert_eq!(
        (&reals["address"], &reals["healthy"], &reals["weight"]),
        (
            &Value::from("198.51.100.13:80"),
            &Value::from(true),
            &Value::from(1)
        ),
        "{v:#}"
    );
    let table = api.ok(&["get", "virtualip", "lb"]);
    assert!(
        table.lines().next().unwrap().contains("SERVERS") && table.contains("1/1 up"),
        "{table}"
    );
    // n2 gets the label: it joins (no web server there: down); n3 stays up.
    api.ok(&["label", "node", "n2", "role=web"]);
    let v = api.wait_vip("lb", Duration::from_secs(15), "1/2 up", |v| {
        v["status"]["servers"] == "1/2 up"
    });
    let reals = &entry(&v, &master).unwrap()["virtualServers"][0]["realServers"];
    assert_eq!(
        (
            &reals[0]["address"],
            &reals[1]["address"],
            &reals[1]["healthy"]
        ),
        (
            &Value::from("198.51.100.12:80"),
            &Value::from("198.51.100.13:80"),
            &Value::from(true)
        ),
        "{v:#}"
    );
    api.ok(&["label", "node", "n2", "role-"]);
    api.wait_vip("lb", Duration::from_secs(15), "1/1 up again", |v| {
        v["status"]["servers"] == "1/1 up"
    });
    api.lab
        .signal_tree(nginx, nix::sys::signal::Signal::SIGKILL);
    api.lab.signal(nginx, nix::sys::signal::Signal::SIGKILL);
    api.wait_vip("lb", Duration::from_secs(15), "0/1 up", |v| {
        v["status"]["servers"] == "0/1 up"
    });
    let down = wait_for(Duration::from_secs(10), || {
        events(&api, "lb").iter().any(|(r, note)| {
            r == "RealServerDown" && note.contains("198.51.100.13:80 of 198.51.100.60:80/TCP")
        })
    });
    assert!(down.is_some(), "{:?}\n{}", events(&api, "lb"), api.logs());
}

/// Established connections to one real server of n3, at a port (`ss` in n3's namespace:
/// the real server's own count, not ours).
fn established(api: &Api, port: u16) -> usize {
    let out = api.lab.exec(
        &api.lab.node("n3").ns,
        &[
            "ss",
            "-Htn",
            "state",
            "established",
            &format!("( sport = :{port} )"),
        ],
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// An operator drains one real server with `kubectl apply --server-side` of its weight alone:
/// realServers is a list-map keyed by address and port, so the other server (same address,
/// another port) and every other field stay; the status says drained, not up; the server's
/// established connections keep working and new ones go to the other; an apply without the
/// weight gives it back.
#[test]
fn a_real_server_is_drained_by_a_server_side_apply_of_its_weight_and_keeps_its_connections() {
    let (mut api, _, _) = cluster_of(3);
    api.lab.spawn_nginx("n3", 80, None);
    api.lab.spawn_nginx("n3", 8080, None);
    for n in ["n1", "n2"] {
        api.lab.exec(
            &api.lab.node(n).ns,
            &["sysctl", "-qw", "net.ipv4.ip_forward=1"],
        );
    }
    let spec = "  addresses: [\"198.51.100.61/24\"]\n  advertInterval: 100ms\n  virtualServers:\n  - address: 198.51.100.61\n    port: 80\n    forwarding: FullNAT\n    check: {delayLoop: 200ms, connectTimeout: 100ms, retry: 0, tcp: {}}\n    realServers:\n    - {address: 198.51.100.13}\n    - {address: 198.51.100.13, port: 8080, weight: 2}\n";
    let out = api.apply(&vip("lb", spec), &["--server-side"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    api.wait_vip("lb", Duration::from_secs(15), "2/2 up", |v| {
        v["status"]["servers"] == "2/2 up"
    });
    let v = api.wait_vip("lb", Duration::from_secs(15), "a master", |v| {
        master(v).is_some()
    });
    let master = master(&v).unwrap().to_string();
    wait_held(&api, "198.51.100.61", &master, Duration::from_secs(10));
    let target: std::net::SocketAddr = "198.51.100.61:80".parse().unwrap();
    let mut before = kube_vrrp_e2e::keep_alive(&api.lab.client.ns, target, 6);
    assert_eq!(
        before.len(),
        6,
        "{}\n{}",
        String::from_utf8_lossy(
            &api.lab
                .exec(&api.lab.node(&master).ns, &["nft", "-t", "list", "ruleset"])
                .stdout
        ),
        api.logs()
    );
    for s in &mut before {
        assert_eq!(kube_vrrp_e2e::ask(s).as_deref(), Ok("n3"));
    }
    let on_8080 = established(&api, 8080);
    assert!(
        on_8080 >= 1 && established(&api, 80) >= 1,
        "6 connections spread over both: {on_8080} on 8080"
    );

    // The drain: one entry, found by its keys (address and port), with weight 0.
    let drain = "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata:\n  name: lb\nspec:\n  virtualServers:\n  - address: 198.51.100.61\n    port: 80\n    realServers:\n    - {address: 198.51.100.13, port: 8080, weight: 0}\n";
    let out = api.apply(
        drain,
        &[
            "--server-side",
            "--field-manager=drain",
            "--force-conflicts",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = api.get_json("virtualip", "lb").unwrap();
    let reals = &v["spec"]["virtualServers"][0]["realServers"];
    assert_eq!(
        (
            reals.as_array().map(Vec::len),
            &reals[0]["weight"],
            &reals[1]["port"],
            &reals[1]["weight"],
            &v["spec"]["virtualServers"][0]["forwarding"],
        ),
        (
            Some(2),
            &Value::Null,
            &Value::from(8080),
            &Value::from(0),
            &Value::from("FullNAT")
        ),
        "{v:#}"
    );
    let v = api.wait_vip("lb", Duration::from_secs(15), "1/2 up, 1 drained", |v| {
        v["status"]["servers"] == "1/2 up, 1 drained"
    });
    let drained = &entry(&v, &master).unwrap()["virtualServers"][0]["realServers"][1];
    assert_eq!(
        (&drained["address"], &drained["drained"]),
        (&Value::from("198.51.100.13:8080"), &Value::from(true)),
        "{v:#}"
    );
    // Established connections stay, on the drained server too.
    for s in &mut before {
        assert_eq!(kube_vrrp_e2e::ask(s).as_deref(), Ok("n3"));
    }
    assert_eq!(
        established(&api, 8080),
        on_8080,
        "the drained server's connections stay"
    );
    // New connections go to the other server only.
    let mut after = kube_vrrp_e2e::keep_alive(&api.lab.client.ns, target, 6);
    assert_eq!(after.len(), 6);
    for s in &mut after {
        assert_eq!(kube_vrrp_e2e::ask(s).as_deref(), Ok("n3"));
    }
    assert_eq!(
        established(&api, 8080),
        on_8080,
        "no new connection on the drained server"
    );
    drop(after);
    drop(before);

    // Given back: the same manager applies the entry without a weight (the default, 1).
    let undrain = drain.replace(", weight: 0", "");
    let out = api.apply(&undrain, &["--server-side", "--field-manager=drain"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    api.wait_vip("lb", Duration::from_secs(15), "2/2 up again", |v| {
        v["status"]["servers"] == "2/2 up"
    });
}

/// Nodes but no agent running (what an image that cannot be pulled looks like): the object
/// says that no agent runs and where to look, not that no node matches a selector it does not
/// have.
#[test]
fn without_agents_the_status_says_no_agent_runs() {
    let mut api = Api::start_lab(2, KUBE_VRRP_CRDS, &[]);
    api.add_some_nodes(&["n1", "n2"]);
    api.spawn_controller("c1", 9651);
    apply(&api, &vip("idle", "  addresses: [\"198.51.100.61/24\"]\n"));
    let v = api.wait_vip("idle", Duration::from_secs(15), "NoEligibleNodes", |v| {
        condition(v, "Ready").is_some_and(|c| c["reason"] == "NoEligibleNodes")
    });
    let message = condition(&v, "Ready").unwrap()["message"].as_str().unwrap();
    assert!(
        message.starts_with("no kube-vrrp agent runs on any of the 2 nodes: check the kube-vrrp agent DaemonSet's pods"),
        "{message}"
    );
}
