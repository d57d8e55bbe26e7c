//! Several nodes' instances → VirtualIPs. Instances with one virtual router ID, address family
//! and interface across files are one VirtualIP, with each node's priority and every file's
//! unicast peers; otherwise the first file's spec is kept, and a node that lists other addresses is a warning. One router ID twice on
//! one node is an error.

use crate::api::{NodePriority, ObjectMeta, VirtualIpDocument, VirtualIpSpec};

use super::convert::Instance;
use super::report::{Place, Report};
use super::values::dns_name;

/// One VirtualIP in the making: the first node's instance and every node's priority.
struct Group {
    first: Instance,
    priorities: Vec<NodePriority>,
}

/// The instances of all files, in file order → one VirtualIP per virtual router.
pub(crate) fn merge(
    instances: Vec<Instance>,
    report: &mut Report,
) -> Vec<(VirtualIpDocument, Place)> {
    documents(groups(instances, report))
}

/// Whether an instance's addresses are IPv6 (a VRID is per family).
fn is_ipv6(s: &VirtualIpSpec) -> bool {
    s.addresses.first().is_some_and(|a| a.contains(':'))
}

/// Whether two instances are one virtual router on different nodes.
fn same_router(a: &VirtualIpSpec, b: &VirtualIpSpec) -> bool {
    a.virtual_router_id == b.virtual_router_id
        && is_ipv6(a) == is_ipv6(b)
        && a.interface == b.interface
}

/// The instances grouped by virtual router, in order of first appearance.
fn groups(instances: Vec<Instance>, report: &mut Report) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for inst in instances {
        let Some(group) = groups
            .iter_mut()
            .find(|g| same_router(&g.first.spec, &inst.spec))
        else {
            groups.push(Group {
                priorities: vec![NodePriority {
                    node: inst.node.clone(),
                    priority: inst.priority,
                }],
                first: inst,
            });
            continue;
        };
        if group.priorities.iter().any(|p| p.node == inst.node) {
            report.error(
                &inst.at,
                format!(
                    "virtual_router_id {} is used twice on node {}",
                    inst.spec.virtual_router_id.unwrap_or_default(),
                    inst.node
                ),
            );
            continue;
        }
        if !same_addresses(&group.first.spec, &inst.spec) {
            report.warning(
                &inst.at,
                format!(
                    "{} on node {} lists other addresses than on {}: the first file's are kept",
                    inst.name, inst.node, group.first.node
                ),
            );
        }
        if group.first.spec.virtual_servers != inst.spec.virtual_servers {
            report.warning(
                &inst.at,
                format!(
                    "{} on node {} has other virtual servers than on {}: the first file's are kept",
                    inst.name, inst.node, group.first.node
                ),
            );
        }
        // Each file lists the other nodes as its peers: the VirtualIP needs them all (each
        // node leaves out its own addresses).
        for p in &inst.spec.unicast_peers {
            if !group.first.spec.unicast_peers.contains(p) {
                group.first.spec.unicast_peers.push(p.clone());
            }
        }
        group.priorities.push(NodePriority {
            node: inst.node,
            priority: inst.priority,
        });
    }
    groups
}

/// Whether two specs list the same addresses, in any order.
fn same_addresses(a: &VirtualIpSpec, b: &VirtualIpSpec) -> bool {
    let mut a = a.addresses.clone();
    let mut b = b.addresses.clone();
    a.sort();
    b.sort();
    a == b
}

/// Each group as a VirtualIP document, named after its first instance.
fn documents(groups: Vec<Group>) -> Vec<(VirtualIpDocument, Place)> {
    let mut names: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for Group { first, priorities } in groups {
        let name = unique_name(&first, &names);
        names.push(name.clone());
        let mut spec = first.spec;
        spec.priorities = priorities;
        out.push((
            VirtualIpDocument {
                api_version: crate::api::API_VERSION.into(),
                kind: crate::api::KIND.into(),
                metadata: ObjectMeta { name },
                spec,
            },
            first.at.clone(),
        ));
    }
    out
}

/// The instance's name as a DNS name; its router ID appended when `taken` has it already.
fn unique_name(first: &Instance, taken: &[String]) -> String {
    let name = dns_name(&first.name);
    if taken.contains(&name) {
        format!(
            "{name}-{}",
            first.spec.virtual_router_id.unwrap_or_default()
        )
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::convert;
    use crate::keepalived::parser::tests::parse_text;
    use crate::keepalived::report::tests::lines;

    /// Each (file, node, text)'s instances, in order.
    fn instances(files: &[(&str, &str, &str)], report: &mut Report) -> Vec<Instance> {
        files
            .iter()
            .flat_map(|(file, node, text)| {
                let (stmts, r) = parse_text(file, text);
                assert!(r.errors.is_empty());
                convert::file(&stmts, Some(node.to_string()), String::new, report)
            })
            .collect()
    }

    fn vrrp_instance(name: &str, vrid: u8, priority: u8, addresses: &str) -> String {
        format!(
            "vrrp_instance {name} {{\n interface eth0\n virtual_router_id {vrid}\n priority {priority}\n virtual_ipaddress {{\n {addresses}\n }}\n}}\n"
        )
    }

    fn priorities(d: &VirtualIpDocument) -> Vec<(&str, u8)> {
        d.spec
            .priorities
            .iter()
            .map(|p| (p.node.as_str(), p.priority))
            .collect()
    }

    fn merged(i: Vec<Instance>, report: &mut Report) -> Vec<VirtualIpDocument> {
        merge(i, report).into_iter().map(|(d, _)| d).collect()
    }

    #[test]
    fn two_files_make_one_virtual_ip_with_each_node_s_priority() {
        let mut report = Report::default();
        let lb1 = vrrp_instance("VI_1", 51, 101, "192.0.2.10/24");
        let lb2 = vrrp_instance("VI_1", 51, 100, "192.0.2.10/24");
        let i = instances(
            &[("lb1.conf", "n1", &lb1), ("lb2.conf", "n2", &lb2)],
            &mut report,
        );
        let docs = merged(i, &mut report);
        assert!(report.errors.is_empty() && report.warnings.is_empty());
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].metadata.name, "vi-1");
        assert_eq!(docs[0].kind, crate::api::KIND);
        assert_eq!(docs[0].api_version, crate::api::API_VERSION);
        assert_eq!(priorities(&docs[0]), [("n1", 101), ("n2", 100)]);
        assert_eq!(docs[0].spec.addresses, ["192.0.2.10/24"]);
    }

    #[test]
    fn every_files_unicast_peers_are_kept() {
        let mut report = Report::default();
        let with_peer = |prio: u8, src: &str, peer: &str| {
            vrrp_instance("VI_1", 51, prio, "192.0.2.10/24").replace(
                " priority",
                &format!(" unicast_src_ip {src}\n unicast_peer {{\n {peer}\n }}\n priority"),
            )
        };
        let lb1 = with_peer(101, "198.51.100.11", "198.51.100.12");
        let lb2 = with_peer(100, "198.51.100.12", "198.51.100.11");
        let i = instances(
            &[("lb1.conf", "n1", &lb1), ("lb2.conf", "n2", &lb2)],
            &mut report,
        );
        let docs = merged(i, &mut report);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(
            docs[0].spec.unicast_peers,
            ["198.51.100.12", "198.51.100.11"],
            "both nodes' peers: each leaves out its own address"
        );
    }

    #[test]
    fn other_addresses_on_a_node_are_a_warning_and_the_first_file_s_are_kept() {
        let mut report = Report::default();
        let lb1 = vrrp_instance("VI_1", 51, 101, "192.0.2.10/24\n 192.0.2.11/24");
        let lb2 = vrrp_instance("VI_1", 51, 100, "192.0.2.11/24\n 192.0.2.10/24");
        let lb3 = vrrp_instance("VI_1", 51, 99, "192.0.2.12/24");
        let i = instances(
            &[
                ("lb1.conf", "n1", &lb1),
                ("lb2.conf", "n2", &lb2),
                ("lb3.conf", "n3", &lb3),
            ],
            &mut report,
        );
        let docs = merged(i, &mut report);
        assert_eq!(
            lines(&report.warnings),
            [
                "lb3.conf:1: VI_1 on node n3 lists other addresses than on n1: the first file's are kept"
            ]
        );
        assert_eq!(priorities(&docs[0]), [("n1", 101), ("n2", 100), ("n3", 99)]);
        assert_eq!(docs[0].spec.addresses, ["192.0.2.10/24", "192.0.2.11/24"]);
    }

    #[test]
    fn one_router_id_twice_on_a_node_is_an_error() {
        let mut report = Report::default();
        let twice =
            vrrp_instance("A", 5, 100, "10.0.0.1/24") + &vrrp_instance("B", 5, 90, "10.0.0.1/24");
        let docs = merged(
            instances(&[("k.conf", "n1", &twice)], &mut report),
            &mut report,
        );
        assert_eq!(
            lines(&report.errors),
            ["k.conf:9: virtual_router_id 5 is used twice on node n1"]
        );
        assert_eq!(priorities(&docs[0]), [("n1", 100)]);
    }

    #[test]
    fn a_family_or_interface_apart_is_another_virtual_ip_and_names_stay_unique() {
        let mut report = Report::default();
        let text = vrrp_instance("VI_1", 5, 100, "10.0.0.1/24")
            + &vrrp_instance("VI_1", 5, 100, "2001:db8::1/64")
            + &vrrp_instance("vi-1", 6, 100, "10.0.1.1/24").replace("eth0", "eth1");
        let docs = merged(
            instances(&[("k.conf", "n1", &text)], &mut report),
            &mut report,
        );
        assert!(report.errors.is_empty());
        let names: Vec<_> = docs.iter().map(|d| d.metadata.name.as_str()).collect();
        assert_eq!(names, ["vi-1", "vi-1-5", "vi-1-6"]);
    }
}
