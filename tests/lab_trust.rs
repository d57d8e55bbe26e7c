//! The agent touches only what is its own, puts back what others take, and says so: lab
//! tests in network namespaces (root; fails, never skips, without it).

use std::time::Duration;

use kube_vrrp_e2e::{AGENT_STATUS, Lab, wait_for};
use nix::sys::signal::Signal;

mod common;
use common::lab::*;

/// A VirtualIP document at 100 ms, n1 preferred; `extra` is appended to the spec.
fn vip_yaml(name: &str, vrid: u8, addresses: &[&str], extra: &str) -> String {
    common::lab::vip_yaml(name, vrid, addresses, &fast(extra))
}

fn start(lab: &mut Lab, node: &str, yaml: &str) -> u32 {
    lab.spawn_agent(std::path::Path::new(BIN), node, yaml, true)
}

fn ip(lab: &Lab, node: &str, args: &[&str]) {
    let ns = lab.node(node).ns.clone();
    let mut full = vec!["ip"];
    full.extend_from_slice(args);
    let out = lab.exec(&ns, &full);
    assert!(
        out.status.success(),
        "{full:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Adds an address carrying kube-vrrp's mark, as an agent would (iproute2 in Debian 12
/// cannot set an address protocol).
fn add_marked(ns: &str, vip: &str) {
    use std::os::fd::AsFd;
    let (ns, vip) = (format!("/run/netns/{ns}"), vip.to_string());
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let nl = kube_vrrp::net::netlink::Netlink::connect().unwrap();
            let link = nl.link_by_name("eth0").await.unwrap();
            assert!(
                nl.add_address(link.index, &vip.parse().unwrap())
                    .await
                    .unwrap()
            );
        });
    })
    .join()
    .unwrap();
}

#[test]
fn a_vip_removed_by_hand_is_put_back_and_counted() {
    let mut lab = Lab::new(2);
    let yaml = vip_yaml("web", 51, &["198.51.100.50/24", "2001:db8:1::50/64"], "");
    start(&mut lab, "n1", &yaml);
    start(&mut lab, "n2", &yaml);
    assert!(wait_for(WAIT, || lab.holders(VIP) == ["n1"]).is_some());
    assert!(wait_for(WAIT, || lab.holds(&lab.node("n1").ns, "2001:db8:1::50")).is_some());
    for (addr, key) in [
        ("198.51.100.50/24", "web/ipv4"),
        ("2001:db8:1::50/64", "web/ipv6"),
    ] {
        ip(&lab, "n1", &["addr", "del", addr, "dev", "eth0"]);
        let bare = addr.split('/').next().unwrap();
        // Put back within one advertisement interval (100 ms), give or take scheduling.
        let back = wait_for(Duration::from_secs(2), || {
            lab.holds(&lab.node("n1").ns, bare)
        });
        assert!(
            back.is_some(),
            "{addr} not put back:\n{}",
            lab.log("agent-n1.log")
        );
        let s = status(&lab, "n1");
        assert_eq!(s["instances"][key]["addressesRestored"], 1, "{s}");
        assert_eq!(s["instances"][key]["state"], "Master");
    }
    assert!(
        lab.log("agent-n1.log")
            .contains("removed by someone else: put back")
    );
    // A VIP of ours on a backup (n2) is removed.
    add_marked(&lab.node("n2").ns, "198.51.100.50/24");
    assert!(
        wait_for(Duration::from_secs(2), || !lab
            .holds(&lab.node("n2").ns, VIP))
        .is_some(),
        "{}",
        lab.log("agent-n2.log")
    );
    assert_eq!(lab.holders(VIP), ["n1"]);
}

#[test]
fn a_host_address_is_never_adopted_nor_deleted() {
    let mut lab = Lab::new(2);
    // n1's own address as a VIP of "own", beside a good one.
    let yaml = vip_yaml("web", 51, &["198.51.100.50/24"], "")
        + "---\n"
        + &vip_yaml("own", 52, &["198.51.100.11/24"], "");
    let p1 = start(&mut lab, "n1", &yaml);
    assert!(wait_for(WAIT, || lab.holders(VIP) == ["n1"]).is_some());
    let s = status(&lab, "n1");
    let err = s["errors"]["own/ipv4"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        err.contains(
            "198.51.100.11 is already an address of node n1 (eth0) that kube-vrrp did not add"
        ),
        "{s}"
    );
    assert!(s["instances"]["own/ipv4"].is_null(), "{s}");
    lab.signal(p1, Signal::SIGTERM);
    assert!(
        lab.holds(&lab.node("n1").ns, "198.51.100.11"),
        "host address deleted"
    );
    assert!(!lab.holds(&lab.node("n1").ns, VIP));

    // At run time: an unmarked copy of the VIP appears on the backup. When the master dies the
    // backup must not adopt it: FAULT with the conflict, the address left as it was. Once the
    // foreign address goes, the backup takes over and binds its own.
    let yaml = vip_yaml("web", 51, &["198.51.100.50/24"], "");
    let p1 = start(&mut lab, "n1", &yaml);
    start(&mut lab, "n2", &yaml);
    assert!(wait_for(WAIT, || lab.holders(VIP) == ["n1"]).is_some());
    ip(
        &lab,
        "n2",
        &["addr", "add", "198.51.100.50/24", "dev", "eth0"],
    );
    lab.signal(p1, Signal::SIGTERM);
    let faulted = wait_for(WAIT, || {
        status(&lab, "n2")["instances"]["web/ipv4"]["state"] == "Fault"
    });
    assert!(faulted.is_some(), "{}", lab.log("agent-n2.log"));
    let s = status(&lab, "n2");
    let reason = s["instances"]["web/ipv4"]["lastTransition"]["reason"].to_string();
    assert!(reason.contains("was not added by kube-vrrp"), "{s}");
    ip(
        &lab,
        "n2",
        &["addr", "del", "198.51.100.50/24", "dev", "eth0"],
    );
    let master = wait_for(WAIT, || {
        status(&lab, "n2")["instances"]["web/ipv4"]["state"] == "Master"
            && lab.holds(&lab.node("n2").ns, VIP)
    });
    assert!(master.is_some(), "{}", lab.log("agent-n2.log"));
}

#[test]
fn a_second_agent_on_a_node_refuses_to_start() {
    let mut lab = Lab::new(1);
    let yaml = vip_yaml("web", 51, &["198.51.100.50/24"], "");
    start(&mut lab, "n1", &yaml);
    assert!(wait_for(WAIT, || lab.holders(VIP) == ["n1"]).is_some());
    let cfg = lab.dir().join("second.yaml");
    std::fs::write(&cfg, &yaml).unwrap();
    let out = lab.exec(
        &lab.node("n1").ns,
        &[
            BIN,
            "agent",
            "--standalone",
            "--config",
            cfg.to_str().unwrap(),
            "--node-name",
            "n1",
            "--listen",
            "127.0.0.1:9651",
            "--lock-wait",
            "1s",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another kube-vrrp agent already runs on this node"),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        lab.holders(VIP),
        ["n1"],
        "the first agent's VIP was touched"
    );
}

#[test]
fn an_interface_recreated_under_its_name_is_picked_up() {
    let mut lab = Lab::new(2);
    let yaml = vip_yaml("web", 51, &["198.51.100.50/24"], "");
    start(&mut lab, "n1", &yaml);
    start(&mut lab, "n2", &yaml);
    assert!(wait_for(WAIT, || lab.holders(VIP) == ["n1"]).is_some());
    let n1 = lab.node("n1").clone();
    let n2_masters = |lab: &Lab| {
        status(lab, "n2")["instances"]["web/ipv4"]["counters"]["masterTransitions"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = n2_masters(&lab);
    lab.recreate_eth0(&n1);
    // With n1's interface gone, n2 takes over. Order, not a window to catch: n1 comes back
    // and preempts within a few intervals, so n2's own count of becoming master says it,
    // not a poll of who holds the address (n2 may hold it alone for milliseconds).
    assert!(
        wait_for(WAIT, || n2_masters(&lab) > before).is_some(),
        "{}",
        lab.log("agent-n2.log")
    );
    // n1 runs again on the new interface and, with the higher priority, preempts back.
    let back = wait_for(WAIT, || {
        lab.holders(VIP) == ["n1"]
            && status(&lab, "n1")["instances"]["web/ipv4"]["state"] == "Master"
    });
    assert!(back.is_some(), "{}", lab.log("agent-n1.log"));
    assert!(lab.log("agent-n1.log").contains("interface re-created"));
}

#[test]
fn a_closed_log_pipe_neither_panics_nor_stops_the_agent() {
    let mut lab = Lab::new(1);
    let yaml = vip_yaml("web", 51, &["198.51.100.50/24"], "");
    let cfg = lab.dir().join("pipe.yaml");
    std::fs::write(&cfg, &yaml).unwrap();
    // stderr into a pipe whose reader leaves after two lines.
    let script = format!(
        "{BIN} agent --standalone --config {} --node-name n1 2>&1 | head -2 >/dev/null; sleep 30",
        cfg.display()
    );
    let ns = lab.node("n1").ns.clone();
    let shell = lab.spawn(&ns, &["sh", "-c", &script], "pipe.log");
    assert!(wait_for(WAIT, || lab.holders(VIP) == ["n1"]).is_some());
    // Logs keep coming (transitions, a reload); the agent keeps running and answering.
    let pid = kube_vrrp_e2e::sh(&["pgrep", "-P", &shell.to_string(), "kube-vrrp"]);
    let pid: i32 = pid.lines().next().unwrap().trim().parse().unwrap();
    for _ in 0..3 {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGHUP).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(status(&lab, "n1")["instances"]["web/ipv4"]["state"] == "Master");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    assert!(
        wait_for(WAIT, || !lab.holds(&ns, VIP)).is_some(),
        "VIP left bound after SIGTERM with a closed log pipe"
    );
    lab.signal(shell, Signal::SIGKILL);
}

#[test]
fn the_status_listener_is_local_bounded_and_survives_a_connection_flood() {
    let mut lab = Lab::new(1);
    let yaml = vip_yaml("web", 51, &["198.51.100.50/24"], "");
    let pid = start(&mut lab, "n1", &yaml);
    // Not on the network: the client cannot reach it at n1's address.
    let ns = lab.node("n1").ns.clone();
    let client = lab.client.ns.clone();
    let out = lab.exec(
        &client,
        &[
            "bash",
            "-c",
            "(exec 3<>/dev/tcp/198.51.100.11/9650) 2>/dev/null && echo open || echo refused",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "refused",
        "reachable from the segment"
    );
    let rss = |pid: u32| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    // The agent itself, not its warden (`kube-vrrp agent` is the warden).
    let pid = lab.agent_of(pid);
    let before = rss(pid);
    // 2,000 idle connections held open from inside the node's namespace.
    let ns_path = format!("/run/netns/{ns}");
    let holder = std::thread::spawn(move || {
        use std::os::fd::AsFd;
        let f = std::fs::File::open(&ns_path).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let conns: Vec<_> = (0..2000)
            .filter_map(|_| std::net::TcpStream::connect(AGENT_STATUS).ok())
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        conns.len()
    });
    let opened = holder.join().unwrap();
    let during = rss(pid);
    assert!(opened > 0);
    // Memory stays bounded (the cap closes what is over it at once; idle ones time out).
    assert!(
        during < before + 8 * 1024,
        "RSS grew from {before} kB to {during} kB with {opened} idle connections"
    );
    // The connections are gone: the agent answers again and still runs VRRP.
    let answered = wait_for(Duration::from_secs(10), || {
        lab.http_get(&ns, AGENT_STATUS.parse().unwrap(), "/status")
            .is_ok()
    });
    assert!(answered.is_some(), "{}", lab.log("agent-n1.log"));
    assert_eq!(
        status(&lab, "n1")["instances"]["web/ipv4"]["state"],
        "Master"
    );
}

/// A DaemonSet's rolling update starts the new agent while the old one, after SIGTERM, still
/// hands over (priority 0, then its addresses until a new master is heard, at most three
/// intervals: 3 s here, with no backup left). The new agent waits for it instead of failing,
/// then holds the address again.
#[test]
fn an_agent_started_right_after_sigterm_waits_for_the_handover() {
    let yaml = common::lab::vip_yaml("web", 52, &["198.51.100.52/24"], "");
    let (mut lab, cfg, p1, p2) = two_nodes(&yaml);
    wait_holders(&lab, "198.51.100.52", &["n1"]);
    // No backup to hand over to: the old agent keeps the address for its three intervals.
    lab.signal(p2, Signal::SIGKILL);
    let ns = lab.node("n1").ns.clone();
    // (`Lab::signal` would wait for the old agent to exit.)
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(p1 as i32), Signal::SIGTERM).unwrap();
    lab.spawn(&ns, &agent_argv(&cfg, "n1"), "agent-n1-new.log");
    let log = || lab.log("agent-n1-new.log");
    let started = wait_for(Duration::from_secs(10), || log().contains("agent started"));
    assert!(started.is_some(), "{}", log());
    assert!(
        log().contains(
            "another kube-vrrp agent holds this node (a predecessor handing over?): waiting for it"
        ),
        "the old agent was gone already: nothing shown\n{}\n--- old\n{}",
        log(),
        lab.log("agent-n1.log")
    );
    // It runs: n1 holds the address again.
    assert!(
        wait_for(Duration::from_secs(10), || lab.holders("198.51.100.52")
            == ["n1"])
        .is_some(),
        "{}",
        log()
    );
}
