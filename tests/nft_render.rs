//! The director's rule sets as `nft` renders them, loaded by the kernel in a lab namespace:
//! a whole set, then a real server going down (a few map elements: the rules and their
//! handles stay), a configuration change (the maps of what remains stay, direct routing's
//! flows among them), and the end (nothing of ours left). Needs root and nft; fails, never
//! skips, without them.

use std::collections::BTreeMap;

use kube_vrrp::api::{Forwarding, Protocol, Scheduler};
use kube_vrrp::director::{self, Node, OnLink, RuleSet, SLOTS};
use kube_vrrp::ids::{Family, InstanceKey};
use kube_vrrp::model::virtualserver::{RealServer, VirtualServer};
use kube_vrrp::net::nft;
use kube_vrrp_e2e::Lab;

mod common;
use common::lab::*;

fn vs(addr: &str, port: u16, forwarding: Forwarding, scheduler: Scheduler) -> VirtualServer {
    let v6 = addr.contains(':');
    VirtualServer {
        address: addr.parse().unwrap(),
        port,
        protocol: Protocol::Tcp,
        scheduler,
        forwarding,
        reals: (21..=23)
            .map(|i| RealServer {
                addr: if v6 {
                    format!("[2001:db8:1::{i}]:{port}")
                } else {
                    format!("198.51.100.{i}:{port}")
                }
                .parse()
                .unwrap(),
                weight: 1,
                check: None,
                inhibit: None,
            })
            .collect(),
        sorry: None,
        inhibit_on_failure: false,
        persistence: None,
        allow_node_addresses: false,
    }
}

fn persistent(mut v: VirtualServer) -> VirtualServer {
    v.persistence = Some(std::time::Duration::from_secs(300));
    v
}

fn load(lab: &Lab, ns: &str, script: &str) -> Result<(), String> {
    let path = lab.dir().join("rules.nft");
    std::fs::write(&path, script).unwrap();
    let out = lab.exec(ns, &["nft", "-f", path.to_str().unwrap()]);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn rules(services: &[VirtualServer], up: &[Vec<bool>], node: &Node) -> RuleSet {
    let s: Vec<director::Service<'_>> = services
        .iter()
        .zip(up)
        .map(|(v, up)| director::Service {
            virtual_ip: "web",
            vs: v,
            up: up.clone(),
        })
        .collect();
    director::plan(&s, node).0
}

/// The rules with their handles, and what every map holds.
fn listing(lab: &Lab, ns: &str) -> (String, String) {
    let out = lab.exec(ns, &["nft", "-a", "list", "ruleset"]);
    assert!(
        out.status.success(),
        "nft list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let rules = all
        .lines()
        .filter(|l| l.contains("# handle") && !l.contains("map ") && !l.contains("set "))
        .collect::<Vec<_>>()
        .join("\n");
    (rules, all)
}

#[test]
fn rule_sets_load_and_a_health_change_edits_only_map_elements() {
    let lab = Lab::new(1);
    let ns = lab.node("n1").ns.clone();
    let mac: [u8; 6] = {
        let m = mac_of(&lab, "n1");
        let b: Vec<u8> = m
            .split(':')
            .map(|x| u8::from_str_radix(x, 16).unwrap())
            .collect();
        b.try_into().unwrap()
    };
    let services = vec![
        vs("198.51.100.50", 80, Forwarding::Nat, Scheduler::RoundRobin),
        vs(
            "198.51.100.50",
            443,
            Forwarding::FullNat,
            Scheduler::SourceHash,
        ),
        vs(
            "198.51.100.50",
            8080,
            Forwarding::DirectRouting,
            Scheduler::WeightedRoundRobin,
        ),
        vs(
            "2001:db8:1::50",
            80,
            Forwarding::Nat,
            Scheduler::WeightedRoundRobin,
        ),
        vs(
            "2001:db8:1::50",
            8080,
            Forwarding::DirectRouting,
            Scheduler::SourceHash,
        ),
        persistent(vs(
            "198.51.100.50",
            81,
            Forwarding::FullNat,
            Scheduler::RoundRobin,
        )),
        persistent(vs(
            "198.51.100.50",
            82,
            Forwarding::DirectRouting,
            Scheduler::RoundRobin,
        )),
    ];
    let mut node = Node::default();
    for family in [Family::V4, Family::V6] {
        node.links.insert(
            InstanceKey::new("web", family),
            OnLink {
                interface: "eth0".into(),
                mac,
                answers: mac,
            },
        );
    }
    node.addresses = ["198.51.100.11", "198.51.100.50"]
        .map(|a| a.parse().unwrap())
        .into();
    node.neighbours = (21..=23)
        .flat_map(|i| {
            [
                (
                    format!("198.51.100.{i}").parse().unwrap(),
                    [2, 0, 0, 0, 0, i],
                ),
                (
                    format!("2001:db8:1::{i}").parse().unwrap(),
                    [2, 0, 0, 0, 0, i],
                ),
            ]
        })
        .collect::<BTreeMap<_, _>>();
    let all_up = vec![vec![true; 3]; services.len()];
    let first = rules(&services, &all_up, &node);
    // The kernel's parser takes the whole set (a predecessor's tables removed first).
    load(&lab, &ns, &nft::full(None, &first)).expect("the whole set loads");
    let (rules_before, text) = listing(&lab, &ns);
    for needle in [
        "dnat ip to numgen inc mod 4093 map @vs_198_51_100_50_80_tcp",
        "dnat ip to jhash ip saddr mod 4093 seed 0x6b757665 map @vs_198_51_100_50_443_tcp",
        "ip saddr . tcp sport @vs_198_51_100_50_8080_tcp_p0 goto vs_198_51_100_50_8080_tcp_s0",
        "tcp flags syn / syn,ack goto vs_198_51_100_50_8080_tcp_new",
        "delete @vs_198_51_100_50_8080_tcp_p2 { ip saddr . tcp sport }",
        "jhash ip saddr . tcp sport mod 4093 seed 0x6b757665 vmap @vs_198_51_100_50_8080_tcp_slots",
        "ip6 saddr . tcp sport @vs_2001_db8_1__50_8080_tcp_p1 goto",
        "ip daddr @held4",
        "fwd to \"eth0\"",
        "dnat ip6 to numgen inc mod 4093 map @vs_2001_db8_1__50_80_tcp",
        "iif 0 meta l4proto tcp ct original ip daddr 198.51.100.50 ct original proto-dst 443 masquerade",
        "ct original proto-dst 443 snat ip to 198.51.100.50",
        "ip daddr 198.51.100.50 tcp dport 8080 fib daddr type local ip daddr != @held4 drop",
        "dnat ip to ip saddr map @vs_198_51_100_50_81_tcp_clients",
        "update @vs_198_51_100_50_81_tcp_clients { ct original ip saddr : ip daddr . tcp dport }",
        "update @vs_198_51_100_50_82_tcp_p0 { ip saddr . tcp sport } update @vs_198_51_100_50_82_tcp_c0 { ip saddr } ether daddr set 02:00:00:00:00:15 goto out_eth0",
        "ip saddr @vs_198_51_100_50_82_tcp_c1 goto vs_198_51_100_50_82_tcp_s1",
    ] {
        assert!(text.contains(needle), "{needle}\n{text}");
    }
    // This node holds only the IPv4 address: only its frames are forwarded.
    let held = stdout(
        &lab,
        &ns,
        &["nft", "list", "set", "netdev", nft::TABLE, "held4"],
    );
    assert!(held.contains("198.51.100.50"), "{held}");
    let held6 = stdout(
        &lab,
        &ns,
        &["nft", "list", "set", "netdev", nft::TABLE, "held6"],
    );
    assert!(!held6.contains("2001:db8:1::50"), "{held6}");

    // One real server down: only elements change, every rule keeps its handle.
    let mut one_down = all_up.clone();
    one_down[0][1] = false;
    one_down[2][1] = false;
    let second = rules(&services, &one_down, &node);
    let edit = nft::changes(&first, &second).expect("the same rules");
    assert!(!edit.contains("chain"), "{edit}");
    // TCP flows stay with the server taken out (a new connection is chosen afresh anyway).
    assert!(!edit.contains("flush"), "{edit}");
    // Maglev moves little more than the server's own third of the DR table.
    let moved: usize = edit
        .lines()
        .filter(|l| l.starts_with("add element netdev"))
        .map(|l| l.matches("goto").count())
        .sum();
    assert!(
        moved >= SLOTS as usize / 3 && moved < SLOTS as usize / 2,
        "{moved} DR slots moved"
    );
    load(&lab, &ns, &edit).expect("the edit loads");
    let (rules_after, text) = listing(&lab, &ns);
    assert_eq!(rules_before, rules_after, "the rules were not replaced");
    let map = stdout(
        &lab,
        &ns,
        &[
            "nft",
            "list",
            "map",
            "inet",
            nft::TABLE,
            "vs_198_51_100_50_80_tcp",
        ],
    );
    assert!(
        map.contains("198.51.100.21 . 80") && !map.contains("198.51.100.22 . 80"),
        "{text}"
    );
    assert_eq!(nft::changes(&second, &second).as_deref(), Some(""));

    // The node leaves the address: one set element.
    node.addresses.remove(&"198.51.100.50".parse().unwrap());
    let third = rules(&services, &one_down, &node);
    let edit = nft::changes(&second, &third).expect("the same rules");
    assert_eq!(
        edit,
        format!(
            "delete element inet {0} held4 {{ 198.51.100.50 }}\ndelete element netdev {0} held4 {{ 198.51.100.50 }}\n",
            nft::TABLE
        )
    );
    load(&lab, &ns, &edit).expect("the edit loads");

    // A new configuration: port 80 and the IPv6 DR service go; the others' maps stay.
    let fewer: Vec<VirtualServer> = services[1..4].to_vec();
    let fourth = rules(&fewer, &one_down[1..4], &node);
    assert!(nft::changes(&third, &fourth).is_none(), "the rules changed");
    load(&lab, &ns, &nft::full(Some(&third), &fourth)).expect("the new set loads");
    let (_, text) = listing(&lab, &ns);
    assert!(!text.contains("vs_198_51_100_50_80_tcp "), "{text}");
    assert!(!text.contains("vs_2001_db8_1__50_8080"), "{text}");
    assert!(text.contains("set vs_198_51_100_50_8080_tcp_p0"), "{text}");
    // And the end: nothing of ours.
    load(&lab, &ns, &nft::full(Some(&fourth), &RuleSet::default())).expect("removal loads");
    let (_, text) = listing(&lab, &ns);
    assert!(!text.contains(nft::TABLE), "{text}");
}

#[test]
fn the_structure_reads_as_written() {
    let mut v = vs("198.51.100.50", 80, Forwarding::Nat, Scheduler::RoundRobin);
    v.reals.truncate(1);
    let rs = rules(&[v], &[vec![true]], &Node::default());
    let want = "table inet kube_vrrp {
\tmap vs_198_51_100_50_80_tcp { typeof numgen inc mod 4093 : ip daddr . tcp dport; }
\tcounter vs_198_51_100_50_80_tcp_198_51_100_21_80_in { }
\tcounter vs_198_51_100_50_80_tcp_198_51_100_21_80_new { }
\tcounter vs_198_51_100_50_80_tcp_198_51_100_21_80_out { }
\tmap stats4_new { type ipv4_addr . inet_proto . ipv4_addr . inet_service : counter; }
\tmap stats4_in { type ipv4_addr . inet_proto . ipv4_addr . inet_service : counter; }
\tmap stats4_out { type ipv4_addr . inet_proto . ipv4_addr . inet_service : counter; }
\tchain stats {
\t\ttype filter hook forward priority filter; policy accept;
\t\tct state new ct direction original counter name ct original ip daddr . meta l4proto . ip daddr . th dport map @stats4_new
\t\tct direction original counter name ct original ip daddr . meta l4proto . ip daddr . th dport map @stats4_in
\t\tct direction reply counter name ct original ip daddr . meta l4proto . ip saddr . th sport map @stats4_out
\t}
\tset held4 { type ipv4_addr; }
\tset held6 { type ipv6_addr; }
\tchain guard {
\t\ttype filter hook prerouting priority -150; policy accept;
\t}
\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tip daddr 198.51.100.50 tcp dport 80 dnat ip to numgen inc mod 4093 map @vs_198_51_100_50_80_tcp
\t}
\tchain output {
\t\ttype nat hook output priority -100; policy accept;
\t\tip daddr 198.51.100.50 tcp dport 80 dnat ip to numgen inc mod 4093 map @vs_198_51_100_50_80_tcp
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr { 198.51.100.21 } meta l4proto tcp ct original ip daddr 198.51.100.50 ct original proto-dst 80 masquerade
\t}
}
";
    assert_eq!(nft::structure(&rs), want);
}
