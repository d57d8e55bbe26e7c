//! Real servers given as Nodes (`virtualServers[].realServerNodes`): spelled out as real
//! servers, at each selected Node's InternalIP, before a VirtualIP goes to its nodes. Agents
//! never read Nodes; the plan is made again whenever a Node comes, goes or is relabelled.

use std::net::IpAddr;

use super::super::resolve::NodeInput;
use crate::api::{RealServerSpec, VirtualIpSpec};

/// Replaces each virtual server's `realServerNodes` with the real servers it selects now:
/// the matching Nodes (in name order) at their first InternalIP of the virtual server's
/// family, after the real servers listed by address. A Node without such an address, or one
/// already listed (same address and port), or one of the VirtualIP's own addresses, is left
/// out.
pub(super) fn spell_out(spec: &mut VirtualIpSpec, nodes: &[NodeInput]) {
    let own: Vec<IpAddr> = spec
        .addresses
        .iter()
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .collect();
    for vs in &mut spec.virtual_servers {
        let Some(sel) = vs.real_server_nodes.take() else {
            continue;
        };
        // The Nodes were chosen as real servers: a director's own address among them is meant.
        vs.allow_node_addresses = true;
        let Ok(vip) = vs.address.parse::<IpAddr>() else {
            continue;
        };
        let port = sel.port.unwrap_or(vs.port);
        let mut selected: Vec<&NodeInput> = nodes
            .iter()
            .filter(|n| {
                sel.node_selector
                    .iter()
                    .all(|(k, v)| n.labels.get(k) == Some(v))
            })
            .collect();
        selected.sort_by(|a, b| a.name.cmp(&b.name));
        for n in selected {
            let Some(a) = n.addresses.iter().find(|a| a.is_ipv4() == vip.is_ipv4()) else {
                continue;
            };
            let listed = vs.real_servers.iter().any(|r| {
                r.address.parse::<IpAddr>().ok() == Some(*a) && r.port_on(vs.port) == port
            });
            if listed || own.contains(a) {
                continue;
            }
            vs.real_servers.push(RealServerSpec {
                address: a.to_string(),
                port: sel.port,
                weight: sel.weight,
                check: None,
                inhibit_on_failure: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{RealServerNodesSpec, VirtualServerSpec};

    fn node(name: &str, addrs: &[&str], labels: &[(&str, &str)]) -> NodeInput {
        NodeInput {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            agent: false,
        }
    }

    fn vs(address: &str, reals: &[&str], selector: &[(&str, &str)]) -> VirtualServerSpec {
        serde_json::from_value(serde_json::json!({
            "address": address,
            "port": 443,
            "realServers": reals.iter().map(|a| serde_json::json!({"address": a})).collect::<Vec<_>>(),
            "realServerNodes": RealServerNodesSpec {
                node_selector: selector.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                port: Some(6443),
                weight: Some(3),
            },
        }))
        .unwrap()
    }

    fn reals(spec: &VirtualIpSpec, i: usize) -> Vec<(String, Option<u16>, Option<u32>)> {
        spec.virtual_servers[i]
            .real_servers
            .iter()
            .map(|r| (r.address.clone(), r.port, r.weight))
            .collect()
    }

    #[test]
    fn the_selected_nodes_become_real_servers_of_the_virtual_servers_family() {
        let cp = ("node-role.kubernetes.io/control-plane", "");
        let nodes = [
            node("cp2", &["198.51.100.12", "2001:db8::12"], &[cp]),
            node("cp1", &["198.51.100.11", "2001:db8::11"], &[cp]),
            node("worker", &["198.51.100.21"], &[]),
            node("v6only", &["2001:db8::13"], &[cp]),
            node("vip", &["198.51.100.50"], &[cp]),
        ];
        let mut spec: VirtualIpSpec = serde_json::from_value(serde_json::json!({
            "addresses": ["198.51.100.50/24", "2001:db8::50/64"],
        }))
        .unwrap();
        spec.virtual_servers = vec![
            vs("198.51.100.50", &["203.0.113.9"], &[cp]),
            vs("2001:db8::50", &[], &[cp]),
        ];
        spell_out(&mut spec, &nodes);
        let r = |a: &str, p: Option<u16>, w: Option<u32>| (a.to_string(), p, w);
        assert_eq!(
            reals(&spec, 0),
            vec![
                r("203.0.113.9", None, None),
                r("198.51.100.11", Some(6443), Some(3)),
                r("198.51.100.12", Some(6443), Some(3)),
            ],
            "name order, after the listed ones; no worker, no IPv6-only node, not the VIP"
        );
        assert_eq!(
            reals(&spec, 1),
            vec![
                r("2001:db8::11", Some(6443), Some(3)),
                r("2001:db8::12", Some(6443), Some(3)),
                r("2001:db8::13", Some(6443), Some(3)),
            ]
        );
        assert!(
            spec.virtual_servers
                .iter()
                .all(|v| v.real_server_nodes.is_none())
        );
    }

    #[test]
    fn a_node_listed_by_address_is_not_added_twice() {
        let nodes = [node("a", &["198.51.100.11"], &[])];
        let mut spec: VirtualIpSpec =
            serde_json::from_value(serde_json::json!({"addresses": ["198.51.100.50/24"]})).unwrap();
        let mut v = vs("198.51.100.50", &[], &[]);
        v.real_servers = vec![RealServerSpec {
            address: "198.51.100.11".into(),
            port: Some(6443),
            weight: None,
            check: None,
            inhibit_on_failure: None,
        }];
        spec.virtual_servers = vec![v];
        spell_out(&mut spec, &nodes);
        assert_eq!(reals(&spec, 0).len(), 1);
    }
}
