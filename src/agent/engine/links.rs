//! Addresses bound on other interfaces than the instance's (`ip/prefix dev IFACE`): the data
//! plane's commands for an instance, split by the link each address lives on (pure). The
//! data plane then binds, releases and announces each on its own interface, from its own MAC;
//! the standby link (bound ahead on the instance's interface) takes only the instance's own.

use std::net::IpAddr;

use tokio::sync::mpsc;

use crate::agent::messages::DataplaneCmd;
use crate::model::resolved::AwayLink;
use crate::vrrp::VirtualAddress;

/// Sends `cmd` as [`per_link`] splits it.
pub(super) fn send(tx: &mpsc::UnboundedSender<DataplaneCmd>, away: &[AwayLink], cmd: DataplaneCmd) {
    for c in per_link(cmd, away) {
        let _ = tx.send(c);
    }
}

/// `addresses` by link: the instance's own first (index `None`), then each away link's. One
/// pass over each list (the engine thread runs this: thousands of excluded addresses must
/// not cost their square).
fn split(
    addresses: Vec<VirtualAddress>,
    away: &[AwayLink],
) -> (Vec<VirtualAddress>, Vec<(usize, Vec<VirtualAddress>)>) {
    let link_of: std::collections::HashMap<IpAddr, usize> = away
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.addresses.iter().map(move |a| (*a, i)))
        .collect();
    let mut own = Vec::new();
    let mut others: Vec<(usize, Vec<VirtualAddress>)> = Vec::new();
    for a in addresses {
        match link_of.get(&a.address).copied() {
            None => own.push(a),
            Some(i) => match others.iter_mut().find(|(j, _)| *j == i) {
                Some((_, list)) => list.push(a),
                None => others.push((i, vec![a])),
            },
        }
    }
    others.sort_by_key(|(i, _)| *i);
    (own, others)
}

/// One command per link its addresses live on. Without away links: `cmd` itself.
pub(super) fn per_link(cmd: DataplaneCmd, away: &[AwayLink]) -> Vec<DataplaneCmd> {
    if away.is_empty() {
        return vec![cmd];
    }
    // `make(link, addresses)` for the instance's own link (None; also when it has none of
    // them, if `always`) and then each away link holding some.
    let spread =
        |addresses: Vec<VirtualAddress>,
         always: bool,
         make: &dyn Fn(Option<&AwayLink>, Vec<VirtualAddress>) -> DataplaneCmd| {
            let (own, others) = split(addresses, away);
            let mut out = Vec::new();
            if always || !own.is_empty() {
                out.push(make(None, own));
            }
            out.extend(
                others
                    .into_iter()
                    .map(|(i, list)| make(Some(&away[i]), list)),
            );
            out
        };
    let on = |l: Option<&AwayLink>, ifindex: u32| l.map_or(ifindex, |l| l.ifindex);
    match cmd {
        DataplaneCmd::Stage {
            id,
            key,
            ifindex,
            addresses,
        } => {
            let (own, _) = split(addresses, away);
            if own.is_empty() {
                return Vec::new();
            }
            vec![DataplaneCmd::Stage {
                id,
                key,
                ifindex,
                addresses: own,
            }]
        }
        DataplaneCmd::Restage {
            id,
            key,
            ifindex,
            addresses,
            master,
        } => vec![DataplaneCmd::Restage {
            id,
            key,
            ifindex,
            addresses: split(addresses, away).0,
            master,
        }],
        DataplaneCmd::Bind {
            id,
            key,
            ifindex,
            addresses,
        } => spread(addresses, false, &|l, addresses| DataplaneCmd::Bind {
            id,
            key: key.clone(),
            ifindex: on(l, ifindex),
            addresses,
        }),
        DataplaneCmd::Unbind {
            id,
            ifindex,
            addresses,
        } => spread(addresses, false, &|l, addresses| DataplaneCmd::Unbind {
            id,
            ifindex: on(l, ifindex),
            addresses,
        }),
        DataplaneCmd::Disown {
            id,
            ifindex,
            addresses,
        } => spread(addresses, true, &|l, addresses| DataplaneCmd::Disown {
            id,
            ifindex: on(l, ifindex),
            addresses,
        }),
        DataplaneCmd::Announce {
            id,
            key,
            ifindex,
            mac,
            addresses,
            garp,
            burst,
        } => spread(addresses, true, &|l, addresses| DataplaneCmd::Announce {
            id,
            key: key.clone(),
            ifindex: on(l, ifindex),
            mac: l.map_or(mac, |l| l.mac),
            addresses,
            garp,
            burst,
        }),
        other => vec![other],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::InstanceId;
    use crate::model::spec::GarpConfig;

    fn va(s: &str) -> VirtualAddress {
        s.parse().unwrap()
    }

    fn back() -> Vec<AwayLink> {
        vec![AwayLink {
            interface: "eth1".into(),
            ifindex: 3,
            mac: [2, 0, 0, 0, 0, 2],
            addresses: vec!["203.0.113.1".parse().unwrap()],
        }]
    }

    fn summary(cmds: &[DataplaneCmd]) -> Vec<(String, u32, Vec<String>)> {
        cmds.iter()
            .map(|c| match c {
                DataplaneCmd::Bind {
                    ifindex, addresses, ..
                } => ("bind", *ifindex, addresses),
                DataplaneCmd::Unbind {
                    ifindex, addresses, ..
                } => ("unbind", *ifindex, addresses),
                DataplaneCmd::Announce {
                    ifindex, addresses, ..
                } => ("announce", *ifindex, addresses),
                DataplaneCmd::Stage {
                    ifindex, addresses, ..
                } => ("stage", *ifindex, addresses),
                DataplaneCmd::Disown {
                    ifindex, addresses, ..
                } => ("disown", *ifindex, addresses),
                _ => unreachable!(),
            })
            .map(|(k, i, a)| (k.to_string(), i, a.iter().map(|a| a.to_string()).collect()))
            .collect()
    }

    #[test]
    fn each_address_is_bound_released_and_announced_on_its_own_link_in_order() {
        let both = vec![va("198.51.100.50/24"), va("203.0.113.1/24")];
        let bind = per_link(
            DataplaneCmd::Bind {
                id: InstanceId::nth(1),
                key: "gw/ipv4".parse().unwrap(),
                ifindex: 2,
                addresses: both.clone(),
            },
            &back(),
        );
        assert_eq!(
            summary(&bind),
            [
                ("bind".to_string(), 2, vec!["198.51.100.50/24".to_string()]),
                ("bind".to_string(), 3, vec!["203.0.113.1/24".to_string()]),
            ]
        );
        let announce = per_link(
            DataplaneCmd::Announce {
                id: InstanceId::nth(1),
                key: "gw/ipv4".parse().unwrap(),
                ifindex: 2,
                mac: [2, 0, 0, 0, 0, 1],
                addresses: both.clone(),
                garp: GarpConfig::default(),
                burst: true,
            },
            &back(),
        );
        let DataplaneCmd::Announce { mac, .. } = &announce[1] else {
            unreachable!()
        };
        assert_eq!(*mac, [2, 0, 0, 0, 0, 2], "from the back interface's MAC");
        let unbind = per_link(
            DataplaneCmd::Unbind {
                id: InstanceId::nth(1),
                ifindex: 2,
                addresses: both.clone(),
            },
            &back(),
        );
        assert_eq!(summary(&unbind)[1].1, 3);
        // Staged ahead only on the instance's own interface.
        let stage = per_link(
            DataplaneCmd::Stage {
                id: InstanceId::nth(1),
                key: "gw/ipv4".parse().unwrap(),
                ifindex: 2,
                addresses: vec![va("203.0.113.1/24")],
            },
            &back(),
        );
        assert!(stage.is_empty());
        // Nothing elsewhere: the command as it was.
        let plain = per_link(
            DataplaneCmd::Bind {
                id: InstanceId::nth(1),
                key: "gw/ipv4".parse().unwrap(),
                ifindex: 2,
                addresses: both,
            },
            &[],
        );
        assert_eq!(summary(&plain).len(), 1);
    }
}
