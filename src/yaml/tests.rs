//! The YAML reader against whole files: errors with document and field, and what the
//! documents resolve to on a node.

use super::*;
use crate::model::host::{ADDRESS_PROTO, Address, Link};
use crate::model::resolved::resolve_all;
use crate::vrrp::Authentication;
use std::net::IpAddr;

const GOOD: &str = r#"
apiVersion: kube-vrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: web}
spec:
  addresses: ["198.51.100.50/24", "2001:db8:1::50/64"]
  virtualRouterID: 51
  advertInterval: 100ms
  priorities: [{node: n1, priority: 200}]
---
apiVersion: kube-vrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: legacy}
spec:
  addresses: ["198.51.100.60/24"]
  virtualRouterID: 52
  version: 2
  authentication: {password: s3cret}
"#;

/// An instance key from its text.
fn key(text: &str) -> crate::ids::InstanceKey {
    text.parse().unwrap()
}

fn links() -> Vec<Link> {
    vec![
        Link {
            index: 1,
            name: "lo".into(),
            mac: None,
            mtu: 65536,
            up: true,
            parent: None,
        },
        Link::ethernet(2, "eth0", [2, 0, 0, 0, 0, 1]),
    ]
}

fn addrs() -> Vec<Address> {
    let a = |index, s: &str, prefix_len, proto| Address {
        index,
        address: s.parse().unwrap(),
        prefix_len,
        proto,
    };
    vec![
        a(1, "127.0.0.1", 8, None),
        a(2, "198.51.100.50", 24, Some(ADDRESS_PROTO)), // a stale VIP of ours
        a(2, "198.51.100.11", 24, None),
        a(2, "2001:db8:1::11", 64, None),
        a(2, "fe80::1", 64, None),
    ]
}

#[test]
fn parses_and_resolves_for_a_node() {
    let vips = parse(GOOD).unwrap();
    assert_eq!(vips.len(), 2);
    let plan = resolve_all(&vips, "n1", &links(), &addrs());
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    let all = plan.instances;
    assert_eq!(
        all.keys().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["legacy/ipv4", "web/ipv4", "web/ipv6"]
    );
    let w4 = &all[&key("web/ipv4")];
    assert_eq!((w4.interface.as_str(), w4.config.priority), ("eth0", 200));
    assert_eq!(
        w4.config.primary_address,
        "198.51.100.11".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        all[&key("web/ipv6")].config.primary_address,
        "fe80::1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(all[&key("legacy/ipv4")].config.priority, 100);
    assert_eq!(
        all[&key("legacy/ipv4")].config.authentication,
        Authentication::password("s3cret")
    );
}

fn error_of(yaml: &str) -> String {
    parse(yaml).unwrap_err().to_string()
}

#[test]
fn errors_name_document_field_and_reason() {
    let bad = GOOD.replace("advertInterval: 100ms", "advertInterval: 100");
    assert_eq!(
        error_of(&bad),
        "document 1 (\"web\"), field spec.advertInterval: \"100\" is not a duration: write numbers each with a unit, e.g. 1s, 100ms or 1m30s (units h, m, s, ms, us, ns)"
    );
    let bad = GOOD.replace("version: 2", "version: 2\n  advertInterval: 500ms");
    assert!(
        error_of(&bad).starts_with("document 2 (\"legacy\"), field spec.advertInterval: VRRPv2"),
        "{}",
        error_of(&bad)
    );
    let bad = GOOD.replace("priority: 200", "priority: 300");
    assert!(
        error_of(&bad).contains("field spec.priorities[0].priority"),
        "{}",
        error_of(&bad)
    );
    let bad = GOOD.replace("virtualRouterID: 52", "virtualRouterID: 51");
    assert!(
        error_of(&bad).contains("51 is already used by \"web\""),
        "{}",
        error_of(&bad)
    );
    let bad = GOOD.replace("198.51.100.60/24", "198.51.100.600/24");
    assert!(
        error_of(&bad).contains("field spec.addresses: \"198.51.100.600/24\" is not an IP address")
    );
    let bad = GOOD.replace("virtualRouterID: 51", "virtualRouterId: 51");
    assert!(
        error_of(&bad).contains("unknown field `virtualRouterId`"),
        "{}",
        error_of(&bad)
    );
    let bad = GOOD.replace(
        "kind: VirtualIP\nmetadata: {name: legacy}",
        "kind: ValidatedVirtualIp\nmetadata: {name: legacy}",
    );
    assert!(error_of(&bad).contains("document 2 (\"legacy\"), field kind"));
    let bad = GOOD.replace("version: 2", "version: 3");
    assert!(error_of(&bad).contains("authentication exists only in VRRPv2"));
    let bad = GOOD.replace(
        "password: s3cret",
        "passwordSecretRef: {name: vrrp, namespace: kube-system, key: password}",
    );
    assert!(
        error_of(&bad).contains(
            "field spec.authentication.passwordSecretRef: Secrets exist only in a cluster"
        )
    );
    let bad = GOOD.replace("password: s3cret", "password: waytoolongpassword");
    assert!(error_of(&bad).contains("1 to 8 characters"));
}

#[test]
fn resolution_errors_say_what_to_set() {
    let vips = parse(&GOOD.replace("198.51.100.60/24", "203.0.113.60/24")).unwrap();
    let e = resolve_all(&vips, "n1", &links(), &addrs()).errors[0]
        .2
        .clone();
    assert!(
        e.contains("no interface on node n1 has an address in 203.0.113.60/24: set spec.interface"),
        "{e}"
    );
    let vips = parse(&GOOD.replace(
        "virtualRouterID: 52",
        "virtualRouterID: 52\n  interface: eth9",
    ))
    .unwrap();
    let e = resolve_all(&vips, "n1", &links(), &addrs()).errors[0]
        .2
        .clone();
    assert!(e.contains("interface \"eth9\" does not exist"), "{e}");
}

#[test]
fn one_family_failing_leaves_the_other_running() {
    let vips = parse(GOOD).unwrap();
    let v4_only: Vec<Address> = addrs()
        .into_iter()
        .filter(|a| a.address.is_ipv4())
        .collect();
    let plan = resolve_all(&vips, "n1", &links(), &v4_only);
    assert_eq!(
        plan.instances
            .keys()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["legacy/ipv4", "web/ipv4"]
    );
    assert_eq!(plan.errors.len(), 1);
    assert_eq!(plan.errors[0].0, "web");
    assert!(
        plan.errors[0]
            .2
            .contains("no interface on node n1 has an address in 2001:db8:1::50/64"),
        "{:?}",
        plan.errors
    );
}

#[test]
fn a_host_address_is_never_taken_as_a_virtual_address() {
    let vips = parse(&GOOD.replace("198.51.100.60/24", "198.51.100.11/24")).unwrap();
    let plan = resolve_all(&vips, "n1", &links(), &addrs());
    assert!(plan.instances.contains_key(&key("web/ipv4")));
    assert!(
        plan.errors[0]
            .2
            .contains("198.51.100.11 is already an address of node n1 (eth0)"),
        "{:?}",
        plan.errors
    );
}

#[test]
fn the_edges_of_a_node_subnet_are_never_taken_even_as_a_host_address() {
    // A /32 (as a pool hands out) names no subnet: the node's /24 makes .255 its broadcast.
    for (vip, edge) in [
        ("198.51.100.255/32", "broadcast"),
        ("198.51.100.0/32", "network"),
    ] {
        let vips = parse(&GOOD.replace("198.51.100.60/24", vip)).unwrap();
        let plan = resolve_all(&vips, "n1", &links(), &addrs());
        assert!(plan.instances.contains_key(&key("web/ipv4")));
        let want = format!(
            "{} is the {edge} address of node n1's subnet 198.51.100.11/24",
            vip.trim_end_matches("/32")
        );
        assert!(
            plan.errors.iter().any(|e| e.2.contains(&want)),
            "{want}: {:?}",
            plan.errors
        );
    }
    // Any other host of the subnet is fine.
    let vips = parse(&GOOD.replace("198.51.100.60/24", "198.51.100.254/32")).unwrap();
    let plan = resolve_all(&vips, "n1", &links(), &addrs());
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
}

#[test]
fn vrids_are_unique_per_resolved_interface() {
    // One names eth0, the other leaves it to be found: both end up on eth0.
    let yaml = GOOD
        .replace(
            "virtualRouterID: 52",
            "virtualRouterID: 51\n  interface: eth0",
        )
        .replace("version: 2\n  authentication: {password: s3cret}\n", "");
    let vips = parse(&yaml).unwrap();
    let plan = resolve_all(&vips, "n1", &links(), &addrs());
    assert_eq!(plan.errors.len(), 1, "{:?}", plan.errors);
    assert!(
        plan.errors[0]
            .2
            .contains("legacy: virtual router 51 on eth0 is already used by \"web\""),
        "{:?}",
        plan.errors
    );
}

#[test]
fn harmful_values_are_refused() {
    for (from, to, expect) in [
        (
            "advertInterval: 100ms",
            "advertInterval: 100ms\n  garp: {masterRefresh: 1ns}",
            "spec.garp.masterRefresh",
        ),
        (
            "advertInterval: 100ms",
            "advertInterval: 100ms\n  garp: {masterDelay: 2h}",
            "spec.garp.masterDelay",
        ),
        (
            "advertInterval: 100ms",
            "advertInterval: 100ms\n  preemptDelay: 1000h",
            "spec.preemptDelay",
        ),
        (
            "advertInterval: 100ms",
            "advertInterval: 100ms\n  maxLearnedInterval: 50ms",
            "spec.maxLearnedInterval",
        ),
        (
            "advertInterval: 100ms",
            "advertInterval: 100ms\n  interface: lo",
            "loopback interface",
        ),
        (
            "advertInterval: 100ms",
            "advertInterval: 100ms\n  unicastPeers: [224.0.0.18]",
            "multicast address: it cannot be a unicast peer",
        ),
        (
            "advertInterval: 100ms",
            "advertInterval: 100ms\n  unicastPeers: [255.255.255.255]",
            "broadcast",
        ),
        ("198.51.100.60/24", "127.0.0.1/8", "loopback"),
        (
            "198.51.100.60/24",
            "198.51.100.255/24",
            "broadcast address of its subnet",
        ),
        ("198.51.100.60/24", "169.254.0.60/16", "link-local"),
        ("2001:db8:1::50/64", "::1/128", "loopback"),
        ("virtualRouterID: 52", "virtualRouterID: 0", "0 is reserved"),
    ] {
        let e = error_of(&GOOD.replace(from, to));
        assert!(e.contains(expect), "{to}: {e}");
    }
    assert!(error_of("").contains("no VirtualIP documents"));
    assert!(error_of("---\n---\n").contains("no VirtualIP documents"));
}

#[test]
fn the_samples_are_valid_standalone_files() {
    for text in [
        include_str!("../../config/web-vip.yaml"),
        include_str!("../../config/web-vip-checks.yaml"),
    ] {
        let vips = parse(text).unwrap();
        assert_eq!(vips.len(), 1);
    }
    let checks = parse(include_str!("../../config/web-vip-checks.yaml")).unwrap();
    assert_eq!(checks[0].tracking.checks.len(), 2);
}

#[test]
fn a_node_is_not_its_own_unicast_peer_and_needs_another() {
    let peers = |list: &str| {
        let vips = parse(&GOOD.replace(
            "virtualRouterID: 52",
            &format!("virtualRouterID: 52\n  unicastPeers: [{list}]"),
        ))
        .unwrap();
        resolve_all(&vips, "n1", &links(), &addrs())
    };
    let plan = peers("198.51.100.11, 198.51.100.12");
    assert_eq!(
        plan.instances[&key("legacy/ipv4")].config.unicast_peers,
        ["198.51.100.12".parse::<IpAddr>().unwrap()]
    );
    let plan = peers("198.51.100.11");
    assert!(!plan.instances.contains_key(&key("legacy/ipv4")));
    let e = &plan.errors[0].2;
    assert!(
        e.contains(
            "spec.unicastPeers lists only node n1's own addresses (198.51.100.11): it would have no peer to advertise to"
        ),
        "{e}"
    );
}
