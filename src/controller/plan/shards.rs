//! Shards: a node's entries cut into configuration objects of bounded size, and their names
//! (the first object is named after the node and carries the agent's registration).

use kube::ResourceExt;

use crate::api::{NodeVirtualIP, VirtualIPNodeConfig};

/// The most a node configuration object holds, by estimate (the API server's own limit is
/// about 1.5 MiB; the controller keeps every object under 256 KiB).
pub(super) const SHARD_BYTES: usize = 192 * 1024;

/// About how many bytes an entry takes as JSON, without serializing it (counted on every
/// pass for every node).
pub(super) fn entry_size(e: &NodeVirtualIP) -> usize {
    let s = &e.spec;
    let list = |v: &[String]| v.iter().map(|a| a.len() + 3).sum::<usize>();
    let json = |v: &dyn erased::Size| v.size();
    1024 + e.name.len()
        + e.drain.as_ref().map_or(0, String::len)
        + list(&s.addresses)
        + list(&s.excluded_addresses)
        + list(&s.unicast_peers)
        + json(&s.health_checks)
        + json(&s.track_interfaces)
        + json(&s.notify)
        + json(&s.active_nodes)
}

mod erased {
    pub(super) trait Size {
        fn size(&self) -> usize;
    }
    impl<T: serde::Serialize> Size for Vec<T> {
        fn size(&self) -> usize {
            if self.is_empty() {
                0
            } else {
                serde_json::to_vec(self).map_or(0, |v| v.len())
            }
        }
    }
    impl<T: serde::Serialize> Size for Option<T> {
        fn size(&self) -> usize {
            self.as_ref()
                .map_or(0, |v| serde_json::to_vec(v).map_or(0, |v| v.len()))
        }
    }
}

/// The name of a node's `n`-th configuration object (the first is named after the node).
pub fn shard_name(node: &str, n: usize) -> String {
    if n == 0 {
        node.to_string()
    } else {
        format!("{node}.shard-{n}")
    }
}

/// A node's entries (sorted by name) cut into objects of at most [`SHARD_BYTES`] each, in
/// order; always at least one (the first carries the agent's registration).
pub fn shard(entries: Vec<NodeVirtualIP>) -> Vec<Vec<NodeVirtualIP>> {
    let mut out: Vec<Vec<NodeVirtualIP>> = vec![Vec::new()];
    let mut size = 0;
    for e in entries {
        let n = entry_size(&e);
        if size + n > SHARD_BYTES && !out.last().expect("one").is_empty() {
            out.push(Vec::new());
            size = 0;
        }
        size += n;
        out.last_mut().expect("one").push(e);
    }
    out
}

/// The node a configuration object is for.
pub(crate) fn config_node(c: &VirtualIPNodeConfig) -> String {
    c.spec.node.clone().unwrap_or_else(|| c.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, addresses: usize) -> NodeVirtualIP {
        let spec = yaml_serde::from_str("addresses: [198.51.100.50/24]").unwrap();
        let mut e = NodeVirtualIP {
            name: name.into(),
            generation: None,
            drain: None,
            spec,
        };
        e.spec.addresses = (0..addresses)
            .map(|i| format!("2001:db8::{i:x}/128"))
            .collect();
        e
    }

    #[test]
    fn the_first_shard_is_named_after_the_node() {
        assert_eq!(shard_name("n1", 0), "n1");
        assert_eq!(shard_name("n1", 2), "n1.shard-2");
    }

    #[test]
    fn a_node_without_entries_still_gets_one_object() {
        assert_eq!(shard(Vec::new()), vec![Vec::<NodeVirtualIP>::new()]);
    }

    #[test]
    fn entries_are_cut_in_order_under_the_bound() {
        // About 10 KiB each: a 192 KiB object holds some twenty.
        let entries: Vec<NodeVirtualIP> =
            (0..50).map(|i| entry(&format!("v{i:02}"), 400)).collect();
        let one = entry_size(&entries[0]);
        assert!(one > 5_000 && one < 20_000, "{one}");
        let parts = shard(entries.clone());
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(p.iter().map(entry_size).sum::<usize>() <= SHARD_BYTES);
        }
        assert_eq!(parts.concat(), entries, "nothing lost, order kept");
    }

    #[test]
    fn an_entry_larger_than_a_shard_gets_one_of_its_own() {
        let big = entry("big", 20_000);
        assert!(entry_size(&big) > SHARD_BYTES);
        let parts = shard(vec![entry("a", 1), big.clone(), entry("z", 1)]);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1], vec![big]);
    }

    #[test]
    fn a_configuration_is_for_its_spec_node_else_its_name() {
        let mut c = VirtualIPNodeConfig::new("n1.shard-1", Default::default());
        assert_eq!(config_node(&c), "n1.shard-1");
        c.spec.node = Some("n1".into());
        assert_eq!(config_node(&c), "n1");
    }
}
