//! The rules of a rule set as text: the NAT chains (`inet`) and direct routing's ingress
//! chains (`netdev`), without the maps' elements.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::{TABLE, dev_name, mac, match_of, name, routed, slot_expr};
use crate::api::{Forwarding, Protocol};
use crate::director::{RuleSet, SLOTS, Snat};

/// Everything but the maps' and sets' elements: equal structures differ only in elements.
pub fn structure(rs: &RuleSet) -> String {
    if rs.services.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    // inet: maps, then the chains.
    let _ = writeln!(s, "table inet {TABLE} {{");
    for r in &rs.services {
        let (fam, l4) = match_of(r);
        let _ = writeln!(
            s,
            "\tmap {} {{ typeof numgen inc mod {SLOTS} : {fam} daddr . {l4} dport; }}",
            name(r)
        );
        if let (Some(t), None) = (r.persist, routed(r)) {
            let _ = writeln!(
                s,
                "\tmap {}_clients {{ typeof {fam} saddr : {fam} daddr . {l4} dport; flags dynamic,timeout; timeout {}s; size 65536; }}",
                name(r),
                t.as_secs()
            );
        }
    }
    let mut pre = String::new();
    let mut out = String::new();
    let mut post = String::new();
    let mut guard = String::new();
    for r in &rs.services {
        let (fam, l4) = match_of(r);
        let (vip, port, n) = (r.key.addr.ip(), r.key.addr.port(), name(r));
        let mut dnat = format!(
            "\t\t{fam} daddr {vip} {l4} dport {port} dnat {fam} to {} map @{n}\n",
            slot_expr(r)
        );
        // Persistence: a client's real server, while it has one, before the table; it is
        // recorded after the translation (postrouting), where the packet names the server.
        let persistent = r.persist.is_some() && routed(r).is_none();
        if persistent {
            dnat = format!(
                "\t\t{fam} daddr {vip} {l4} dport {port} dnat {fam} to {fam} saddr map @{n}_clients\n{dnat}"
            );
            let _ = writeln!(
                post,
                "\t\tmeta l4proto {l4} ct original {fam} daddr {vip} ct original proto-dst {port} update @{n}_clients {{ ct original {fam} saddr : {fam} daddr . {l4} dport }}"
            );
        }
        // Direct routing forwards frames before the IP stack sees them: only the director's
        // own connections are NATed, in its output chain.
        if r.forwarding != Forwarding::DirectRouting {
            pre.push_str(&dnat);
        }
        out.push_str(&dnat);
        // Direct routing, the moment between this node binding the address and its `held`
        // set saying so: a frame for it would reach this node's stack, which resets the
        // connection; dropped, the client sends it again, and it is forwarded.
        if routed(r).is_some() {
            let held = if vip.is_ipv4() { "held4" } else { "held6" };
            let _ = writeln!(
                guard,
                "\t\t{fam} daddr {vip} {l4} dport {port} fib daddr type local {fam} daddr != @{held} drop"
            );
        }
        // A director that is one of the real servers takes what the master forwards to it
        // (the address is not bound here while it is a backup).
        if routed(r).is_some_and(|d| d.here) {
            let _ = writeln!(
                pre,
                "\t\t{fam} daddr {vip} {l4} dport {port} fib daddr type != local redirect"
            );
        }
        let original =
            format!("meta l4proto {l4} ct original {fam} daddr {vip} ct original proto-dst {port}");
        let from = match &r.snat {
            Snat::Masquerade => String::new(),
            Snat::FromVirtual(a) => {
                // The director's own connections (no input interface) from its address; the
                // clients' from the virtual server's.
                let _ = writeln!(post, "\t\tmeta iif 0 {original} masquerade");
                let _ = writeln!(post, "\t\t{original} snat {fam} to {a}");
                continue;
            }
            Snat::Hairpin(ips) if ips.is_empty() => continue,
            Snat::Hairpin(ips) => {
                let list: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
                format!("{fam} saddr {{ {} }} ", list.join(", "))
            }
        };
        let _ = writeln!(post, "\t\t{from}{original} masquerade");
    }
    s.push_str(&stats(rs));
    let _ = writeln!(
        s,
        "\tset held4 {{ type ipv4_addr; }}\n\tset held6 {{ type ipv6_addr; }}\n\tchain guard {{\n\t\ttype filter hook prerouting priority -150; policy accept;\n{guard}\t}}"
    );
    for (chain, hook, priority, rules) in [
        ("prerouting", "prerouting", "dstnat", &pre),
        // (`dstnat` names -100 only for prerouting.)
        ("output", "output", "-100", &out),
        ("postrouting", "postrouting", "srcnat", &post),
    ] {
        let _ = writeln!(
            s,
            "\tchain {chain} {{\n\t\ttype nat hook {hook} priority {priority}; policy accept;\n{rules}\t}}"
        );
    }
    s.push_str("}\n");
    s.push_str(&direct_routing(rs));
    s
}

/// The counters of the counted servers (named, so a new configuration keeps their values),
/// the maps from a path to its counters and the chain that counts: in the forward hook,
/// after the translation, the packet names the real server (its destination one way, its
/// source the other) and the connection the virtual server.
fn stats(rs: &RuleSet) -> String {
    let (_, elements) = super::counter_names(rs);
    if elements.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    let mut counters: Vec<&str> = elements.iter().map(|e| e.counter.as_str()).collect();
    counters.sort_unstable();
    for c in counters {
        let _ = writeln!(s, "\tcounter {c} {{ }}");
    }
    let mut chain = String::new();
    for (fam, addr) in [(4, "ipv4_addr"), (6, "ipv6_addr")] {
        if !elements
            .iter()
            .any(|e| e.map.starts_with(&format!("stats{fam}_")))
        {
            continue;
        }
        let ip = if fam == 4 { "ip" } else { "ip6" };
        for what in ["new", "in", "out"] {
            let _ = writeln!(
                s,
                "\tmap stats{fam}_{what} {{ type {addr} . inet_proto . {addr} . inet_service : counter; }}"
            );
        }
        let path = |dir: &str| {
            let (a, p) = if dir == "out" {
                ("saddr", "sport")
            } else {
                ("daddr", "dport")
            };
            format!(
                "ct original {ip} daddr . meta l4proto . {ip} {a} . th {p} map @stats{fam}_{dir}"
            )
        };
        let _ = writeln!(
            chain,
            "\t\tct state new ct direction original counter name {}",
            path("new")
        );
        let _ = writeln!(
            chain,
            "\t\tct direction original counter name {}",
            path("in")
        );
        let _ = writeln!(chain, "\t\tct direction reply counter name {}", path("out"));
    }
    let _ = writeln!(
        s,
        "\tchain stats {{\n\t\ttype filter hook forward priority filter; policy accept;\n{chain}\t}}"
    );
    s
}

/// Direct routing: per interface, an ingress chain that sends the frames for the address to
/// a real server's MAC and out again, with the director's MAC as source so the switch never
/// learns the client on its port; frames for this node's own MAC (it is the real server
/// chosen) go up its stack. Each real server has a set of the flows it carries (client address
/// and port, with a timeout refreshed by every packet): a flow it knows stays with it, a new
/// TCP connection (a SYN) first forgets a reused port's old server and is chosen by the table.
/// (A set, not a map of flow → MAC: the kernel neither overwrites nor deletes a map's element
/// from the packet path, so a reused port would keep a stale server.)
fn direct_routing(rs: &RuleSet) -> String {
    let mut chains: BTreeMap<&str, (String, [u8; 6])> = BTreeMap::new();
    let mut objs = String::new();
    for r in &rs.services {
        let Some(d) = routed(r) else { continue };
        let (fam, l4) = match_of(r);
        let (vip, port, n) = (r.key.addr.ip(), r.key.addr.port(), name(r));
        let flow = format!("{fam} saddr . {l4} sport");
        let out = format!("out_{}", dev_name(&d.link.interface));
        let _ = writeln!(
            objs,
            "\tmap {n}_slots {{ typeof numgen inc mod {SLOTS} : verdict; }}"
        );
        let mut new = String::new();
        let tcp = r.protocol == Protocol::Tcp;
        for (i, server) in d.servers.iter().enumerate() {
            let _ = writeln!(
                objs,
                "\tset {n}_p{i} {{ typeof {flow}; flags dynamic,timeout; timeout {}s; size 262144; }}",
                d.pin.as_secs()
            );
            if tcp {
                let _ = writeln!(new, "\t\tdelete @{n}_p{i} {{ {flow} }}");
            }
            if let Some(t) = r.persist {
                let _ = writeln!(
                    objs,
                    "\tset {n}_c{i} {{ typeof {fam} saddr; flags dynamic,timeout; timeout {}s; size 65536; }}",
                    t.as_secs()
                );
            }
            let Some(m) = server.mac else { continue };
            let remember_client = if r.persist.is_some() {
                format!("update @{n}_c{i} {{ {fam} saddr }} ")
            } else {
                String::new()
            };
            let _ = writeln!(
                objs,
                "\tchain {n}_s{i} {{\n\t\tupdate @{n}_p{i} {{ {flow} }} {remember_client}ether daddr set {} goto {out}\n\t}}",
                mac(&m)
            );
        }
        if r.persist.is_some() {
            for (i, server) in d.servers.iter().enumerate() {
                if server.mac.is_some() {
                    let _ = writeln!(new, "\t\t{fam} saddr @{n}_c{i} goto {n}_s{i}");
                }
            }
        }
        let _ = writeln!(new, "\t\t{} vmap @{n}_slots", slot_expr(r));
        let _ = writeln!(objs, "\tchain {n}_new {{\n{new}\t}}");
        let held = if vip.is_ipv4() { "held4" } else { "held6" };
        let head = format!(
            "ether daddr {} {fam} daddr {vip} {fam} daddr @{held} {l4} dport {port}",
            mac(&d.link.answers)
        );
        let (rules, _) = chains
            .entry(d.link.interface.as_str())
            .or_insert_with(|| (String::new(), d.link.mac));
        if tcp {
            let _ = writeln!(
                rules,
                "\t\t{head} tcp flags & (syn | ack) == syn goto {n}_new"
            );
        }
        for (i, server) in d.servers.iter().enumerate() {
            if server.mac.is_some() {
                let _ = writeln!(rules, "\t\t{head} {flow} @{n}_p{i} goto {n}_s{i}");
            }
        }
        let _ = writeln!(rules, "\t\t{head} goto {n}_new");
    }
    if chains.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "table netdev {TABLE} {{\n\tset held4 {{ type ipv4_addr; }}\n\tset held6 {{ type ipv6_addr; }}\n"
    );
    // The chains a rule jumps to come first.
    for (dev, (_, own)) in &chains {
        let _ = writeln!(
            s,
            "\tchain out_{} {{\n\t\tether daddr {} accept\n\t\tether saddr set {} fwd to \"{dev}\"\n\t}}",
            dev_name(dev),
            mac(own),
            mac(own)
        );
    }
    s.push_str(&objs);
    for (dev, (rules, _)) in chains {
        let d = dev_name(dev);
        let _ = writeln!(
            s,
            "\tchain in_{d} {{\n\t\ttype filter hook ingress device \"{dev}\" priority -300; policy accept;\n{rules}\t}}"
        );
    }
    s.push_str("}\n");
    s
}
