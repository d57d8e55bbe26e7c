//! Renders the director's rule set ([`crate::director::RuleSet`]) as nftables scripts; it
//! decides nothing. Two tables of our own (`inet kube_vrrp`: NAT; `netdev kube_vrrp`: direct
//! routing's frames), never touching anyone else's (kube-proxy, firewalld, Cilium).
//!
//! Every lookup table is a named map and the rules only refer to it, so a real server that
//! goes down, comes back or changes weight is a few map elements ([`changes`]): the rules,
//! the round-robin counters they hold, the flows direct routing remembers and every other
//! virtual server stay as they are. A new configuration ([`full`]) flushes and re-adds the
//! rules but keeps the maps of the virtual servers that remain, flows included. Established
//! NAT connections keep their real server in conntrack, direct-routing flows in a map of
//! flows with a timeout, updated from the packet path.
//!
//! Rules match the virtual server's address: only the master receives its traffic, so every
//! node programs the same rules ahead and a takeover carries the service in VRRP time.
//! Direct routing forwards only while this node holds the address (the `held` sets), so a
//! frame another director forwarded here is never forwarded again.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::api::{Forwarding, Protocol};
use crate::director::{Pick, Routed, RuleSet, Rules, SLOTS, Snat};

/// Our tables: families `inet` and `netdev`, this name.
pub const TABLE: &str = "kube_vrrp";

/// The hash seed: the same on every director, so they hash a flow alike.
const SEED: &str = "0x6b757665";

/// How long one `nft` run may take.
const NFT_TIMEOUT: Duration = Duration::from_secs(10);

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The script that removes both tables (a predecessor's included).
pub fn remove() -> String {
    format!(
        "add table inet {TABLE}\ndelete table inet {TABLE}\nadd table netdev {TABLE}\ndelete table netdev {TABLE}\n"
    )
}

/// `ip`/`ip6` and `tcp`/`udp` of a virtual server.
fn match_of(r: &Rules) -> (&'static str, &'static str) {
    let fam = if r.key.addr.is_ipv4() { "ip" } else { "ip6" };
    let l4 = match r.protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    };
    (fam, l4)
}

/// A virtual server's name in our tables: `vs_198_51_100_50_80_tcp`.
fn name(r: &Rules) -> String {
    let ip: String = r
        .key
        .addr
        .ip()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("vs_{ip}_{}_{}", r.key.addr.port(), match_of(r).1)
}

fn dev_name(dev: &str) -> String {
    dev.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// `address . port` as a map value.
fn concat(a: &SocketAddr) -> String {
    format!("{} . {}", a.ip(), a.port())
}

/// How a slot is chosen.
fn slot_expr(r: &Rules) -> String {
    let (fam, l4) = match_of(r);
    match r.pick {
        Pick::Counter => format!("numgen inc mod {SLOTS}"),
        Pick::Source => format!("jhash {fam} saddr mod {SLOTS} seed {SEED}"),
        Pick::Flow => format!("jhash {fam} saddr . {l4} sport mod {SLOTS} seed {SEED}"),
    }
}

fn routed(r: &Rules) -> Option<&Routed> {
    r.routed.as_ref()
}

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

/// Every element: (family, map or set, key → value; no value for a set).
type Elements = BTreeMap<(&'static str, String), BTreeMap<String, Option<String>>>;

fn elements(rs: &RuleSet) -> Elements {
    let mut e: Elements = BTreeMap::new();
    let mut held: BTreeMap<&'static str, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for r in &rs.services {
        let n = name(r);
        e.insert(
            ("inet", n.clone()),
            r.table
                .iter()
                .enumerate()
                .map(|(i, a)| (i.to_string(), Some(concat(a))))
                .collect(),
        );
        if let Some(d) = routed(r) {
            e.insert(
                ("netdev", format!("{n}_slots")),
                d.slots
                    .iter()
                    .enumerate()
                    .map(|(k, i)| (k.to_string(), Some(format!("goto {n}_s{i}"))))
                    .collect(),
            );
            let set = if r.key.addr.is_ipv4() {
                "held4"
            } else {
                "held6"
            };
            let h = held.entry(set).or_default();
            if d.holds {
                h.insert(r.key.addr.ip().to_string(), None);
            }
        }
    }
    // The same sets in both tables: the netdev one gates forwarding, the inet one the guard.
    if !rs.services.is_empty() {
        for set in ["held4", "held6"] {
            let items = held.get(set).cloned().unwrap_or_default();
            e.insert(("inet", set.to_string()), items);
        }
    }
    for (set, items) in held {
        e.insert(("netdev", set.to_string()), items);
    }
    e
}

fn item(k: &str, v: &Option<String>) -> String {
    match v {
        Some(v) => format!("{k} : {v}"),
        None => k.to_string(),
    }
}

/// Adds `items` to a map or set, a few thousand to a line at most.
fn add_elements<'a>(
    s: &mut String,
    fam: &str,
    obj: &str,
    items: impl Iterator<Item = (&'a String, &'a Option<String>)>,
) {
    let all: Vec<String> = items.map(|(k, v)| item(k, v)).collect();
    for chunk in all.chunks(1024) {
        let _ = writeln!(
            s,
            "add element {fam} {TABLE} {obj} {{ {} }}",
            chunk.join(", ")
        );
    }
}

/// What a rule set declares besides the three NAT chains: (family, kind, name).
fn declared(rs: &RuleSet) -> BTreeSet<(&'static str, &'static str, String)> {
    let mut d = BTreeSet::new();
    for r in &rs.services {
        let n = name(r);
        d.insert(("inet", "map", n.clone()));
        if r.persist.is_some() && routed(r).is_none() {
            d.insert(("inet", "map", format!("{n}_clients")));
        }
        if let Some(x) = routed(r) {
            let dev = dev_name(&x.link.interface);
            d.insert(("netdev", "map", format!("{n}_slots")));
            d.insert(("netdev", "chain", format!("{n}_new")));
            for (i, server) in x.servers.iter().enumerate() {
                d.insert(("netdev", "set", format!("{n}_p{i}")));
                if r.persist.is_some() {
                    d.insert(("netdev", "set", format!("{n}_c{i}")));
                }
                if server.mac.is_some() {
                    d.insert(("netdev", "chain", format!("{n}_s{i}")));
                }
            }
            d.insert(("netdev", "set", "held4".into()));
            d.insert(("netdev", "set", "held6".into()));
            d.insert(("netdev", "chain", format!("in_{dev}")));
            d.insert(("netdev", "chain", format!("out_{dev}")));
        }
    }
    d
}

/// The script that puts `rs` in force whatever was there (`before`: what we applied last,
/// whose objects no longer used are deleted; none: a predecessor's tables, removed whole).
/// The maps of the virtual servers that remain are kept, the flows direct routing remembers
/// among them: only the rules are replaced.
pub fn full(before: Option<&RuleSet>, rs: &RuleSet) -> String {
    let Some(before) = before else {
        let mut s = remove();
        s.push_str(&fill(rs));
        return s;
    };
    if rs.services.is_empty() {
        return remove();
    }
    let mut s = format!("add table inet {TABLE}\nflush table inet {TABLE}\n");
    let now = declared(rs);
    if now.iter().any(|(fam, _, _)| *fam == "netdev") {
        let _ = writeln!(s, "add table netdev {TABLE}\nflush table netdev {TABLE}");
        // Verdict maps name chains: emptied first, so a chain no longer used can go.
        for (_, kind, obj) in declared(before)
            .iter()
            .filter(|(f, k, o)| *f == "netdev" && *k == "map" && o.ends_with("_slots"))
        {
            let _ = writeln!(s, "flush {kind} netdev {TABLE} {obj}");
        }
        for (fam, kind, obj) in declared(before).difference(&now) {
            let _ = writeln!(s, "delete {kind} {fam} {TABLE} {obj}");
        }
    } else {
        let _ = writeln!(s, "add table netdev {TABLE}\ndelete table netdev {TABLE}");
        for (fam, kind, obj) in declared(before).difference(&now) {
            if *fam == "inet" {
                let _ = writeln!(s, "delete {kind} {fam} {TABLE} {obj}");
            }
        }
    }
    s.push_str(&structure(rs));
    // Every map and set of ours anew (the flows stay: they are the kernel's, not ours).
    for ((fam, obj), items) in elements(rs) {
        let _ = writeln!(s, "flush {} {fam} {TABLE} {obj}", kind_of(&obj));
        add_elements(&mut s, fam, &obj, items.iter());
    }
    s
}

fn kind_of(obj: &str) -> &'static str {
    if obj.starts_with("held") {
        "set"
    } else {
        "map"
    }
}

/// The flows and clients direct routing forgets: the sets of servers that left the table
/// between `before` and `after` and keep no flows (not kept at weight 0).
fn forgotten(before: &RuleSet, after: &RuleSet) -> Vec<String> {
    let mut out = Vec::new();
    for r in &after.services {
        let (Some(y), Some(x)) = (
            routed(r),
            before
                .services
                .iter()
                .find(|b| b.key == r.key)
                .and_then(routed),
        ) else {
            continue;
        };
        let n = name(r);
        for (i, server) in y.servers.iter().enumerate() {
            let was = x.slots.contains(&(i as u16));
            let is = y.slots.contains(&(i as u16));
            if was && !is && !server.keeps_flows {
                out.push(format!("flush set netdev {TABLE} {n}_p{i}"));
                if r.persist.is_some() {
                    out.push(format!("flush set netdev {TABLE} {n}_c{i}"));
                }
            }
        }
    }
    out
}

/// A first fill after the tables were removed.
fn fill(rs: &RuleSet) -> String {
    let mut s = structure(rs);
    for ((fam, obj), items) in elements(rs) {
        add_elements(&mut s, fam, &obj, items.iter());
    }
    s
}

/// The script from `before` to `after` when only elements differ (a check result, a
/// neighbour, this node taking or leaving the address): `None` when the rules themselves
/// changed ([`full`] then). An empty script: nothing to do.
pub fn changes(before: &RuleSet, after: &RuleSet) -> Option<String> {
    if structure(before) != structure(after) {
        return None;
    }
    let (old, new) = (elements(before), elements(after));
    let mut s = String::new();
    for (key, items) in &new {
        let empty = BTreeMap::new();
        let was = old.get(key).unwrap_or(&empty);
        let (fam, obj) = key;
        let gone: Vec<&String> = was
            .iter()
            .filter(|(k, v)| items.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .collect();
        for chunk in gone.chunks(1024) {
            let keys: Vec<&str> = chunk.iter().map(|k| k.as_str()).collect();
            let _ = writeln!(
                s,
                "delete element {fam} {TABLE} {obj} {{ {} }}",
                keys.join(", ")
            );
        }
        add_elements(
            &mut s,
            fam,
            obj,
            items.iter().filter(|(k, v)| was.get(*k) != Some(*v)),
        );
    }
    for line in forgotten(before, after) {
        let _ = writeln!(s, "{line}");
    }
    Some(s)
}

/// The persistence records to forget: for each persistent virtual server, its map of clients
/// (family, name) and the servers (as the map writes them) that left its table between
/// `before` and `after`: their clients choose again.
pub fn purges(before: &RuleSet, after: &RuleSet) -> Vec<(&'static str, String, BTreeSet<String>)> {
    let mut out = Vec::new();
    for r in &after.services {
        if r.persist.is_none() {
            continue;
        }
        let Some(b) = before
            .services
            .iter()
            .find(|b| b.key == r.key && b.persist.is_some())
        else {
            continue;
        };
        // Direct routing forgets by flushing a server's sets (see `forgotten`).
        if routed(b).is_some() || routed(r).is_some() {
            continue;
        }
        let fam = "inet";
        let old: BTreeSet<String> = b.table.iter().map(concat).collect();
        let new: BTreeSet<String> = r.table.iter().map(concat).collect();
        let gone: BTreeSet<String> = old.difference(&new).cloned().collect();
        if !gone.is_empty() {
            out.push((fam, format!("{}_clients", name(r)), gone));
        }
    }
    out
}

/// From `nft -j list map` of a map of clients: the keys whose value is one of `values`
/// (`address . port` or a MAC, as [`purges`] writes them).
pub fn keys_to(json: &str, values: &BTreeSet<String>) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let elems = v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["map"]["elem"].as_array())
        .flatten();
    let text = |v: &serde_json::Value| -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            v => {
                let c = v["concat"].as_array()?;
                let parts: Vec<String> = c
                    .iter()
                    .map(|p| match p {
                        serde_json::Value::String(s) => s.clone(),
                        p => p.to_string(),
                    })
                    .collect();
                Some(parts.join(" . "))
            }
        }
    };
    elems
        .filter_map(|pair| {
            let pair = pair.as_array()?;
            let key = pair.first()?;
            let key = key["elem"]["val"].as_str().or(key.as_str())?;
            let value = text(pair.get(1)?)?;
            values.contains(&value).then(|| key.to_string())
        })
        .collect()
}

/// The `nft` program.
pub fn nft_program() -> Option<PathBuf> {
    super::program("nft")
}

/// Runs `nft -f -` with `script`: applied whole, or an error in words.
pub async fn apply(nft: &Path, script: &str) -> Result<(), String> {
    let mut child = tokio::process::Command::new(nft)
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        // Piped, not null: a bare root filesystem may have no /dev/null.
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", nft.display()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let body = script.to_string();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(body.as_bytes()).await;
    });
    let out = tokio::time::timeout(NFT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("nft did not finish in {NFT_TIMEOUT:?}"))?
        .map_err(|e| format!("nft: {e}"))?;
    let _ = writer.await;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "nft refused the rules: {}",
            err.lines().next().unwrap_or("no message")
        ))
    }
}

/// `nft -j list map FAMILY kube_vrrp MAP`: its JSON, or an error in words.
pub async fn list_map(nft: &Path, family: &str, map: &str) -> Result<String, String> {
    let out = tokio::time::timeout(
        NFT_TIMEOUT,
        tokio::process::Command::new(nft)
            .args(["-j", "list", "map", family, TABLE, map])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("nft did not finish in {NFT_TIMEOUT:?}"))?
    .map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or("no message")
            .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_of_a_server_that_left_are_read_from_nfts_json() {
        // As nft 1.0.6 lists a map of clients (one with its own timeout), and one of MACs.
        let inet = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"map": {"family": "inet", "name": "c4", "table": "t", "type": "ipv4_addr", "map": "ipv4_addr . inet_service", "elem": [[{"elem": {"val": "203.0.113.100", "expires": 299}}, {"concat": ["198.51.100.21", 80]}], [{"elem": {"val": "203.0.113.101", "timeout": 10, "expires": 9}}, {"concat": ["198.51.100.22", 80]}]]}}]}"#;
        let gone: BTreeSet<String> = ["198.51.100.22 . 80".to_string()].into();
        assert_eq!(keys_to(inet, &gone), ["203.0.113.101"]);
        let netdev = r#"{"nftables": [{"map": {"elem": [[{"elem": {"val": "203.0.113.100", "expires": 299}}, "02:00:00:00:00:21"], ["203.0.113.7", "02:00:00:00:00:22"]]}}]}"#;
        let gone: BTreeSet<String> = [
            "02:00:00:00:00:21".to_string(),
            "02:00:00:00:00:22".to_string(),
        ]
        .into();
        assert_eq!(keys_to(netdev, &gone), ["203.0.113.100", "203.0.113.7"]);
        assert!(keys_to("not json", &gone).is_empty());
    }
}
