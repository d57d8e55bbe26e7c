//! Standby links: Linux binds IPv6 addresses in quadratic time (each add walks every address
//! of the namespace: 1,000 take 0.4-0.8 s, 2,000 take 2.4 s), far beyond VRRP time. An
//! instance with at least [`STANDBY_MIN`] IPv6 excluded addresses therefore binds them ahead,
//! while it is backup, on a macvlan of its own that stays down (`kvs-<id>`: a down link
//! neither answers neighbour solicitations nor accepts traffic for them), and becoming master
//! sets that one link up. Leaving master sets it down again. Its MAC is announced for those
//! addresses by unsolicited NA.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use tracing::{error, info, warn};

use super::kernel::Kernel;
use super::ledger::{add_all, delete_all};
use super::{Ctx, set_bind_fault};
use crate::agent::messages::{AnnounceCmd, ScheduleId};
use crate::ids::{InstanceId, InstanceKey};
use crate::model::address::is_link_local;
use crate::net::announce::Mac;
use crate::vrrp::{InstanceConfig, VirtualAddress};

/// An instance with at least this many IPv6 excluded addresses binds them ahead on a standby
/// link (see the module documentation). Fewer bind in well under 100 ms the usual way.
pub(crate) const STANDBY_MIN: usize = 64;

/// The addresses an instance binds ahead on a standby link: its IPv6 excluded addresses when
/// there are at least [`STANDBY_MIN`], else none.
pub(crate) fn standby_addresses(config: &InstanceConfig) -> Vec<VirtualAddress> {
    let excluded = excluded_ipv6(config);
    if excluded.len() >= STANDBY_MIN {
        excluded
    } else {
        Vec::new()
    }
}

/// An instance's IPv6 excluded addresses (what a standby link would hold).
pub(crate) fn excluded_ipv6(config: &InstanceConfig) -> Vec<VirtualAddress> {
    config
        .addresses
        .iter()
        .skip(config.advertised)
        .filter(|a| a.address.is_ipv6() && !is_link_local(&a.address))
        .copied()
        .collect()
}

/// The standby link of instance `id`.
pub(crate) fn standby_name(id: InstanceId) -> String {
    format!("kvs-{id:x}")
}

/// Whether a link is a standby link of ours (by name: a previous run's is removed at start).
pub(crate) fn is_standby_name(name: &str) -> bool {
    name.strip_prefix("kvs-")
        .is_some_and(|h| !h.is_empty() && h.len() <= 11 && u64::from_str_radix(h, 16).is_ok())
}

/// A standby link must never speak for the node: no ARP replies for the node's own IPv4
/// addresses, no link-local address, no router or duplicate address traffic; and it keeps its
/// addresses while down.
pub(crate) fn standby_sysctls(name: &str) -> [(String, &'static str); 5] {
    [
        (format!("net/ipv4/conf/{name}/arp_ignore"), "8"),
        (format!("net/ipv6/conf/{name}/keep_addr_on_down"), "1"),
        (format!("net/ipv6/conf/{name}/addr_gen_mode"), "1"),
        (format!("net/ipv6/conf/{name}/accept_ra"), "0"),
        (format!("net/ipv6/conf/{name}/accept_dad"), "0"),
    ]
}

/// An instance's standby link and what is bound on it.
#[derive(Debug)]
pub(crate) struct Standby {
    pub link: u32,
    pub mac: Mac,
    pub addresses: HashSet<IpAddr>,
    pub up: bool,
}

impl Standby {
    /// Splits `addresses` into those on the standby link and the others.
    pub(super) fn split(
        this: &Option<Standby>,
        addresses: Vec<VirtualAddress>,
    ) -> (Vec<VirtualAddress>, Vec<VirtualAddress>) {
        match this {
            Some(s) => addresses
                .into_iter()
                .partition(|a| s.addresses.contains(&a.address)),
            None => (Vec::new(), addresses),
        }
    }
}

/// What a change of an instance's IPv6 excluded addresses does to its standby link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restage {
    /// The link there follows the new addresses.
    Follow,
    /// No link, enough addresses, backup: make one now.
    StageNow,
    /// No link, enough addresses, master: make one when it next leaves master.
    StageOnLeavingMaster,
    /// No link and too few addresses for one: nothing (and nothing pending).
    Nothing,
}

/// See [`Restage`].
pub(crate) fn restage_decision(has_link: bool, addresses: usize, master: bool) -> Restage {
    match (has_link, addresses >= STANDBY_MIN, master) {
        (true, _, _) => Restage::Follow,
        (false, true, false) => Restage::StageNow,
        (false, true, true) => Restage::StageOnLeavingMaster,
        (false, false, _) => Restage::Nothing,
    }
}

/// Splits `addresses` into those free to bind and those someone else already has on the node
/// (`foreign`: address → interface), as (interface, address) conflicts.
pub(crate) fn split_foreign(
    addresses: &[VirtualAddress],
    foreign: &HashMap<IpAddr, u32>,
) -> (Vec<VirtualAddress>, Vec<(u32, IpAddr)>) {
    let mut conflicts = Vec::new();
    let mut free = Vec::new();
    for a in addresses {
        match foreign.get(&a.address) {
            Some(index) => conflicts.push((*index, a.address)),
            None => free.push(*a),
        }
    }
    (free, conflicts)
}

/// What a standby link holding `current` must add and remove to hold `wanted`: the agent's
/// one excluded-address diff ([`crate::agent::excluded::change`]), removals in address order.
pub(crate) fn restage_plan(
    current: &HashSet<IpAddr>,
    wanted: &[VirtualAddress],
) -> (Vec<VirtualAddress>, Vec<IpAddr>) {
    let change = crate::agent::excluded::change(current.iter().copied(), wanted);
    let mut remove = change.removed;
    remove.sort();
    (change.added, remove)
}

/// The fault reason of addresses already on the node and not ours.
pub(crate) fn conflict_reason(conflicts: &[(u32, IpAddr)]) -> Option<String> {
    let (_, address) = conflicts.first()?;
    Some(format!(
        "cannot bind: {address} is already on the node and was not added by kube-vrrp{}",
        match conflicts.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        }
    ))
}

/// Creates instance `id`'s standby link (down) on `parent` and binds `addresses` on it.
/// `None` when the link cannot be made: the addresses then bind the usual way on master.
/// An address already on the node and not ours is a conflict, as for a bind.
pub(crate) async fn stage<K: Kernel>(
    ctx: &Ctx<K>,
    id: InstanceId,
    key: &InstanceKey,
    parent: u32,
    addresses: &[VirtualAddress],
) -> Option<Standby> {
    let started = std::time::Instant::now();
    let present = match ctx.kernel.addresses(None).await {
        Ok(p) => p,
        Err(e) => {
            ctx.count_netlink_errors(1);
            warn!(instance = %key, error = %e, "cannot read addresses: no standby link");
            return None;
        }
    };
    let foreign: HashMap<IpAddr, u32> = present
        .iter()
        .filter(|p| !p.is_ours())
        .map(|p| (p.address, p.index))
        .collect();
    let name = standby_name(id);
    let (link, mac) = match ctx.kernel.create_macvlan(parent, &name).await {
        Ok(l) => l,
        Err(e) => {
            ctx.count_netlink_errors(1);
            warn!(instance = %key, link = %name, error = %e, "cannot create a standby link: its addresses bind when master");
            return None;
        }
    };
    for (path, value) in standby_sysctls(&name) {
        ctx.kernel.set_sysctl(&path, value);
    }
    let (wanted, conflicts) = split_foreign(addresses, &foreign);
    {
        let mut l = ctx.ledger.lock().expect("ledger");
        l.hold(link, id, key, &wanted, None);
        for (index, address) in &conflicts {
            l.conflict(*index, *address, key);
        }
    }
    let mut standby = Standby {
        link,
        mac,
        addresses: HashSet::new(),
        up: false,
    };
    let failed = bind_on(ctx, id, &mut standby, &wanted).await;
    info!(
        instance = %key,
        link = %name,
        addresses = standby.addresses.len(),
        failed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "addresses bound ahead on a standby link (down)"
    );
    if let Some(reason) = conflict_reason(&conflicts) {
        error!(instance = %key, conflicts = conflicts.len(), %reason, "cannot bind virtual addresses");
        set_bind_fault(&ctx.engine, key, Some(reason));
    }
    Some(standby)
}

/// Binds `addresses` (already in the ledger) on the standby link; returns how many failed.
/// One that fails is not on the link: it binds the usual way when master.
async fn bind_on<K: Kernel>(
    ctx: &Ctx<K>,
    id: InstanceId,
    s: &mut Standby,
    addresses: &[VirtualAddress],
) -> usize {
    let results = add_all(&ctx.kernel, s.link, addresses).await;
    let mut failed = 0usize;
    let mut l = ctx.ledger.lock().expect("ledger");
    for (a, r) in results {
        if r.is_ok() {
            s.addresses.insert(a.address);
        } else {
            failed += 1;
            l.unhold(s.link, id, a.address);
        }
    }
    drop(l);
    ctx.count_netlink_errors(failed);
    failed
}

/// Brings a standby link to `addresses`: binds the new ones on it (announced when it is up),
/// removes the ones no longer wanted.
pub(crate) async fn restage<K: Kernel>(
    ctx: &Ctx<K>,
    id: InstanceId,
    key: &InstanceKey,
    s: &mut Standby,
    addresses: &[VirtualAddress],
) {
    let (add, gone) = restage_plan(&s.addresses, addresses);
    let remove = {
        let mut l = ctx.ledger.lock().expect("ledger");
        for a in &gone {
            s.addresses.remove(a);
        }
        let remove = l.release(s.link, id, gone);
        l.hold(s.link, id, key, &add, s.up.then_some(s.mac));
        remove
    };
    let failed = delete_all(&ctx.kernel, remove).await;
    ctx.count_netlink_errors(failed);
    bind_on(ctx, id, s, &add).await;
}

/// Sets the standby link up (the instance became master). `false`: it could not be, and the
/// caller binds its addresses the usual way.
pub(crate) async fn raise<K: Kernel>(
    ctx: &Ctx<K>,
    key: &InstanceKey,
    s: &mut Standby,
    n: usize,
) -> bool {
    if s.up {
        return true;
    }
    let started = std::time::Instant::now();
    match ctx.kernel.set_up(s.link).await {
        Ok(()) => {
            s.up = true;
            info!(
                instance = %key,
                addresses = n,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "standby link up"
            );
            true
        }
        Err(e) => {
            ctx.count_netlink_errors(1);
            error!(instance = %key, error = %e, "cannot set the standby link up: binding its addresses the usual way");
            false
        }
    }
}

/// Sets the standby link down (the instance left master). `false`: it could not be, and the
/// caller removes it.
pub(crate) async fn lower<K: Kernel>(ctx: &Ctx<K>, s: &mut Standby) -> bool {
    if !s.up {
        return true;
    }
    match ctx.kernel.set_down(s.link).await {
        Ok(()) => {
            s.up = false;
            true
        }
        Err(e) => {
            ctx.count_netlink_errors(1);
            error!(error = %e, "cannot set a standby link down: removing it");
            false
        }
    }
}

/// Removes a standby link and its addresses (one request for all of them).
pub(crate) async fn drop_standby<K: Kernel>(ctx: &Ctx<K>, id: InstanceId, s: Standby) {
    let _ = ctx.announcer.send(AnnounceCmd::Stop {
        id: ScheduleId::StandbyLink(id),
    });
    // Out of the ledger first: their removal events are not losses.
    ctx.ledger.lock().expect("ledger").forget_link(s.link);
    if let Err(e) = ctx.kernel.delete_link(s.link).await {
        ctx.count_netlink_errors(1);
        error!(error = %e, "cannot remove a standby link");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(n: u16) -> VirtualAddress {
        VirtualAddress {
            address: IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)),
            prefix_len: 64,
        }
    }

    #[test]
    fn standby_names_round_trip() {
        assert_eq!(standby_name(InstanceId::nth(0x2a)), "kvs-2a");
        assert!(is_standby_name(&standby_name(InstanceId::nth(
            u64::from(u32::MAX) * 7
        ))));
        for name in ["kvs-", "kvs-xyz", "kvs-123456789abc", "vrrp-2a", "eth0"] {
            assert!(!is_standby_name(name), "{name}");
        }
    }

    #[test]
    fn restage_decisions() {
        let n = STANDBY_MIN;
        assert_eq!(restage_decision(true, 0, true), Restage::Follow);
        assert_eq!(restage_decision(false, n, false), Restage::StageNow);
        assert_eq!(
            restage_decision(false, n, true),
            Restage::StageOnLeavingMaster
        );
        assert_eq!(restage_decision(false, n - 1, false), Restage::Nothing);
        assert_eq!(restage_decision(false, n - 1, true), Restage::Nothing);
    }

    #[test]
    fn restage_plan_is_the_difference() {
        let current: HashSet<IpAddr> = [v6(1), v6(2), v6(3)].map(|a| a.address).into();
        let (add, remove) = restage_plan(&current, &[v6(2), v6(3), v6(4)]);
        assert_eq!(add, vec![v6(4)]);
        assert_eq!(remove, vec![v6(1).address]);
        let (add, remove) = restage_plan(&current, &[v6(1), v6(2), v6(3)]);
        assert!(add.is_empty() && remove.is_empty());
    }

    #[test]
    fn foreign_addresses_are_conflicts() {
        let foreign = HashMap::from([(v6(2).address, 5)]);
        let (free, conflicts) = split_foreign(&[v6(1), v6(2), v6(3)], &foreign);
        assert_eq!(free, vec![v6(1), v6(3)]);
        assert_eq!(conflicts, vec![(5, v6(2).address)]);
    }

    #[test]
    fn conflict_reasons() {
        assert_eq!(conflict_reason(&[]), None);
        assert_eq!(
            conflict_reason(&[(5, v6(2).address)]).unwrap(),
            "cannot bind: 2001:db8::2 is already on the node and was not added by kube-vrrp"
        );
        assert!(
            conflict_reason(&[(5, v6(2).address), (5, v6(3).address), (6, v6(4).address)])
                .unwrap()
                .ends_with(" (and 2 more)")
        );
    }

    #[test]
    fn split_by_the_standby_link() {
        let s = Some(Standby {
            link: 9,
            mac: [2; 6],
            addresses: [v6(1).address].into(),
            up: false,
        });
        assert_eq!(
            Standby::split(&s, vec![v6(1), v6(2)]),
            (vec![v6(1)], vec![v6(2)])
        );
        assert_eq!(Standby::split(&None, vec![v6(1)]), (vec![], vec![v6(1)]));
    }
}
