//! A validated `VirtualIP` on one node: against its interfaces and addresses, one
//! [`ResolvedInstance`] per family (or why that family cannot run here), and what the node
//! runs of all its VirtualIPs ([`resolve_all`]). The rules of the spec itself are in
//! [`super::spec`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::address::{is_link_local, same_subnet, subnet_edge};
use super::host::{Address, Link};
use super::spec::{GarpConfig, ValidatedVirtualIp};
use crate::ids::{Family, InstanceKey};
use crate::vrrp::{InstanceConfig, VirtualAddress};

/// Addresses of an instance bound on another interface than the one VRRP runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwayLink {
    pub interface: String,
    pub ifindex: u32,
    /// Announced from this interface's MAC.
    pub mac: [u8; 6],
    pub addresses: Vec<IpAddr>,
}

/// One VRRP instance for this node: a `VirtualIP` and one address family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedInstance {
    /// `name/ipv4` or `name/ipv6`.
    pub key: InstanceKey,
    pub name: String,
    pub interface: String,
    pub ifindex: u32,
    pub config: InstanceConfig,
    pub virtual_mac: bool,
    pub garp: GarpConfig,
    /// Addresses bound on other interfaces, by interface.
    pub away: Vec<AwayLink>,
}

impl ValidatedVirtualIp {
    /// This node's instances, one per family, each resolved (or refused) on its own against
    /// the node's interfaces and addresses: IPv6 failing here never stops IPv4.
    pub fn resolve(
        &self,
        node: &str,
        links: &[Link],
        addrs: &[Address],
    ) -> Vec<(Family, Result<ResolvedInstance, String>)> {
        self.families()
            .into_iter()
            .map(|family| (family, self.resolve_family(family, node, links, addrs)))
            .collect()
    }

    fn resolve_family(
        &self,
        family: Family,
        node: &str,
        links: &[Link],
        addrs: &[Address],
    ) -> Result<ResolvedInstance, String> {
        let vrid = self
            .vrid
            .ok_or_else(|| format!("{}: no virtual router ID allocated yet", self.name))?;
        // The interface is found from an address bound on it, not from one sent elsewhere.
        let first = *self
            .addresses
            .iter()
            .filter(|a| a.family() == family)
            .find(|a| !self.address_interfaces.contains_key(&a.address))
            .or_else(|| self.addresses.iter().find(|a| a.family() == family))
            .expect("family present");
        // Ours only: a virtual address the node already has, not put there by kube-vrrp, is
        // the node's own. Binding it would adopt it, and releasing it would delete it.
        for v in self.addresses.iter().filter(|a| a.family() == family) {
            if let Some(a) = addrs
                .iter()
                .find(|a| a.address == v.address && !a.is_ours())
            {
                let link = links
                    .iter()
                    .find(|l| l.index == a.index)
                    .map(|l| l.name.as_str())
                    .unwrap_or("?");
                return Err(format!(
                    "{}: {} is already an address of node {node} ({link}) that kube-vrrp did not add: refusing to take it over",
                    self.name, v.address
                ));
            }
        }
        // Nor the network or broadcast address of one of the node's own subnets: a /32 from
        // a pool names no subnet, so only the node knows (binding it would answer for every
        // host of the subnet, and steal the subnet's broadcast).
        for v in self.addresses.iter().filter(|a| a.family() == family) {
            if let Some((a, edge)) = node_subnet_edge(v, addrs) {
                return Err(format!(
                    "{}: {} is the {edge} address of node {node}'s subnet {}/{}: it cannot be a virtual address",
                    self.name, v.address, a.address, a.prefix_len
                ));
            }
        }
        // Our own VIPs are never a primary address, nor a reason to pick an interface.
        let own: Vec<&Address> = addrs
            .iter()
            .filter(|a| !a.is_ours() && !self.addresses.iter().any(|v| v.address == a.address))
            .collect();
        let link = match &self.spec.interface {
            Some(name) => links.iter().find(|l| &l.name == name).ok_or_else(|| {
                format!("{}: interface {name:?} does not exist on node {node}", self.name)
            })?,
            None => own
                .iter()
                .filter(|a| !is_link_local(&a.address))
                .find(|a| same_subnet(&a.address, &first.address, first.prefix_len))
                // A host address (/32, /128) names no subnet: the node's subnet holding it.
                .or_else(|| {
                    own.iter()
                        .filter(|a| !is_link_local(&a.address))
                        .find(|a| same_subnet(&a.address, &first.address, a.prefix_len))
                })
                .and_then(|a| links.iter().find(|l| l.index == a.index))
                .ok_or_else(|| {
                    format!(
                        "{}: no interface on node {node} has an address in {}/{}: set spec.interface",
                        self.name, first.address, first.prefix_len
                    )
                })?,
        };
        if link.mac.is_none() || link.name == "lo" {
            return Err(format!(
                "{}: interface {} has no Ethernet address (loopback?): VRRP needs a shared segment",
                self.name, link.name
            ));
        }
        let on_link: Vec<&&Address> = own.iter().filter(|a| a.index == link.index).collect();
        let primary = match family {
            Family::V4 => on_link
                .iter()
                .filter(|a| a.address.is_ipv4())
                .min_by_key(|a| !same_subnet(&a.address, &first.address, first.prefix_len))
                .map(|a| a.address),
            // RFC 5798 §5.1.2.1: IPv6 advertisements come from the link-local address.
            Family::V6 => on_link
                .iter()
                .find(|a| a.address.is_ipv6() && is_link_local(&a.address))
                .map(|a| a.address),
        }
        .ok_or_else(|| {
            format!(
                "{}: interface {} has no {family} address to send from",
                self.name, link.name
            )
        })?;
        let mut away: Vec<AwayLink> = Vec::new();
        for v in self.addresses.iter().filter(|a| a.family() == family) {
            let Some(name) = self.address_interfaces.get(&v.address) else {
                continue;
            };
            if *name == link.name {
                continue;
            }
            let l = links.iter().find(|l| &l.name == name).ok_or_else(|| {
                format!(
                    "{}: interface {name:?} (of {}) does not exist on node {node}",
                    self.name, v.address
                )
            })?;
            let mac = l.mac.filter(|_| l.name != "lo").ok_or_else(|| {
                format!(
                    "{}: interface {name} (of {}) has no Ethernet address",
                    self.name, v.address
                )
            })?;
            match away.iter_mut().find(|a| a.ifindex == l.index) {
                Some(a) => a.addresses.push(v.address),
                None => away.push(AwayLink {
                    interface: l.name.clone(),
                    ifindex: l.index,
                    mac,
                    addresses: vec![v.address],
                }),
            }
        }
        let mut config = self.instance_config(family, self.priority_of(node), primary);
        config.vrid = vrid;
        config.mtu = link.mtu as usize;
        // One file serves every node: a node is not its own peer.
        config
            .unicast_peers
            .retain(|p| !addrs.iter().any(|a| a.address == *p));
        let given: Vec<String> = self
            .unicast_peers
            .iter()
            .filter(|p| Family::of(p) == family)
            .map(IpAddr::to_string)
            .collect();
        if !given.is_empty() && config.unicast_peers.is_empty() {
            return Err(format!(
                "{}: spec.unicastPeers lists only node {node}'s own addresses ({}): it would have no peer to advertise to; list the other nodes' addresses too",
                self.name,
                given.join(", ")
            ));
        }
        config
            .validate()
            .map_err(|e| format!("{}: {e}", self.name))?;
        Ok(ResolvedInstance {
            key: InstanceKey::new(self.name.clone(), family),
            name: self.name.clone(),
            interface: link.name.clone(),
            ifindex: link.index,
            config,
            virtual_mac: self.spec.virtual_mac,
            garp: self.garp,
            away,
        })
    }
}

/// What one node runs of a set of VirtualIPs: the instances that resolved, and why the others
/// cannot run here (VirtualIP name, family, reason).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NodePlan {
    pub instances: BTreeMap<InstanceKey, ResolvedInstance>,
    pub errors: Vec<(String, Family, String)>,
}

/// The node's own address (not ours) whose IPv4 subnet has `v` as its network or broadcast
/// address, with which of the two.
fn node_subnet_edge<'a>(
    v: &VirtualAddress,
    addrs: &'a [Address],
) -> Option<(&'a Address, &'static str)> {
    let IpAddr::V4(va) = v.address else {
        return None;
    };
    addrs
        .iter()
        .filter(|a| !a.is_ours() && a.address.is_ipv4())
        .filter(|a| same_subnet(&a.address, &v.address, a.prefix_len))
        .find_map(|a| subnet_edge(va, a.prefix_len).map(|e| (a, e)))
}

/// Resolves every `VirtualIP` for `node`. Each family of each VirtualIP stands alone; two
/// instances on one resolved interface with one VRID and family refuse the later one (VRIDs are
/// unique per segment whether the interface was named or found).
pub(crate) fn resolve_all(
    vips: &[ValidatedVirtualIp],
    node: &str,
    links: &[Link],
    addrs: &[Address],
) -> NodePlan {
    let mut plan = NodePlan::default();
    for v in vips {
        for (family, r) in v.resolve(node, links, addrs) {
            let r = r.and_then(|r| {
                match plan.instances.values().find(|o| {
                    o.ifindex == r.ifindex
                        && o.config.family() == family
                        && o.config.vrid == r.config.vrid
                }) {
                    Some(o) => Err(format!(
                        "{}: virtual router {} on {} is already used by {:?}",
                        v.name, r.config.vrid, r.interface, o.name
                    )),
                    None => Ok(r),
                }
            });
            match r {
                Ok(r) => {
                    plan.instances.insert(r.key.clone(), r);
                }
                Err(e) => plan.errors.push((v.name.clone(), family, e)),
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::VirtualIpSpec;
    use crate::model::spec::{VridRule, validate};

    fn spec(yaml: &str) -> VirtualIpSpec {
        yaml_serde::from_str(yaml).unwrap()
    }

    #[test]
    fn an_address_on_its_own_interface_is_bound_there_and_vrrp_stays_on_the_first() {
        let links = vec![
            Link::ethernet(2, "eth0", [2, 0, 0, 0, 0, 1]),
            Link::ethernet(3, "eth1", [2, 0, 0, 0, 0, 2]),
        ];
        let addrs = vec![
            Address {
                index: 2,
                address: "198.51.100.11".parse().unwrap(),
                prefix_len: 24,
                proto: None,
            },
            Address {
                index: 3,
                address: "203.0.113.11".parse().unwrap(),
                prefix_len: 24,
                proto: None,
            },
        ];
        let v = validate(
            "gw".into(),
            spec("virtualRouterID: 7\naddresses: [\"203.0.113.1/24 dev eth1\", 198.51.100.50/24]"),
            VridRule::Required,
        )
        .unwrap();
        let r = v.resolve("n1", &links, &addrs).remove(0).1.unwrap();
        assert_eq!((r.interface.as_str(), r.ifindex), ("eth0", 2));
        assert_eq!(
            r.away,
            vec![AwayLink {
                interface: "eth1".into(),
                ifindex: 3,
                mac: [2, 0, 0, 0, 0, 2],
                addresses: vec!["203.0.113.1".parse().unwrap()],
            }]
        );
        // Both addresses are advertised, whatever interface binds them.
        assert_eq!(r.config.addresses.len(), 2);
        // A node without that interface cannot run it, and says why.
        let why = v
            .resolve("n2", &links[..1], &addrs[..1])
            .remove(0)
            .1
            .unwrap_err();
        assert!(
            why.contains("interface \"eth1\" (of 203.0.113.1) does not exist on node n2"),
            "{why}"
        );
    }
}
