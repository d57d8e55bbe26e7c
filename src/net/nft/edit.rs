//! The maps' and sets' elements of a rule set, and the scripts that put a rule set in force:
//! whole ([`full`]) or as element edits ([`changes`]); what persistence and direct routing
//! forget when a server leaves.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{TABLE, concat, dev_name, name, remove, routed, structure};
use crate::director::RuleSet;

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
    for x in super::counter_names(rs).1 {
        e.entry(("inet", x.map))
            .or_default()
            .insert(x.key, Some(format!("\"{}\"", x.counter)));
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
    let (_, stats) = super::counter_names(rs);
    for x in stats {
        d.insert(("inet", "counter", x.counter));
        d.insert(("inet", "map", x.map));
    }
    if !d.iter().any(|(_, k, _)| *k == "counter") {
        return d;
    }
    d.insert(("inet", "chain", "stats".into()));
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
    // The stats maps name counters: emptied first, so a counter no longer used can go.
    for (_, kind, obj) in declared(before)
        .iter()
        .filter(|(f, k, o)| *f == "inet" && *k == "map" && o.starts_with("stats"))
    {
        let _ = writeln!(s, "flush {kind} inet {TABLE} {obj}");
    }
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
