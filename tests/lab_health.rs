//! Health checks as keepalived users test them by hand, with real nginx in the node
//! namespaces: the tutorial pair (master 101, backup 100), a check fails, the VIP moves; it
//! passes again, the VIP comes back. Lab tests (root; they fail, never skip, without it).
//!
//! Each scenario prints one JSON line with the measured move time and what it follows from
//! (`cargo test --test lab_health -- --nocapture`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use kube_vrrp_e2e::{AGENT_STATUS, Lab, Prober, wait_for};
use nix::sys::signal::Signal;
use serde_json::Value;

mod common;
use common::lab::{EC_P256, openssl};

const BIN: &str = env!("CARGO_BIN_EXE_kube-vrrp");
const VIP: &str = "198.51.100.50";
/// The VRRP advertisement interval of every scenario.
const ADVERT_MS: u64 = 100;

fn status(lab: &Lab, node: &str) -> Value {
    let addr: SocketAddr = AGENT_STATUS.parse().unwrap();
    let body = lab.http_get(&lab.node(node).ns, addr, "/status").unwrap();
    serde_json::from_str(&body).unwrap()
}

/// The tutorial pair: n1 101, n2 100, plus `extra` under spec (indented two spaces).
fn yaml(extra: &str) -> String {
    format!(
        "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: web}}\nspec:\n  addresses: [\"{VIP}/24\"]\n  \
         virtualRouterID: 51\n  advertInterval: {ADVERT_MS}ms\n  priorities: [{{node: n1, priority: 101}}, {{node: n2, priority: 100}}]\n{extra}"
    )
}

fn start_pair(lab: &mut Lab, extra: impl Fn(&str) -> String) {
    for node in ["n1", "n2"] {
        lab.spawn_agent(Path::new(BIN), node, &yaml(&extra(node)), true);
    }
    let up = wait_for(Duration::from_secs(8), || lab.holders(VIP) == ["n1"]);
    assert!(
        up.is_some(),
        "n1 never became master:\n{}",
        lab.log("agent-n1.log")
    );
}

/// Waits until `node` alone holds the VIP; returns how long that took from `since`.
fn moved_to(lab: &Lab, node: &str, since: Instant, within: Duration) -> Duration {
    let ok = wait_for(within, || lab.holders(VIP) == [node]);
    assert!(
        ok.is_some(),
        "the VIP did not move to {node} within {within:?} (holders {:?}):\nn1:\n{}\nn2:\n{}",
        lab.holders(VIP),
        lab.log("agent-n1.log"),
        lab.log("agent-n2.log")
    );
    since.elapsed()
}

fn check_of<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["checks"]["web"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {s}"))
}

fn report(scenario: &str, moved: Duration, expected: &str) {
    println!(
        "{}",
        serde_json::json!({"scenario": scenario, "moved_ms": moved.as_millis() as u64, "expected": expected})
    );
}

#[test]
fn nginx_stopped_on_the_master_moves_the_vip_and_started_brings_it_back() {
    let mut lab = Lab::new(2);
    let mut nginx: Vec<u32> = ["n1", "n2"]
        .iter()
        .map(|n| lab.spawn_nginx(n, 80, None))
        .collect();
    let check = "  healthChecks:\n  - {name: nginx, interval: 200ms, timeout: 150ms, fall: 2, rise: 2, http: {port: 80}}\n";
    start_pair(&mut lab, |_| check.into());
    let s = status(&lab, "n1");
    let c = check_of(&s, "nginx");
    assert_eq!(c["healthy"], true, "{s}");
    assert!(
        c["result"].as_str().unwrap().starts_with("HTTP 200 in "),
        "{c}"
    );

    // A probe every 10 ms from the client through the move.
    let prober = Prober::start(
        &lab.client.ns.clone(),
        VIP.parse().unwrap(),
        Duration::from_millis(10),
    );
    let t0 = Instant::now();
    lab.signal(nginx[0], Signal::SIGTERM);
    let moved = moved_to(&lab, "n2", t0, Duration::from_secs(5));
    let outage = prober.stop();
    // fall 2 × interval 200 ms (+ the phase of the next run) → FAULT → priority 0 → n2 takes
    // over after its skew time (156/256 × 100 ms).
    report(
        "nginx stopped (weight 0)",
        moved,
        "2 × 200 ms checks + ≤ 200 ms phase + 61 ms skew",
    );
    let s = status(&lab, "n1");
    assert_eq!(s["instances"]["web/ipv4"]["state"], "Fault", "{s}");
    let reason = s["instances"]["web/ipv4"]["lastTransition"]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("check nginx failed 2 times: connection refused"),
        "{reason}"
    );
    let c = check_of(&s, "nginx");
    assert_eq!(
        (c["healthy"].as_bool(), c["fault"].as_bool()),
        (Some(false), Some(true)),
        "{c}"
    );
    // Make before break: n1 kept the address until n2 was heard.
    assert!(
        outage.lost <= 3,
        "lost {} of {} probes (outage {:?})",
        outage.lost,
        outage.sent,
        outage.outage
    );

    let t0 = Instant::now();
    nginx[0] = lab.spawn_nginx("n1", 80, None);
    let back = moved_to(&lab, "n1", t0, Duration::from_secs(5));
    // rise 2 × 200 ms → Backup with 101 → preempts n2 (100) after its master-down time.
    report(
        "nginx started again",
        back,
        "2 × 200 ms checks + ≤ 200 ms phase + 3 × 100 ms + 12 ms skew",
    );
}

#[test]
fn a_hung_nginx_times_the_check_out_and_moves_the_vip() {
    let mut lab = Lab::new(2);
    let nginx: Vec<u32> = ["n1", "n2"]
        .iter()
        .map(|n| lab.spawn_nginx(n, 80, None))
        .collect();
    let check = "  healthChecks:\n  - {name: nginx, interval: 300ms, timeout: 250ms, fall: 1, http: {port: 80, path: /healthz}}\n";
    start_pair(&mut lab, |_| check.into());
    let t0 = Instant::now();
    // SIGSTOP: the kernel still accepts connections on the port; nothing answers.
    lab.signal_tree(nginx[0], Signal::SIGSTOP);
    let moved = moved_to(&lab, "n2", t0, Duration::from_secs(5));
    report(
        "nginx hung (SIGSTOP)",
        moved,
        "≤ 300 ms phase + 250 ms timeout + 61 ms skew",
    );
    let s = status(&lab, "n1");
    assert_eq!(
        check_of(&s, "nginx")["result"],
        "timed out after 250ms",
        "{s}"
    );
    lab.signal_tree(nginx[0], Signal::SIGCONT);
    assert!(wait_for(Duration::from_secs(5), || lab.holders(VIP) == ["n1"]).is_some());
}

#[test]
fn a_maintenance_file_lowers_the_priority_and_the_same_on_the_backup_brings_it_back() {
    let mut lab = Lab::new(2);
    let dir = lab.dir().to_path_buf();
    let file = |node: &str| dir.join(format!("maintenance-{node}"));
    let f1 = file("n1");
    let f2 = file("n2");
    start_pair(&mut lab, |node| {
        format!(
            "  healthChecks:\n  - {{name: maintenance, interval: 100ms, weight: -50, file: {{path: {}}}}}\n",
            file(node).display()
        )
    });
    let t0 = Instant::now();
    std::fs::write(&f1, "").unwrap();
    let moved = moved_to(&lab, "n2", t0, Duration::from_secs(5));
    // 101 − 50 = 51 < 100: n2 ignores n1's adverts and takes over after its master-down time.
    report(
        "maintenance file on the master (weight −50)",
        moved,
        "≤ 100 ms check + 3 × 100 ms + 61 ms skew",
    );
    let s = status(&lab, "n1");
    assert_eq!(s["instances"]["web/ipv4"]["effectivePriority"], 51, "{s}");
    let c = check_of(&s, "maintenance");
    assert_eq!(
        (c["result"].as_str(), c["contribution"].as_i64()),
        (Some("file present"), Some(-50)),
        "{c}"
    );
    let t = s["instances"]["web/ipv4"]["trackers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "check:maintenance")
        .unwrap();
    assert_eq!(t["contribution"], -50, "{t}");

    let t0 = Instant::now();
    std::fs::write(&f2, "").unwrap();
    let back = moved_to(&lab, "n1", t0, Duration::from_secs(5));
    // n2 at 50 < n1's 51: n1 preempts.
    report(
        "the same file on the backup too",
        back,
        "≤ 100 ms check + 3 × 100 ms + 80 ms skew",
    );
    assert_eq!(
        status(&lab, "n2")["instances"]["web/ipv4"]["effectivePriority"],
        50
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it; a second, unrelated CA.
fn certificates(dir: &Path) {
    let ec = EC_P256;
    for ca in ["ca", "other-ca"] {
        let (key, crt, subj) = (
            format!("{ca}.key"),
            format!("{ca}.crt"),
            format!("/CN=lab {ca}"),
        );
        let mut a = vec!["req", "-x509"];
        a.extend_from_slice(&ec);
        a.extend_from_slice(&["-keyout", &key, "-out", &crt, "-days", "2", "-subj", &subj]);
        openssl(dir, &a);
    }
    let mut a = vec!["req"];
    a.extend_from_slice(&ec);
    a.extend_from_slice(&[
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &a);
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
}

#[test]
fn https_checks_verify_nginx_with_its_ca_file() {
    let mut lab = Lab::new(2);
    let dir = lab.dir().to_path_buf();
    certificates(&dir);
    let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
    let nginx: Vec<u32> = ["n1", "n2"]
        .iter()
        .map(|n| lab.spawn_nginx(n, 443, Some((&crt, &key))))
        .collect();
    let d = dir.display();
    let checks = format!(
        "  healthChecks:\n  - {{name: https, interval: 200ms, http: {{scheme: HTTPS, port: 443, caFile: {d}/ca.crt}}}}\n  \
         - {{name: wrong-ca, interval: 200ms, weight: 1, http: {{scheme: HTTPS, port: 443, caFile: {d}/other-ca.crt}}}}\n  \
         - {{name: insecure, interval: 200ms, weight: 2, http: {{scheme: HTTPS, port: 443, insecureSkipVerify: true}}}}\n"
    );
    start_pair(&mut lab, |_| checks.clone());
    let ok = wait_for(Duration::from_secs(3), || {
        let s = status(&lab, "n1");
        check_of(&s, "wrong-ca")["healthy"] == false && check_of(&s, "insecure")["healthy"] == true
    });
    let s = status(&lab, "n1");
    assert!(ok.is_some(), "{s}");
    assert!(
        check_of(&s, "https")["result"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 200 in "),
        "{s}"
    );
    let wrong = check_of(&s, "wrong-ca")["result"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        wrong.starts_with("TLS: ") && wrong.contains("certificate"),
        "{wrong}"
    );
    // 101 + 2 (insecure passes; wrong-ca adds nothing while failing).
    assert_eq!(s["instances"]["web/ipv4"]["effectivePriority"], 103, "{s}");
    // nginx gone: the verified check fails, weight 0 → the VIP moves.
    let t0 = Instant::now();
    lab.signal(nginx[0], Signal::SIGTERM);
    let moved = moved_to(&lab, "n2", t0, Duration::from_secs(5));
    report(
        "HTTPS nginx stopped (weight 0)",
        moved,
        "≤ 200 ms check + 61 ms skew",
    );
    let _ = nginx;
}

#[test]
fn a_tracked_second_interface_going_down_faults_the_master() {
    let mut lab = Lab::new(2);
    for node in ["n1", "n2"] {
        let ns = lab.node(node).ns.clone();
        for args in [
            vec![
                "ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
            ],
            vec!["ip", "link", "set", "eth1", "up"],
            vec!["ip", "link", "set", "eth1p", "up"],
        ] {
            let out = lab.exec(&ns, &args);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    start_pair(&mut lab, |_| "  trackInterfaces: [{name: eth1}]\n".into());
    let prober = Prober::start(
        &lab.client.ns.clone(),
        VIP.parse().unwrap(),
        Duration::from_millis(10),
    );
    let t0 = Instant::now();
    let ns = lab.node("n1").ns.clone();
    assert!(
        lab.exec(&ns, &["ip", "link", "set", "eth1", "down"])
            .status
            .success()
    );
    let moved = moved_to(&lab, "n2", t0, Duration::from_secs(3));
    let outage = prober.stop();
    report(
        "tracked interface down (weight 0)",
        moved,
        "netlink event + 61 ms skew",
    );
    let s = status(&lab, "n1");
    assert_eq!(s["instances"]["web/ipv4"]["state"], "Fault", "{s}");
    assert_eq!(check_of(&s, "interface:eth1")["result"], "link down", "{s}");
    assert!(outage.lost <= 3, "lost {} probes", outage.lost);
    // Back up: n1 returns (preempt, 101 > 100).
    assert!(
        lab.exec(&ns, &["ip", "link", "set", "eth1", "up"])
            .status
            .success()
    );
    assert!(wait_for(Duration::from_secs(3), || lab.holders(VIP) == ["n1"]).is_some());
}

#[test]
fn a_check_flapping_faster_than_fall_and_rise_never_moves_the_vip() {
    let mut lab = Lab::new(2);
    let file = lab.dir().join("flap");
    let check = format!(
        "  healthChecks:\n  - {{name: flappy, interval: 100ms, fall: 4, rise: 4, file: {{path: {}}}}}\n",
        file.display()
    );
    start_pair(&mut lab, |_| check.clone());
    // The file comes and goes every 150 ms for 4 s: no four results in a row agree (that
    // would take 300 ms), whatever the phase.
    let t0 = Instant::now();
    let mut present = false;
    let mut holders_seen = std::collections::BTreeSet::new();
    while t0.elapsed() < Duration::from_secs(4) {
        present = !present;
        if present {
            std::fs::write(&file, "").unwrap();
        } else {
            let _ = std::fs::remove_file(&file);
        }
        std::thread::sleep(Duration::from_millis(150));
        holders_seen.insert(lab.holders(VIP).join(","));
    }
    let _ = std::fs::remove_file(&file);
    let s = status(&lab, "n1");
    assert_eq!(holders_seen.into_iter().collect::<Vec<_>>(), ["n1"], "{s}");
    assert_eq!(
        s["instances"]["web/ipv4"]["counters"]["masterTransitions"], 1,
        "{s}"
    );
    assert_eq!(check_of(&s, "flappy")["healthy"], true, "{s}");
}

#[test]
fn notify_scripts_record_every_transition_with_keepalived_arguments() {
    let mut lab = Lab::new(2);
    let dir = lab.dir().to_path_buf();
    let script = dir.join("notify.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$(basename \"$0\") $* state=$KUBE_VRRP_STATE\" >> \"$(dirname \"$0\")/notify-$NODE.log\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let maint = |node: &str| dir.join(format!("maint-{node}"));
    // The script learns its node from an argument: /bin/sh -c would be a shell; env is simpler.
    start_pair(&mut lab, |node| {
        let s = script.display();
        format!(
            "  healthChecks:\n  - {{name: maint, interval: 100ms, file: {{path: {}}}}}\n  notify:\n    \
             master: [/usr/bin/env, NODE={node}, {s}, master]\n    backup: [/usr/bin/env, NODE={node}, {s}, backup]\n    \
             fault: [/usr/bin/env, NODE={node}, {s}, fault]\n    stop: [/usr/bin/env, NODE={node}, {s}, stop]\n    \
             any: [/usr/bin/env, NODE={node}, {s}, any]\n",
            maint(node).display()
        )
    });
    std::fs::write(maint("n1"), "").unwrap();
    moved_to(&lab, "n2", Instant::now(), Duration::from_secs(3));
    std::fs::remove_file(maint("n1")).unwrap();
    moved_to(&lab, "n1", Instant::now(), Duration::from_secs(3));
    let lines = |node: &str, n: usize| {
        let f = dir.join(format!("notify-{node}.log"));
        let ok = wait_for(Duration::from_secs(2), || {
            std::fs::read_to_string(&f).is_ok_and(|t| t.lines().count() >= n)
        });
        assert!(ok.is_some(), "{node}: {:?}", std::fs::read_to_string(&f));
        std::fs::read_to_string(&f).unwrap()
    };
    // n1: Backup (start) → Master → Fault → Backup → Master, each the state's own command, then
    // `any` with INSTANCE web STATE priority.
    let n1 = lines("n1", 10);
    let expected_n1 = [
        "notify.sh backup state=BACKUP",
        "notify.sh any INSTANCE web BACKUP 101 state=BACKUP",
        "notify.sh master state=MASTER",
        "notify.sh any INSTANCE web MASTER 101 state=MASTER",
        "notify.sh fault state=FAULT",
        "notify.sh any INSTANCE web FAULT 101 state=FAULT",
        "notify.sh backup state=BACKUP",
        "notify.sh any INSTANCE web BACKUP 101 state=BACKUP",
        "notify.sh master state=MASTER",
        "notify.sh any INSTANCE web MASTER 101 state=MASTER",
    ];
    assert_eq!(n1.lines().collect::<Vec<_>>(), expected_n1, "{n1}");
    // n2: Backup → Master → Backup.
    let n2 = lines("n2", 6);
    assert_eq!(
        n2.lines().collect::<Vec<_>>(),
        [
            "notify.sh backup state=BACKUP",
            "notify.sh any INSTANCE web BACKUP 100 state=BACKUP",
            "notify.sh master state=MASTER",
            "notify.sh any INSTANCE web MASTER 100 state=MASTER",
            "notify.sh backup state=BACKUP",
            "notify.sh any INSTANCE web BACKUP 100 state=BACKUP",
        ],
        "{n2}"
    );
    let s = status(&lab, "n1");
    assert_eq!(s["global"]["notifyOk"], 10, "{s}");
}

#[test]
fn an_exec_check_that_hangs_is_killed_with_its_process_group() {
    let mut lab = Lab::new(2);
    // A unique sleep length marks this test's processes.
    let check = "  healthChecks:\n  - {name: slow, interval: 500ms, timeout: 200ms, weight: -10, exec: {command: [/bin/sh, -c, 'sleep 31.337 & sleep 31.337']}}\n";
    start_pair(&mut lab, |_| check.into());
    let s = wait_for(Duration::from_secs(3), || {
        status(&lab, "n1")["checks"]["web"][0]["result"] == "timed out after 200ms (killed)"
    });
    assert!(s.is_some(), "{}", status(&lab, "n1"));
    // SIGTERM to the group at the timeout: the background sleep goes too. Runs start every
    // 500 ms and are killed 200 ms in, so no such process may be a second old.
    std::thread::sleep(Duration::from_secs(3));
    let ps = kube_vrrp_e2e::run(&["ps", "-eo", "etimes=,args="]);
    let old: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains("sleep 31.337"))
        .filter(|l| {
            l.split_whitespace()
                .next()
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|t| t >= 2)
        })
        .map(String::from)
        .collect();
    assert!(old.is_empty(), "left behind: {old:?}");
    assert_eq!(
        status(&lab, "n1")["instances"]["web/ipv4"]["effectivePriority"],
        91
    );
}
