use super::*;
use crate::model::virtualserver::RealServer;

const VIP: &str = "198.51.100.50";

fn a(i: u8) -> SocketAddr {
    format!("198.51.100.{i}:80").parse().unwrap()
}

pub(super) fn vs(forwarding: Forwarding, scheduler: Scheduler, weights: &[u32]) -> VirtualServer {
    VirtualServer {
        address: VIP.parse().unwrap(),
        port: 80,
        protocol: Protocol::Tcp,
        scheduler,
        forwarding,
        reals: weights
            .iter()
            .enumerate()
            .map(|(i, w)| RealServer {
                addr: a(21 + i as u8),
                weight: *w,
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

fn mac(i: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, i]
}

fn one_plan(v: &VirtualServer, up: &[bool], node: &Node) -> (Rules, ServicePlan) {
    let (r, p) = plan(
        &[Service {
            virtual_ip: "web",
            vs: v,
            up: up.to_vec(),
        }],
        node,
    );
    (r.services[0].clone(), p[0].clone())
}

fn count(table: &[SocketAddr], x: SocketAddr) -> usize {
    table.iter().filter(|t| **t == x).count()
}

/// A node where the VirtualIP runs on eth0 (MAC ..:01), knowing the real servers' MACs.
fn dr_node(holds: bool) -> Node {
    let mut n = Node {
        neighbours: (21..=23).map(|i| (a(i).ip(), mac(i))).collect(),
        ..Node::default()
    };
    n.addresses.insert("198.51.100.11".parse().unwrap());
    if holds {
        n.addresses.insert(VIP.parse().unwrap());
    }
    n.links.insert(
        InstanceKey::new("web", Family::V4),
        OnLink {
            interface: "eth0".into(),
            mac: mac(1),
            answers: mac(1),
        },
    );
    n
}

#[test]
fn round_robin_takes_the_servers_up_in_turn_and_leaves_the_others_out() {
    let v = vs(Forwarding::Nat, Scheduler::RoundRobin, &[1, 5, 1]);
    let (all, _) = one_plan(&v, &[true; 3], &Node::default());
    assert_eq!(&all.table[..6], &[a(21), a(22), a(23), a(21), a(22), a(23)]);
    let (r, p) = one_plan(&v, &[true, false, true], &Node::default());
    assert_eq!(r.pick, Pick::Counter);
    // 22's turns go to the others in turn; the others keep theirs.
    assert_eq!(&r.table[..6], &[a(21), a(21), a(23), a(21), a(23), a(23)]);
    assert_eq!(count(&r.table, a(22)), 0);
    assert!(count(&r.table, a(21)).abs_diff(count(&r.table, a(23))) <= 1);
    assert_eq!(p.up(), "2/3");
    assert_eq!(p.reals[1].reach, Reach::Down);
    assert_eq!(p.reals[1].weight, None);
    assert_eq!(p.serving, Serving::RealServers);
    // NAT: a hairpin for the real servers.
    assert_eq!(
        r.snat,
        Snat::Hairpin(vec![a(21).ip(), a(22).ip(), a(23).ip()])
    );
}

#[test]
fn a_drained_server_holds_no_slot_and_is_said_apart() {
    let v = vs(Forwarding::Nat, Scheduler::WeightedRoundRobin, &[0, 1, 1]);
    let (r, p) = one_plan(&v, &[true; 3], &Node::default());
    assert_eq!(count(&r.table, a(21)), 0);
    assert!(p.reals[0].drained() && !p.reals[1].drained());
    assert_eq!(p.up(), "2/3 (1 drained)");
    // Drained and failing: down, not drained.
    let (_, p) = one_plan(&v, &[false, true, true], &Node::default());
    assert!(!p.reals[0].drained());
    assert_eq!(p.up(), "2/3");
}

#[test]
fn weighted_round_robin_follows_the_weights_as_written() {
    let v = vs(
        Forwarding::Nat,
        Scheduler::WeightedRoundRobin,
        &[1, 2, 3, 4],
    );
    let (r, p) = one_plan(&v, &[true; 4], &Node::default());
    let c: Vec<usize> = (21..=24).map(|i| count(&r.table, a(i))).collect();
    for w in c.windows(2) {
        assert!(w[0] < w[1], "monotone in weight: {c:?}");
    }
    // Within one turn of the exact share.
    for (i, n) in c.iter().enumerate() {
        let exact = (i + 1) as f64 * f64::from(SLOTS) / 10.0;
        assert!((*n as f64 - exact).abs() <= 1.0, "{c:?}");
    }
    assert_eq!(p.reals[3].slots as usize, c[3]);
}

#[test]
fn inhibit_keeps_a_dead_server_at_weight_zero_and_the_sorry_server_answers_when_none_is_left() {
    let mut v = vs(Forwarding::FullNat, Scheduler::RoundRobin, &[1, 1]);
    v.inhibit_on_failure = true;
    let (r, p) = one_plan(&v, &[false, true], &Node::default());
    assert_eq!(p.reals[0].weight, Some(0));
    assert_eq!(count(&r.table, a(21)), 0);
    assert_eq!(r.snat, Snat::FromVirtual(VIP.parse().unwrap()));
    let (r, p) = one_plan(&v, &[false, false], &Node::default());
    assert!(r.table.is_empty());
    assert_eq!(p.serving, Serving::Nowhere);
    v.sorry = Some(a(99));
    let (r, p) = one_plan(&v, &[false, false], &Node::default());
    assert_eq!(p.serving, Serving::Sorry);
    assert!(r.table.iter().all(|t| *t == a(99)) && r.table.len() == SLOTS as usize);
}

#[test]
fn source_hash_and_direct_routing_use_a_maglev_table_by_weight() {
    let v = vs(Forwarding::Nat, Scheduler::SourceHash, &[3, 2, 1]);
    let (r, _) = one_plan(&v, &[true; 3], &Node::default());
    assert_eq!(r.pick, Pick::Source);
    let c: Vec<usize> = (21..=23).map(|i| count(&r.table, a(i))).collect();
    assert_eq!(c.iter().sum::<usize>(), SLOTS as usize);
    assert!(
        (c[0] as f64 / f64::from(SLOTS) - 0.5).abs() < 0.001,
        "{c:?}"
    );
    let v = vs(Forwarding::DirectRouting, Scheduler::RoundRobin, &[1, 1, 1]);
    let (r, _) = one_plan(&v, &[true; 3], &dr_node(true));
    assert_eq!(r.pick, Pick::Flow);
}

#[test]
fn direct_routing_never_reports_up_or_sends_to_a_server_whose_mac_is_unknown() {
    let v = vs(
        Forwarding::DirectRouting,
        Scheduler::RoundRobin,
        &[1, 1, 1, 1],
    );
    // 198.51.100.24 has no neighbour entry.
    let node = dr_node(true);
    let (r, p) = one_plan(&v, &[true; 4], &node);
    assert_eq!(p.reals[3].reach, Reach::NoMac);
    assert_eq!(p.up(), "3/4");
    let routed = r.routed.expect("runs here");
    assert_eq!(routed.macs().len(), SLOTS as usize);
    assert!(!routed.macs().contains(&[0; 6]));
    for (addr, m) in r.table.iter().zip(&routed.macs()) {
        assert_eq!(node.neighbours[&addr.ip()], *m);
    }
    assert_eq!(routed.pin, PIN_TCP);
    // Not running here: no forwarding rules, and the status says so.
    let mut away = dr_node(true);
    away.links.clear();
    let (r, p) = one_plan(&v, &[true; 4], &away);
    assert!(r.routed.is_none() && !p.routed_here);
}

#[test]
fn only_the_holder_forwards_and_a_director_that_is_a_real_server_takes_frames_locally() {
    // The classic two-node LVS-DR: n1 (.11) and n2 (.12) are directors and each other's real
    // servers.
    let mut v = vs(Forwarding::DirectRouting, Scheduler::RoundRobin, &[]);
    v.allow_node_addresses = true;
    v.reals = [11, 12]
        .map(|i| RealServer {
            addr: a(i),
            weight: 1,
            check: None,
            inhibit: None,
        })
        .into();
    let n1 = {
        let mut n = dr_node(true);
        n.neighbours.insert(a(12).ip(), mac(2));
        n
    };
    let n2 = {
        let mut n = dr_node(false);
        n.addresses = ["198.51.100.12".parse().unwrap()].into();
        n.neighbours.insert(a(11).ip(), mac(1));
        n.links
            .get_mut(&InstanceKey::new("web", Family::V4))
            .unwrap()
            .mac = mac(2);
        n.links
            .get_mut(&InstanceKey::new("web", Family::V4))
            .unwrap()
            .answers = mac(2);
        n
    };
    let (r1, p1) = one_plan(&v, &[true, true], &n1);
    let (r2, p2) = one_plan(&v, &[true, true], &n2);
    let (d1, d2) = (r1.routed.unwrap(), r2.routed.unwrap());
    // The master forwards; its own slots carry its own MAC: delivered here, not sent out.
    assert!(d1.holds && d1.here);
    assert!(d1.macs().contains(&mac(1)) && d1.macs().contains(&mac(2)));
    // The backup forwards nothing (what the master sends it is never sent on) and takes it.
    assert!(!d2.holds && d2.here);
    assert_eq!(p1.up(), "2/2");
    assert_eq!(p2.up(), "2/2");
    // Both compute the same table: a takeover sends each flow where it went.
    assert_eq!(r1.table, r2.table);
}

#[test]
fn a_sorry_server_by_direct_routing_needs_its_mac() {
    let mut v = vs(Forwarding::DirectRouting, Scheduler::RoundRobin, &[1]);
    v.sorry = Some(a(99));
    let (r, p) = one_plan(&v, &[false], &dr_node(true));
    assert_eq!(p.serving, Serving::Nowhere);
    assert!(r.table.is_empty() && r.routed.unwrap().slots.is_empty());
    let mut n = dr_node(true);
    n.neighbours.insert(a(99).ip(), mac(99));
    let (r, p) = one_plan(&v, &[false], &n);
    assert_eq!(p.serving, Serving::Sorry);
    assert!(r.routed.unwrap().macs().iter().all(|m| *m == mac(99)));
}

#[test]
fn a_nodes_own_address_needs_the_virtual_servers_leave_and_networks_bound_the_rest() {
    let mut v = vs(Forwarding::Nat, Scheduler::RoundRobin, &[1, 1]);
    let mut node = Node::default();
    node.addresses.insert(a(21).ip());
    let (r, p) = one_plan(&v, &[true, true], &node);
    assert_eq!(p.reals[0].reach, Reach::NodeAddress);
    assert_eq!(count(&r.table, a(21)), 0);
    assert_eq!(p.up(), "1/2");
    let why = p.reals[0].reach.why(a(21).ip(), &[]).unwrap();
    assert!(why.contains("allowNodeAddresses"), "{why}");
    v.allow_node_addresses = true;
    let (_, p) = one_plan(&v, &[true, true], &node);
    assert_eq!(p.up(), "2/2");
    // Only 198.51.100.22/32 allowed: .21 is out, and a sorry server outside is never used.
    node.networks = vec!["198.51.100.22/32".parse().unwrap()];
    let (r, p) = one_plan(&v, &[true, true], &node);
    assert_eq!(p.reals[0].reach, Reach::Outside);
    assert!(r.table.iter().all(|t| *t == a(22)));
    v.sorry = Some(a(99));
    let (r, p) = one_plan(&v, &[true, false], &node);
    assert_eq!(p.serving, Serving::Nowhere);
    assert!(r.table.is_empty());
    assert!("198.51.100.0/33".parse::<Network>().is_err());
    assert!(
        "2001:db8::/64"
            .parse::<Network>()
            .unwrap()
            .contains("2001:db8::7".parse().unwrap())
    );
}

#[test]
fn tcp_flows_stay_with_a_server_taken_out_and_udp_flows_choose_again() {
    let mut v = vs(Forwarding::DirectRouting, Scheduler::RoundRobin, &[1, 1, 1]);
    let (r, _) = one_plan(&v, &[true, false, true], &dr_node(true));
    let d = r.routed.unwrap();
    assert!(!d.slots.contains(&1) && d.servers[1].keeps_flows);
    v.protocol = Protocol::Udp;
    let (r, _) = one_plan(&v, &[true, false, true], &dr_node(true));
    let d = r.routed.unwrap();
    assert!(!d.servers[1].keeps_flows && d.servers[0].keeps_flows);
    assert_eq!(d.pin, PIN_UDP);
    v.inhibit_on_failure = true;
    let (r, _) = one_plan(&v, &[true, false, true], &dr_node(true));
    assert!(r.routed.unwrap().servers[1].keeps_flows, "kept at weight 0");
}

#[test]
fn a_server_going_down_changes_only_its_own_round_robin_slots() {
    let v = vs(
        Forwarding::Nat,
        Scheduler::WeightedRoundRobin,
        &[1, 2, 3, 4, 5, 6, 7, 8],
    );
    let (all, _) = one_plan(&v, &[true; 8], &Node::default());
    let mut up = [true; 8];
    up[2] = false;
    let (less, p) = one_plan(&v, &up, &Node::default());
    let own = count(&all.table, a(23));
    let moved = all
        .table
        .iter()
        .zip(&less.table)
        .filter(|(x, y)| x != y)
        .count();
    assert_eq!(moved, own, "only its own slots move");
    assert_eq!(count(&less.table, a(23)), 0);
    // Its share goes to the others by weight: every share within a slot or two of exact.
    let total: f64 = [1, 2, 4, 5, 6, 7, 8].iter().map(|w| f64::from(*w)).sum();
    for (i, w) in [
        (21, 1),
        (22, 2),
        (24, 4),
        (25, 5),
        (26, 6),
        (27, 7),
        (28, 8),
    ] {
        let exact = f64::from(w) / total * f64::from(SLOTS);
        let n = count(&less.table, a(i)) as f64;
        assert!((n - exact).abs() <= 2.0, "{i}: {n} for {exact:.1}");
    }
    assert_eq!(p.up(), "7/8");
    // Back: the same table as before.
    let (again, _) = one_plan(&v, &[true; 8], &Node::default());
    assert_eq!(again.table, all.table);
}
