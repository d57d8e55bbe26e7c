//! The standalone agent on real sockets, addresses and ARP caches, in network namespaces
//! (needs root; fails, never skips, without it). Each test builds its own lab.

use std::net::IpAddr;
use std::time::Duration;

use kube_vrrp::vrrp::{Addresses, Advertisement, Authentication, Version};
use kube_vrrp_e2e::{Lab, send_vrrp, wait_for};
use nix::sys::signal::Signal;
use serde_json::Value;

mod common;
use common::lab::*;

fn instance(lab: &Lab, node: &str, key: &str) -> Value {
    status(lab, node)["instances"][key].clone()
}

fn crash(lab: &mut Lab, pid: u32, node: &str) {
    lab.signal(pid, Signal::SIGKILL);
    let n = lab.node(node).clone();
    lab.set_link(&n, false);
}

#[test]
fn election_and_crash_failover() {
    let (mut lab, _, p1, _) = two_nodes(&vip_yaml("web", 51, &["198.51.100.50/24"], &fast("")));
    wait_holders(&lab, VIP, &["n1"]);
    let web = instance(&lab, "n2", "web/ipv4");
    assert_eq!(web["state"], "Backup", "{web}");
    assert_eq!(web["master"], "198.51.100.11");
    assert_eq!(web["masterPriority"], 200);
    crash(&mut lab, p1, "n1");
    assert!(
        wait_for(WAIT, || lab.holds(&lab.node("n2").ns, VIP)).is_some(),
        "{}",
        lab.log("agent-n2.log")
    );
    let metrics = lab
        .http_get(&lab.node("n2").ns, status_addr(), "/metrics")
        .unwrap();
    assert!(
        metrics.contains(
            "kube_vrrp_instance_state{vrrp_instance=\"web/ipv4\",vrid=\"51\",state=\"master\"} 1"
        ),
        "{metrics}"
    );
    // Prometheus' linter finds nothing to say (base units, no `instance` label clash).
    kube_vrrp_e2e::promtool_check(&metrics).unwrap();
    let web = instance(&lab, "n2", "web/ipv4");
    assert_eq!(
        web["lastTransition"]["reason"],
        "master down timer expired (no advertisement for 0.341s)"
    );
}

#[test]
fn graceful_handover_on_sigterm() {
    let (mut lab, _, p1, _) = two_nodes(&vip_yaml("web", 51, &["198.51.100.50/24"], &fast("")));
    wait_holders(&lab, VIP, &["n1"]);
    lab.signal(p1, Signal::SIGTERM);
    wait_holders(&lab, VIP, &["n2"]);
    let web = instance(&lab, "n2", "web/ipv4");
    assert_eq!(
        web["lastTransition"]["reason"], "priority-0 handover from 198.51.100.11",
        "{web}"
    );
    assert_eq!(web["counters"]["priorityZeroReceived"], 1);
    assert!(lab.log("agent-n1.log").contains("SIGTERM: handing over"));
}

#[test]
fn failback_with_preempt() {
    let (mut lab, cfg, p1, _) = two_nodes(&vip_yaml("web", 51, &["198.51.100.50/24"], &fast("")));
    wait_holders(&lab, VIP, &["n1"]);
    lab.signal(p1, Signal::SIGTERM);
    wait_holders(&lab, VIP, &["n2"]);
    start_agent(&mut lab, "n1", &cfg);
    wait_holders(&lab, VIP, &["n1"]);
    let web = instance(&lab, "n1", "web/ipv4");
    assert_eq!(
        web["lastTransition"]["reason"], "preempting lower priority 150 from 198.51.100.12",
        "{web}"
    );
    assert_eq!(instance(&lab, "n2", "web/ipv4")["state"], "Backup");
}

#[test]
fn non_preempt_keeps_the_current_master() {
    let (mut lab, cfg, p1, _) = two_nodes(&vip_yaml(
        "web",
        51,
        &["198.51.100.50/24"],
        &fast("  preempt: false\n"),
    ));
    wait_holders(&lab, VIP, &["n1"]);
    lab.signal(p1, Signal::SIGTERM);
    wait_holders(&lab, VIP, &["n2"]);
    start_agent(&mut lab, "n1", &cfg);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.holders(VIP), ["n2"]);
    assert_eq!(instance(&lab, "n1", "web/ipv4")["state"], "Backup");
}

#[test]
fn one_instance_with_25_vips() {
    let vips: Vec<String> = (1..=25)
        .map(|i| format!("198.51.100.{}/24", 100 + i))
        .collect();
    let refs: Vec<&str> = vips.iter().map(String::as_str).collect();
    let (mut lab, _, p1, _) = two_nodes(&vip_yaml("many", 60, &refs, &fast("")));
    let all_on = |lab: &Lab, node: &str| {
        (101..=125).all(|i| lab.holds(&lab.node(node).ns, &format!("198.51.100.{i}")))
    };
    let none_on = |lab: &Lab, node: &str| {
        (101..=125).all(|i| !lab.holds(&lab.node(node).ns, &format!("198.51.100.{i}")))
    };
    assert!(wait_for(WAIT, || all_on(&lab, "n1") && none_on(&lab, "n2")).is_some());
    lab.signal(p1, Signal::SIGTERM);
    assert!(wait_for(WAIT, || all_on(&lab, "n2") && none_on(&lab, "n1")).is_some());
    assert_eq!(
        instance(&lab, "n2", "many/ipv4")["counters"]["addressListErrors"],
        0
    );
}

#[test]
fn ipv6_election_failover_and_neighbor_advertisement() {
    let (mut lab, _, p1, _) = two_nodes(&vip_yaml("v6", 53, &["2001:db8:1::50/64"], &fast("")));
    let v6 = "2001:db8:1::50";
    wait_holders(&lab, v6, &["n1"]);
    let n1 = instance(&lab, "n2", "v6/ipv6");
    let master: IpAddr = n1["master"].as_str().unwrap().parse().unwrap();
    assert!(
        matches!(master, IpAddr::V6(a) if a.segments()[0] == 0xfe80),
        "link-local source: {n1}"
    );
    let client = lab.client.ns.clone();
    let ping = lab.exec(&client, &["ping", "-6", "-c", "1", "-W", "2", v6]);
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    crash(&mut lab, p1, "n1");
    assert!(wait_for(WAIT, || lab.holds(&lab.node("n2").ns, v6)).is_some());
    // The unsolicited NA moved the client's neighbor entry to n2.
    let n2_mac = mac_of(&lab, "n2");
    let moved = wait_for(WAIT, || {
        neighbor_mac(&lab, v6).as_deref() == Some(n2_mac.as_str())
    });
    assert!(
        moved.is_some(),
        "client neighbor: {:?}, n2 is {n2_mac}",
        neighbor_mac(&lab, v6)
    );
}

#[test]
fn gratuitous_arp_moves_the_clients_arp_entry() {
    let (mut lab, _, p1, _) = two_nodes(&vip_yaml("web", 51, &["198.51.100.50/24"], &fast("")));
    wait_holders(&lab, VIP, &["n1"]);
    let client = lab.client.ns.clone();
    assert!(
        lab.exec(&client, &["ping", "-c", "1", "-W", "2", VIP])
            .status
            .success()
    );
    assert_eq!(neighbor_mac(&lab, VIP), Some(mac_of(&lab, "n1")));
    crash(&mut lab, p1, "n1");
    let n2 = mac_of(&lab, "n2");
    assert!(
        wait_for(WAIT, || neighbor_mac(&lab, VIP).as_deref()
            == Some(n2.as_str()))
        .is_some()
    );
    assert!(
        lab.exec(&client, &["ping", "-c", "1", "-W", "2", VIP])
            .status
            .success()
    );
}

#[test]
fn unicast_mode_sends_to_peers_only() {
    let extra = fast("  unicastPeers: [\"198.51.100.11\", \"198.51.100.12\"]\n");
    let (lab, _, _, _) = two_nodes(&vip_yaml("uni", 70, &["198.51.100.70/24"], &extra));
    wait_holders(&lab, "198.51.100.70", &["n1"]);
    let web = instance(&lab, "n2", "uni/ipv4");
    assert_eq!(web["master"], "198.51.100.11", "{web}");
    let received = web["counters"]["advertsReceived"].as_u64().unwrap();
    assert!(received > 0, "{web}");
    // /status says where each node advertises: the other node, never itself.
    assert_eq!(
        web["advertisedTo"],
        serde_json::json!(["198.51.100.11"]),
        "{web}"
    );
    let n1 = instance(&lab, "n1", "uni/ipv4");
    assert_eq!(
        n1["advertisedTo"],
        serde_json::json!(["198.51.100.12"]),
        "{n1}"
    );
    // The client (not a peer) sees no VRRP at all: nothing went to the multicast group.
    let cap = lab.exec(
        &lab.client.ns,
        &[
            "timeout",
            "1",
            "tcpdump",
            "-n",
            "-i",
            "eth0",
            "-c",
            "1",
            "ip proto 112",
        ],
    );
    let text = String::from_utf8_lossy(&cap.stdout);
    assert!(!text.contains("VRRP"), "the client saw VRRP: {text}");
    // n2 sees unicast adverts from n1.
    let cap = lab.exec(
        &lab.node("n2").ns,
        &[
            "timeout",
            "2",
            "tcpdump",
            "-n",
            "-i",
            "eth0",
            "-c",
            "2",
            "ip proto 112",
        ],
    );
    let text = String::from_utf8_lossy(&cap.stdout);
    assert!(
        text.contains("198.51.100.11 > 198.51.100.12: VRRPv3"),
        "{text}"
    );
}

#[test]
fn stale_vips_are_taken_over_after_sigkill_and_nothing_else() {
    let (mut lab, cfg, p1, _) = two_nodes(&vip_yaml("web", 51, &["198.51.100.50/24"], &fast("")));
    wait_holders(&lab, VIP, &["n1"]);
    lab.signal(p1, Signal::SIGKILL);
    // The link stays up: n2 takes over while the dead agent's VIP is still bound on n1.
    wait_holders(&lab, VIP, &["n1", "n2"]);
    let n1 = lab.node("n1").ns.clone();
    lab.exec(
        &n1,
        &["ip", "addr", "add", "198.51.100.77/24", "dev", "eth0"],
    );
    start_agent(&mut lab, "n1", &cfg);
    assert!(
        lab.log("agent-n1.log")
            .contains("a virtual address left by a previous run"),
        "{}",
        lab.log("agent-n1.log")
    );
    assert!(
        lab.holds(&n1, "198.51.100.77"),
        "an address we did not add was touched"
    );
    assert!(lab.holds(&n1, "198.51.100.11"));
    wait_holders(&lab, VIP, &["n1"]);
}

#[test]
fn virtual_mac_keeps_the_clients_arp_entry_across_failover() {
    let (mut lab, _, p1, _) = two_nodes(&vip_yaml(
        "web",
        51,
        &["198.51.100.50/24"],
        &fast("  virtualMAC: true\n"),
    ));
    wait_holders(&lab, VIP, &["n1"]);
    let client = lab.client.ns.clone();
    assert!(
        lab.exec(&client, &["ping", "-c", "1", "-W", "2", VIP])
            .status
            .success()
    );
    assert_eq!(
        neighbor_mac(&lab, VIP).as_deref(),
        Some("00:00:5e:00:01:33")
    );
    lab.signal(p1, Signal::SIGTERM);
    wait_holders(&lab, VIP, &["n2"]);
    let ok = wait_for(WAIT, || {
        lab.exec(&client, &["ping", "-c", "1", "-W", "1", VIP])
            .status
            .success()
    });
    assert!(ok.is_some(), "VIP unreachable through n2");
    assert_eq!(
        neighbor_mac(&lab, VIP).as_deref(),
        Some("00:00:5e:00:01:33"),
        "the client's entry never changed"
    );
}

fn advert(vrid: u8, priority: u8, version: Version, auth: Authentication) -> Advertisement {
    Advertisement {
        version,
        vrid,
        priority,
        interval_cs: if version == Version::V2 { 100 } else { 10 },
        addresses: Addresses::V4(vec![VIP.parse().unwrap()]),
        auth,
    }
}

#[test]
fn hostile_packets_are_dropped_counted_and_change_nothing() {
    let yaml = vip_yaml(
        "web",
        51,
        &["198.51.100.50/24"],
        "  version: 2\n  authentication: {password: s3cret}\n",
    );
    let (lab, _, _, _) = two_nodes(&yaml);
    wait_holders(&lab, VIP, &["n1"]);
    let client = lab.client.ns.clone();
    let src: IpAddr = lab.client.ipv4.parse().unwrap();
    let group: IpAddr = "224.0.0.18".parse().unwrap();
    let pass = Authentication::password("s3cret");
    // Each would win the election if accepted (priority 255 or 0).
    let good = advert(51, 255, Version::V2, pass)
        .encode(src, group)
        .unwrap();
    send_vrrp(&client, group, 254, &good); // TTL 254
    let mut bad_sum = good.clone();
    bad_sum[2] = 254; // checksum no longer matches
    send_vrrp(&client, group, 255, &bad_sum);
    let wrong_pass = advert(51, 255, Version::V2, Authentication::password("guess"))
        .encode(src, group)
        .unwrap();
    send_vrrp(&client, group, 255, &wrong_pass);
    let no_pass = advert(51, 0, Version::V2, Authentication::None)
        .encode(src, group)
        .unwrap();
    send_vrrp(&client, group, 255, &no_pass);
    let other_vrid = advert(99, 255, Version::V2, pass)
        .encode(src, group)
        .unwrap();
    send_vrrp(&client, group, 255, &other_vrid);
    send_vrrp(&client, group, 255, &[0x21, 51, 0xff]); // truncated
    // Malformed packets are counted where they arrive and handed over once a second.
    std::thread::sleep(Duration::from_millis(1500));
    let c = &instance(&lab, "n1", "web/ipv4")["counters"];
    assert_eq!(c["ipTtlErrors"], 1, "{c}");
    assert_eq!(c["checksumErrors"], 1, "{c}");
    assert_eq!(c["authFailures"], 1, "{c}");
    assert_eq!(c["authTypeMismatch"], 1, "{c}");
    assert_eq!(c["packetLengthErrors"], 1, "{c}");
    assert_eq!(status(&lab, "n1")["global"]["unknownVrid"], 1);
    for node in ["n1", "n2"] {
        let i = instance(&lab, node, "web/ipv4");
        assert_eq!(
            i["counters"]["masterTransitions"],
            if node == "n1" { 1 } else { 0 },
            "{i}"
        );
    }
    assert_eq!(lab.holders(VIP), ["n1"]);
    // The right password from a higher priority is taken: the check is not a blanket drop.
    let real = advert(51, 255, Version::V2, pass)
        .encode(src, group)
        .unwrap();
    send_vrrp(&client, group, 255, &real);
    wait_holders(&lab, VIP, &[]);
}

#[test]
fn sighup_reload_touches_only_what_changed() {
    let web = vip_yaml("web", 51, &["198.51.100.50/24"], &fast(""));
    let db = vip_yaml("db", 52, &["198.51.100.52/24"], &fast(""));
    let (mut lab, cfg, p1, _) = two_nodes(&format!("{web}---\n{db}"));
    wait_holders(&lab, VIP, &["n1"]);
    wait_holders(&lab, "198.51.100.52", &["n1"]);
    let before = instance(&lab, "n1", "web/ipv4");
    // db moves to another address; web is unchanged.
    let db2 = vip_yaml("db", 52, &["198.51.100.53/24"], &fast(""));
    std::fs::write(&cfg, format!("{web}---\n{db2}")).unwrap();
    lab.signal(p1, Signal::SIGHUP);
    wait_holders(&lab, "198.51.100.53", &["n1"]);
    assert!(!lab.holds(&lab.node("n1").ns, "198.51.100.52"));
    let after = instance(&lab, "n1", "web/ipv4");
    assert_eq!(
        after["lastTransition"], before["lastTransition"],
        "web was restarted"
    );
    assert_eq!(after["counters"]["masterTransitions"], 1);
    assert!(after["counters"]["advertsSent"].as_u64() > before["counters"]["advertsSent"].as_u64());
    // A broken file is refused whole; the running configuration stays.
    std::fs::write(
        &cfg,
        format!(
            "{web}---\n{}",
            db2.replace("virtualRouterID: 52", "virtualRouterID: 0")
        ),
    )
    .unwrap();
    lab.signal(p1, Signal::SIGHUP);
    let refused = wait_for(WAIT, || status(&lab, "n1")["configError"].is_string());
    assert!(refused.is_some());
    let err = status(&lab, "n1")["configError"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.contains("document 2 (\"db\"), field spec.virtualRouterID"),
        "{err}"
    );
    assert!(lab.holds(&lab.node("n1").ns, "198.51.100.53"));
    assert!(lab.holds(&lab.node("n1").ns, VIP));
}

#[test]
fn a_bad_file_stops_the_agent_before_it_does_anything() {
    let lab = Lab::new(1);
    let yaml = vip_yaml("web", 51, &["198.51.100.50/24"], "  advertInterval: 1s\n")
        + "---\n"
        + &vip_yaml(
            "db",
            52,
            &["198.51.100.52/24"],
            "  version: 2\n  advertInterval: 100ms\n",
        );
    let cfg = write_config(&lab, "bad.yaml", &yaml);
    let out = lab.exec(
        &lab.node("n1").ns,
        &[
            BIN,
            "agent",
            "--standalone",
            "--config",
            &cfg,
            "--node-name",
            "n1",
        ],
    );
    assert!(!out.status.success());
    // One logfmt line (quotes escaped in the value), said once.
    let err = String::from_utf8_lossy(&out.stderr).replace("\\\"", "\"");
    assert!(
        err.contains("document 2 (\"db\"), field spec.advertInterval: VRRPv2"),
        "{err}"
    );
    assert_eq!(err.matches("field spec.advertInterval").count(), 1, "{err}");
    assert!(err.contains("level=error"), "{err}");
    assert!(!lab.holds(&lab.node("n1").ns, VIP), "half-configured");
}

#[test]
fn interface_down_is_a_fault_and_recovery_preempts_back() {
    let (lab, _, _, _) = two_nodes(&vip_yaml("web", 51, &["198.51.100.50/24"], &fast("")));
    wait_holders(&lab, VIP, &["n1"]);
    let n1 = lab.node("n1").clone();
    // The agent stays alive; its link loses carrier.
    lab.set_link(&n1, false);
    assert!(
        wait_for(WAIT, || instance(&lab, "n1", "web/ipv4")["state"]
            == "Fault")
        .is_some()
    );
    assert_eq!(
        instance(&lab, "n1", "web/ipv4")["lastTransition"]["reason"],
        "fault: interface eth0 down"
    );
    assert!(!lab.holds(&n1.ns, VIP), "a faulted master released the VIP");
    assert!(wait_for(WAIT, || lab.holds(&lab.node("n2").ns, VIP)).is_some());
    lab.set_link(&n1, true);
    wait_holders(&lab, VIP, &["n1"]);
    assert_eq!(instance(&lab, "n2", "web/ipv4")["state"], "Backup");
}

#[test]
fn garp_repeat_delay_and_refresh() {
    let mut lab = Lab::new(1);
    let extra = fast("  garp: {masterRepeat: 2, masterDelay: 1s, masterRefresh: 3s}\n");
    let cfg = write_config(
        &lab,
        "vips.yaml",
        &vip_yaml("web", 51, &["198.51.100.50/24"], &extra),
    );
    let client = lab.client.ns.clone();
    let cap = lab.dir().join("arp.txt").display().to_string();
    let filter = "arp and arp[14:4] = 0xc6336432"; // sender protocol address 198.51.100.50
    lab.spawn(
        &client,
        &[
            "timeout", "5", "tcpdump", "-n", "-l", "-tt", "-i", "eth0", filter,
        ],
        "arp.txt",
    );
    std::thread::sleep(Duration::from_millis(500)); // tcpdump ready
    start_agent(&mut lab, "n1", &cfg);
    std::thread::sleep(Duration::from_millis(4800));
    let text = std::fs::read_to_string(&cap).unwrap();
    let times: Vec<f64> = text
        .lines()
        .filter(|l| l.contains("tell 198.51.100.50"))
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(!times.is_empty(), "no GARP seen:\n{text}");
    let t0 = times[0];
    let rel: Vec<f64> = times.iter().map(|t| t - t0).collect();
    let burst = |from: f64, to: f64| rel.iter().filter(|t| **t >= from && **t < to).count();
    assert_eq!(burst(0.0, 0.2), 2, "first burst: {rel:?}");
    assert_eq!(burst(0.2, 0.9), 0, "{rel:?}");
    assert_eq!(
        burst(0.9, 1.2),
        2,
        "second burst after masterDelay: {rel:?}"
    );
    assert_eq!(burst(1.2, 2.9), 0, "{rel:?}");
    assert_eq!(burst(2.9, 3.2), 2, "refresh after masterRefresh: {rel:?}");
}

#[test]
fn ipv6_virtual_mac_keeps_the_clients_neighbor_entry() {
    let yaml = vip_yaml(
        "v6",
        54,
        &["2001:db8:1::54/64"],
        &fast("  virtualMAC: true\n"),
    );
    let (mut lab, _, p1, _) = two_nodes(&yaml);
    let vip = "2001:db8:1::54";
    wait_holders(&lab, vip, &["n1"]);
    let client = lab.client.ns.clone();
    let ping = |lab: &Lab| {
        lab.exec(&client, &["ping", "-6", "-c", "1", "-W", "1", vip])
            .status
            .success()
    };
    assert!(
        wait_for(WAIT, || ping(&lab)).is_some(),
        "VIP unreachable through n1"
    );
    assert_eq!(
        neighbor_mac(&lab, vip).as_deref(),
        Some("00:00:5e:00:02:36")
    );
    lab.signal(p1, Signal::SIGTERM);
    wait_holders(&lab, vip, &["n2"]);
    assert!(
        wait_for(WAIT, || ping(&lab)).is_some(),
        "VIP unreachable through n2"
    );
    assert_eq!(
        neighbor_mac(&lab, vip).as_deref(),
        Some("00:00:5e:00:02:36"),
        "the client's entry never changed"
    );
}

/// The standby links (`kvs-*`) in a node: (name, up, MAC).
fn standby_links(lab: &Lab, node: &str) -> Vec<(String, bool, String)> {
    let out = lab.exec(&lab.node(node).ns, &["ip", "-o", "link", "show"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let name = w.get(1)?.trim_end_matches(':').split('@').next()?;
            if !name.starts_with("kvs-") {
                return None;
            }
            let flags = w.get(2)?.trim_matches(|c| c == '<' || c == '>');
            let up = flags.split(',').any(|f| f == "UP");
            let mac = w
                .iter()
                .position(|x| *x == "link/ether")
                .map(|i| w[i + 1])?;
            Some((name.to_string(), up, mac.to_string()))
        })
        .collect()
}

/// 300 IPv6 excluded addresses: the backup binds them ahead on its standby link (down, so
/// answering for none), and a crash of the master only sets that link up. All of them answer
/// from the new master, the client's neighbour entries follow its announcement, a restarted
/// agent removes the standby link its killed predecessor left, and a stopping agent removes
/// its own.
#[test]
fn ipv6_bulk_addresses_stand_by_on_the_backup_and_move_at_once() {
    let excluded: Vec<String> = (0..300).map(|i| format!("2001:db8:1::2:{i:x}")).collect();
    let list: Vec<String> = excluded.iter().map(|a| format!("\"{a}/128\"")).collect();
    let yaml = vip_yaml(
        "bulk",
        57,
        &["2001:db8:1::50/64"],
        &fast(&format!("  excludedAddresses: [{}]\n", list.join(", "))),
    );
    let (mut lab, cfg, p1, p2) = two_nodes(&yaml);
    let (first, middle, last) = (&excluded[0], &excluded[150], &excluded[299]);
    wait_holders(&lab, "2001:db8:1::50", &["n1"]);
    for a in [first, middle, last] {
        wait_holders(&lab, a, &["n1"]);
    }
    // n2 has every one of them bound, on a link that is down.
    let n2_ns = lab.node("n2").ns.clone();
    let ready = wait_for(WAIT, || excluded.iter().all(|a| lab.has_address(&n2_ns, a)));
    assert!(ready.is_some(), "{}", lab.log("agent-n2.log"));
    let links = standby_links(&lab, "n2");
    assert!(
        matches!(links.as_slice(), [(_, false, _)]),
        "n2 standby links: {links:?}"
    );
    let n1_links = standby_links(&lab, "n1");
    assert!(
        matches!(n1_links.as_slice(), [(_, true, _)]),
        "n1 standby links: {n1_links:?}"
    );
    let client = lab.client.ns.clone();
    for a in [first, middle, last] {
        let ping = lab.exec(&client, &["ping", "-6", "-c", "1", "-W", "2", a]);
        assert!(ping.status.success(), "{a} does not answer");
    }
    assert_eq!(neighbor_mac(&lab, middle), Some(n1_links[0].2.clone()));
    // The standby link never answers for the node's own addresses.
    let n2_arp = lab.exec(
        &client,
        &["ip", "neigh", "show", &lab.node("n2").ipv4.clone()],
    );
    assert!(
        !String::from_utf8_lossy(&n2_arp.stdout).contains(&links[0].2),
        "the standby link answered ARP for the node"
    );

    // Excluded addresses change in place (SIGHUP): no election, the master binds the new one
    // and releases the old, the backup's standby link follows.
    let transitions =
        |lab: &Lab| instance(lab, "n1", "bulk/ipv6")["counters"]["masterTransitions"].clone();
    let before = transitions(&lab);
    let (dropped, added) = (&excluded[1], "2001:db8:1::3:1");
    let list2: Vec<String> = excluded
        .iter()
        .filter(|a| *a != dropped)
        .map(|a| format!("\"{a}/128\""))
        .chain([format!("\"{added}/128\"")])
        .collect();
    let yaml2 = vip_yaml(
        "bulk",
        57,
        &["2001:db8:1::50/64"],
        &fast(&format!("  excludedAddresses: [{}]\n", list2.join(", "))),
    );
    std::fs::write(&cfg, yaml2).unwrap();
    lab.signal(p1, Signal::SIGHUP);
    lab.signal(p2, Signal::SIGHUP);
    wait_holders(&lab, added, &["n1"]);
    wait_holders(&lab, dropped, &[]);
    let followed = wait_for(WAIT, || {
        lab.has_address(&n2_ns, added) && !lab.has_address(&n2_ns, dropped)
    });
    assert!(followed.is_some(), "{}", lab.log("agent-n2.log"));
    assert_eq!(transitions(&lab), before, "{}", lab.log("agent-n1.log"));
    assert!(
        lab.log("agent-n1.log")
            .contains("excluded addresses changed in place")
    );
    let ping = lab.exec(&client, &["ping", "-6", "-c", "1", "-W", "2", added]);
    assert!(ping.status.success(), "{added} does not answer");

    crash(&mut lab, p1, "n1");
    for a in [first, middle, last] {
        let ok = wait_for(WAIT, || {
            lab.exec(&client, &["ping", "-6", "-c", "1", "-W", "1", a])
                .status
                .success()
        });
        assert!(
            ok.is_some(),
            "{a} does not answer after the crash\n{}",
            lab.log("agent-n2.log")
        );
    }
    let links = standby_links(&lab, "n2");
    assert!(matches!(links.as_slice(), [(_, true, _)]), "{links:?}");
    let moved = wait_for(WAIT, || {
        neighbor_mac(&lab, last) == Some(links[0].2.clone())
    });
    assert!(
        moved.is_some(),
        "client neighbour: {:?}",
        neighbor_mac(&lab, last)
    );
    let log = lab.log("agent-n2.log");
    assert!(log.contains("standby link up"), "{log}");

    // n1 comes back: its predecessor's standby link (up, with 300 addresses) is removed,
    // a new one is made, and n1 preempts.
    let n1 = lab.node("n1").clone();
    lab.set_link(&n1, true);
    let _p1 = start_agent(&mut lab, "n1", &cfg);
    for a in [first, last] {
        wait_holders(&lab, a, &["n1"]);
    }
    let n1_links = standby_links(&lab, "n1");
    assert!(
        matches!(n1_links.as_slice(), [(_, true, _)]),
        "n1 standby links after restart: {n1_links:?}"
    );
    let down = wait_for(WAIT, || {
        matches!(standby_links(&lab, "n2").as_slice(), [(_, false, _)])
    });
    assert!(down.is_some(), "{:?}", standby_links(&lab, "n2"));

    // A stopping agent takes its standby link and every address on it away.
    lab.signal(p2, Signal::SIGTERM);
    let gone = wait_for(WAIT, || {
        standby_links(&lab, "n2").is_empty() && !lab.has_address(&n2_ns, middle)
    });
    assert!(gone.is_some(), "{:?}", standby_links(&lab, "n2"));
}

/// What a GET answers: status line and body.
fn probe(lab: &Lab, node: &str, path: &str) -> String {
    let ns = lab.node(node).ns.clone();
    let out = lab.exec(
        &ns,
        &[
            "bash",
            "-c",
            &format!(
                "exec 3<>/dev/tcp/127.0.0.1/9650; printf 'GET {path} HTTP/1.1\\r\\n\\r\\n' >&3; cat <&3"
            ),
        ],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Liveness is the engine answering; readiness is running what the node should run. An agent
/// without its capabilities (every setup refused) is alive but not ready, and says why.
#[test]
fn an_agent_that_can_run_nothing_is_alive_but_not_ready() {
    let yaml = vip_yaml("web", 71, &["198.51.100.71/24"], &fast(""));
    let mut lab = Lab::new(2);
    let cfg = write_config(&lab, "vips.yaml", &yaml);
    // The unprivileged agent reads the file too.
    std::fs::set_permissions(
        lab.dir(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    start_agent(&mut lab, "n1", &cfg);
    let ns2 = lab.node("n2").ns.clone();
    let mut argv = vec![
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    argv.extend(agent_argv(&cfg, "n2"));
    lab.spawn(&ns2, &argv, "agent-n2.log");
    wait_holders(&lab, "198.51.100.71", &["n1"]);
    let ok = probe(&lab, "n1", "/readyz");
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.ends_with("ready\n"),
        "{ok}"
    );
    let mut not_ready = String::new();
    let up = wait_for(WAIT, || {
        not_ready = probe(&lab, "n2", "/readyz");
        not_ready.starts_with("HTTP/1.1 503")
    });
    assert!(up.is_some(), "{not_ready}\n{}", lab.log("agent-n2.log"));
    assert!(
        not_ready.contains("not ready: 1 of what this node should run cannot start")
            && not_ready.contains("web/ipv4: VRRP receive socket on eth0: Operation not permitted"),
        "{not_ready}"
    );
    let alive = probe(&lab, "n2", "/healthz");
    assert!(alive.starts_with("HTTP/1.1 200"), "{alive}");
}

/// A hostile file loaded into the master with SIGHUP (200 KB nested 100,000 deep, whose parse
/// once held the event loop for 18 s while the VIP's lifetime ran out): it is refused with the
/// reason, off the event loop, and the VIP answers throughout from the master. Then a file
/// nested within bounds but large (10,000 VirtualIP-free lines) is read the same way.
#[test]
fn a_hostile_file_on_sighup_is_refused_and_the_vip_answers_throughout() {
    let web = vip_yaml("web", 51, &["198.51.100.50/24"], &fast(""));
    let (mut lab, cfg, p1, _) = two_nodes(&web);
    wait_holders(&lab, VIP, &["n1"]);
    let client = lab.client.ns.clone();
    let probe =
        kube_vrrp_e2e::Prober::start(&client, VIP.parse().unwrap(), Duration::from_millis(10));
    std::thread::sleep(Duration::from_millis(200));
    // Written beside, then renamed: n2 reads the same file only at its own start.
    let hostile = format!("{}{}\n", "- ".repeat(100_000), "x");
    let tmp = format!("{cfg}.new");
    std::fs::write(&tmp, &hostile).unwrap();
    std::fs::rename(&tmp, &cfg).unwrap();
    lab.signal(p1, Signal::SIGHUP);
    let refused = wait_for(WAIT, || status(&lab, "n1")["configError"].is_string());
    assert!(refused.is_some(), "{}", lab.log("agent-n1.log"));
    let err = status(&lab, "n1")["configError"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains("nested more than 64"), "{err}");
    // /healthz (the event loop and the engine) answers.
    let health = lab.http_get(&lab.node("n1").ns, status_addr(), "/healthz");
    assert!(health.is_ok(), "{health:?}");
    std::thread::sleep(Duration::from_millis(500));
    let outage = probe.stop();
    assert_eq!(outage.lost, 0, "{outage:?}");
    assert_eq!(lab.holders(VIP), vec!["n1".to_string()]);
    // The good file again: taken.
    std::fs::write(&cfg, &web).unwrap();
    lab.signal(p1, Signal::SIGHUP);
    let cleared = wait_for(WAIT, || status(&lab, "n1")["configError"].is_null());
    assert!(cleared.is_some(), "{}", lab.log("agent-n1.log"));
}
