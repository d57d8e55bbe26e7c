//! `vrrp_sync_group`: instances that move together become one VirtualIP, each member's
//! addresses on its own interface (`ip/prefix dev IF`).

use super::parser::Stmt;
use super::report::{Place, Report};
use crate::api::VirtualIpSpec;

/// One `vrrp_instance` of one node, as converted (here, where merging starts).
#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub(crate) name: String,
    pub(crate) node: String,
    pub(crate) priority: u8,
    pub(crate) spec: VirtualIpSpec,
    pub(crate) at: Place,
}

/// `vrrp_sync_group NAME { group { A B ... } }`: the members move together, so the first
/// takes the others' addresses (each bound on its member's interface: `ip/prefix dev IF`),
/// tracked interfaces, checks and virtual servers, and is the one VRRP instance. A member
/// that cannot be merged (another VRRP version) stays a VirtualIP of its own, with a warning.
pub(super) fn sync_group(g: &Stmt, instances: &mut Vec<Instance>, report: &mut Report) {
    let name = g.arg(1).unwrap_or_default();
    let members: Vec<String> = g
        .children()
        .iter()
        .filter(|c| c.key() == "group")
        .flat_map(|c| {
            // Any number of names a line (`group { FRONT BACK }`), as keepalived reads them.
            c.children()
                .iter()
                .flat_map(|m| {
                    std::iter::once(m.key().to_string())
                        .chain((1..).map_while(|i| m.arg(i).map(str::to_string)))
                        .collect::<Vec<_>>()
                })
                .chain((1..).map_while(|i| c.arg(i).map(str::to_string)))
                .collect::<Vec<_>>()
        })
        .collect();
    for other in g.children().iter().filter(|c| c.key() != "group") {
        report.warning(
            &other.at,
            format!(
                "vrrp_sync_group {name}: {} is not carried over (the merged VirtualIP has its own checks, tracked interfaces and notify hooks)",
                other.key()
            ),
        );
    }
    let Some(first) = members
        .iter()
        .find_map(|m| instances.iter().position(|i| &i.name == m))
    else {
        report.warning(
            &g.at,
            format!(
                "vrrp_sync_group {name}: none of its instances is in this file: not carried over"
            ),
        );
        return;
    };
    let lead = instances[first].name.clone();
    if members.len() == 1 {
        report.note(
            &g.at,
            format!("vrrp_sync_group {name}: {lead} alone: nothing to move with it"),
        );
    }
    for m in &members {
        if *m == lead {
            continue;
        }
        let Some(j) = instances.iter().position(|i| &i.name == m) else {
            report.warning(
                &g.at,
                format!("vrrp_sync_group {name}: {m} is not a vrrp_instance of this file"),
            );
            continue;
        };
        if instances[j].spec.version != instances[first].spec.version {
            report.warning(
                &g.at,
                format!(
                    "vrrp_sync_group {name}: {m} is VRRPv{} and {lead} VRRPv{}: not merged, each fails over on its own",
                    instances[j].spec.version, instances[first].spec.version
                ),
            );
            continue;
        }
        let member = instances.remove(j);
        let first = instances
            .iter()
            .position(|i| i.name == lead)
            .expect("the lead stays");
        let lead_if = instances[first].spec.interface.clone();
        let on = |a: &String| match (&member.spec.interface, a.contains(" dev ")) {
            (Some(i), false) if Some(i) != lead_if.as_ref() => format!("{a} dev {i}"),
            _ => a.clone(),
        };
        let to = &mut instances[first].spec;
        to.addresses.extend(member.spec.addresses.iter().map(on));
        let mut excluded = (*to.excluded_addresses).clone();
        excluded.extend(member.spec.excluded_addresses.iter().map(on));
        to.excluded_addresses = std::sync::Arc::new(excluded);
        for t in member.spec.track_interfaces {
            if !to.track_interfaces.iter().any(|x| x.name == t.name) {
                to.track_interfaces.push(t);
            }
        }
        for c in member.spec.health_checks {
            if !to.health_checks.iter().any(|x| x.name == c.name) {
                to.health_checks.push(c);
            }
        }
        to.virtual_servers.extend(member.spec.virtual_servers);
        report.note(
            &g.at,
            format!(
                "vrrp_sync_group {name}: {m} merged into {lead}: its addresses are bound on {} and move with {lead}'s (one VRRP instance where keepalived ran two)",
                member.spec.interface.as_deref().unwrap_or("its interface")
            ),
        );
        // What only the member had: said, never dropped silently.
        let lead_spec = &instances[first].spec;
        let mut dropped = Vec::new();
        if member.spec.virtual_router_id != lead_spec.virtual_router_id {
            dropped.push(format!(
                "virtual_router_id {}",
                member.spec.virtual_router_id.unwrap_or_default()
            ));
        }
        if member.priority != instances[first].priority {
            dropped.push(format!("priority {}", member.priority));
        }
        if member.spec.notify.is_some() {
            dropped.push("notify".into());
        }
        if member.spec.unicast_peers != lead_spec.unicast_peers {
            dropped.push("unicast_peer".into());
        }
        if member.spec.virtual_mac != lead_spec.virtual_mac {
            dropped.push("use_vmac".into());
        }
        if !dropped.is_empty() {
            report.warning(
                &g.at,
                format!(
                    "vrrp_sync_group {name}: {m}'s {} not carried over: the merged VirtualIP runs with {lead}'s",
                    dropped.join(", ")
                ),
            );
        }
    }
}
