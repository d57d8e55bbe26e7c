//! The ledger of addresses that are ours: every address this agent bound, on which link, for
//! which instance. Only what it holds is ever released; an address that was there before and
//! is not ours is recorded as a conflict, never adopted. Also the one concurrent batch in
//! which addresses are added and deleted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tracing::error;

use super::kernel::Kernel;
use crate::ids::{InstanceId, InstanceKey};
use crate::net::announce::Mac;
use crate::net::netlink::NetlinkError;
use crate::vrrp::VirtualAddress;

/// Netlink requests in flight per batch.
const PARALLEL: usize = 64;

/// Who holds an address of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    /// The instance run that bound it last (it announces it), or `None`: a previous process
    /// of this agent left it (kept while the election decides, never renewed: it expires
    /// unless an instance binds it).
    pub holder: Option<(InstanceId, InstanceKey)>,
    pub prefix_len: u8,
    /// The MAC it is announced with while its instance is master.
    pub mac: Option<Mac>,
    /// Other instances that hold the same address (two VirtualIPs naming one address, or an
    /// old instance still handing over beside its successor): it stays while any holds it.
    pub others: Vec<(InstanceId, InstanceKey)>,
}

impl Held {
    pub(super) fn inherited(&self) -> bool {
        self.holder.is_none()
    }

    /// Whether run `id` is the holder (an inherited address has none).
    fn held_by(&self, id: Option<InstanceId>) -> bool {
        self.holder.as_ref().map(|(h, _)| *h) == id
    }
}

/// What this agent bound: (interface, address) → holder.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    held: HashMap<(u32, IpAddr), Held>,
    /// Addresses that were there and not ours, blocking an instance: (ifindex, address) → key.
    conflicts: HashMap<(u32, IpAddr), InstanceKey>,
}

pub(crate) type SharedLedger = Arc<Mutex<Ledger>>;

/// What letting go of one holder leaves.
enum Let {
    /// Not held by that instance.
    NotHeld,
    /// Another instance still holds it.
    Kept,
    /// Nobody holds it any more: it may be deleted.
    Free(u8),
}

impl Ledger {
    /// Records `addresses` on `link` as instance `id`'s. Done before the request, so our own
    /// address event finds them ours. An instance already holding one keeps holding it too.
    pub(super) fn hold(
        &mut self,
        link: u32,
        id: InstanceId,
        key: &InstanceKey,
        addresses: &[VirtualAddress],
        mac: Option<Mac>,
    ) {
        for a in addresses {
            let mut others = Vec::new();
            if let Some(old) = self.held.remove(&(link, a.address)) {
                others = old.others;
                if let Some((old_id, old_key)) = old.holder
                    && old_id != id
                {
                    others.push((old_id, old_key));
                }
                others.retain(|(o, _)| *o != id);
            }
            self.held.insert(
                (link, a.address),
                Held {
                    holder: Some((id, key.clone())),
                    prefix_len: a.prefix_len,
                    mac,
                    others,
                },
            );
        }
    }

    /// Records an address a previous run left bound, unless something of ours holds it.
    pub(super) fn inherit(&mut self, link: u32, vip: VirtualAddress) {
        self.held.entry((link, vip.address)).or_insert(Held {
            holder: None,
            prefix_len: vip.prefix_len,
            mac: None,
            others: Vec::new(),
        });
    }

    pub(super) fn get(&self, link: u32, address: IpAddr) -> Option<&Held> {
        self.held.get(&(link, address))
    }

    /// Run `id` (`None`: the previous process) lets go of `address` on `link` (an inherited
    /// address goes with anyone).
    fn let_go(&mut self, link: u32, id: Option<InstanceId>, address: IpAddr) -> Let {
        let Some(h) = self.held.get_mut(&(link, address)) else {
            return Let::NotHeld;
        };
        if h.held_by(id) || h.inherited() {
            if let Some(next) = h.others.pop() {
                h.holder = Some(next);
                return Let::Kept;
            }
            let prefix_len = h.prefix_len;
            self.held.remove(&(link, address));
            return Let::Free(prefix_len);
        }
        let before = h.others.len();
        h.others.retain(|(o, _)| Some(*o) != id);
        if h.others.len() < before {
            Let::Kept
        } else {
            Let::NotHeld
        }
    }

    /// Drops `address` on `link` if instance `id` holds it (a bind that failed).
    pub(super) fn unhold(&mut self, link: u32, id: InstanceId, address: IpAddr) {
        self.let_go(link, Some(id), address);
    }

    /// Instance `id` lets go of `addresses` on `link`; returns those nobody holds any more:
    /// only those may be deleted. Out of the ledger first, so our own delete event is not a
    /// loss.
    pub(super) fn release(
        &mut self,
        link: u32,
        id: InstanceId,
        addresses: impl IntoIterator<Item = IpAddr>,
    ) -> Vec<(u32, VirtualAddress)> {
        self.release_as(link, Some(id), addresses)
    }

    /// [`Ledger::release`] for run `id`, or for the previous process (`None`).
    fn release_as(
        &mut self,
        link: u32,
        id: Option<InstanceId>,
        addresses: impl IntoIterator<Item = IpAddr>,
    ) -> Vec<(u32, VirtualAddress)> {
        addresses
            .into_iter()
            .filter_map(|address| match self.let_go(link, id, address) {
                Let::Free(prefix_len) => Some((
                    link,
                    VirtualAddress {
                        address,
                        prefix_len,
                    },
                )),
                Let::NotHeld | Let::Kept => None,
            })
            .collect()
    }

    /// Instance `id` is gone: it lets go of everything it still holds; returns what nobody
    /// holds any more (an agent never keeps an address no running instance owns).
    pub(super) fn forget_instance(&mut self, id: InstanceId) -> Vec<(u32, VirtualAddress)> {
        let mine: Vec<(u32, IpAddr)> = self
            .held
            .iter()
            .filter(|(_, h)| h.held_by(Some(id)) || h.others.iter().any(|(o, _)| *o == id))
            .map(|(k, _)| *k)
            .collect();
        mine.into_iter()
            .flat_map(|(link, address)| self.release(link, id, [address]))
            .collect()
    }

    /// What a live instance holds: the addresses whose lifetime is renewed.
    pub(super) fn renewable(&self) -> Vec<(u32, VirtualAddress)> {
        self.held
            .iter()
            .filter(|(_, h)| !h.inherited())
            .map(|(&(link, address), h)| {
                (
                    link,
                    VirtualAddress {
                        address,
                        prefix_len: h.prefix_len,
                    },
                )
            })
            .collect()
    }

    /// Takes out those of `addresses` on `link` that a previous run left and nothing of ours
    /// bound since; returns them, to be deleted.
    pub(super) fn disown(
        &mut self,
        link: u32,
        addresses: impl IntoIterator<Item = IpAddr>,
    ) -> Vec<(u32, VirtualAddress)> {
        let theirs: Vec<IpAddr> = addresses
            .into_iter()
            .filter(|a| self.get(link, *a).is_some_and(Held::inherited))
            .collect();
        self.release_as(link, None, theirs)
    }

    /// An inherited address went (it expired, or someone removed it): forgotten.
    pub(super) fn drop_inherited(&mut self, link: u32, address: IpAddr) -> bool {
        if self.get(link, address).is_some_and(Held::inherited) {
            self.held.remove(&(link, address));
            return true;
        }
        false
    }

    /// Forgets everything on `link` (a standby link being removed with its addresses).
    pub(super) fn forget_link(&mut self, link: u32) {
        self.held.retain(|(l, _), _| *l != link);
    }

    /// Takes everything out (the agent stops).
    pub(super) fn release_all(&mut self) -> Vec<(u32, VirtualAddress)> {
        self.held
            .drain()
            .map(|((link, address), h)| {
                (
                    link,
                    VirtualAddress {
                        address,
                        prefix_len: h.prefix_len,
                    },
                )
            })
            .collect()
    }

    /// Records `mac` as the announcing MAC of those of `addresses` held on `link`; returns
    /// them (what is bound now: a conflict may have stopped some).
    pub(super) fn set_mac(
        &mut self,
        link: u32,
        addresses: &[VirtualAddress],
        mac: Option<Mac>,
    ) -> Vec<IpAddr> {
        addresses
            .iter()
            .filter_map(|a| {
                let h = self.held.get_mut(&(link, a.address))?;
                h.mac = mac;
                Some(a.address)
            })
            .collect()
    }

    /// `address` on `link` is someone else's and blocks instance `key`.
    pub(super) fn conflict(&mut self, link: u32, address: IpAddr, key: &InstanceKey) {
        self.conflicts.insert((link, address), key.clone());
    }

    /// The instance a conflict on `address` blocked, if any; the conflict is gone.
    pub(super) fn clear_conflict(&mut self, link: u32, address: IpAddr) -> Option<InstanceKey> {
        self.conflicts.remove(&(link, address))
    }
}

/// The outcome of one request of a batch.
pub(crate) type Outcome<T> = (VirtualAddress, Result<T, NetlinkError>);

/// Adds `addresses` on `link`, concurrently. `Ok(false)`: it was there already.
pub(crate) async fn add_all<K: Kernel>(
    kernel: &K,
    link: u32,
    addresses: &[VirtualAddress],
) -> Vec<Outcome<bool>> {
    futures::stream::iter(addresses.iter().copied())
        .map(|a| async move { (a, kernel.add_address(link, a).await) })
        .buffer_unordered(PARALLEL)
        .collect()
        .await
}

/// Deletes addresses, concurrently; logs what failed and returns how many did.
pub(crate) async fn delete_all<K: Kernel>(
    kernel: &K,
    addresses: Vec<(u32, VirtualAddress)>,
) -> usize {
    let errors: Vec<String> = futures::stream::iter(addresses)
        .map(|(link, a)| async move {
            kernel
                .del_address(link, a)
                .await
                .err()
                .map(|e| format!("{a}: {e}"))
        })
        .buffer_unordered(PARALLEL)
        .filter_map(|e| async move { e })
        .collect()
        .await;
    if let Some(e) = errors.first() {
        error!(failed = errors.len(), error = %e, "cannot release virtual addresses");
    }
    errors.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> InstanceId {
        InstanceId::nth(n)
    }

    fn key(s: &str) -> InstanceKey {
        s.parse().unwrap()
    }

    fn va(s: &str) -> VirtualAddress {
        VirtualAddress {
            address: s.parse().unwrap(),
            prefix_len: 24,
        }
    }

    #[test]
    fn release_takes_only_what_the_instance_holds() {
        let mut l = Ledger::default();
        l.hold(2, id(1), &key("a/ipv4"), &[va("10.0.0.1")], None);
        l.hold(2, id(7), &key("b/ipv4"), &[va("10.0.0.2")], None);
        let out = l.release(
            2,
            id(1),
            ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map(|s| s.parse().unwrap()),
        );
        assert_eq!(out, vec![(2, va("10.0.0.1"))]);
        assert!(l.get(2, va("10.0.0.1").address).is_none());
        assert_eq!(
            l.get(2, va("10.0.0.2").address)
                .unwrap()
                .holder
                .as_ref()
                .unwrap()
                .0,
            id(7)
        );
        // Same address, other interface: not this one.
        l.hold(3, id(1), &key("a/ipv4"), &[va("10.0.0.1")], None);
        assert!(l.release(2, id(1), [va("10.0.0.1").address]).is_empty());
    }

    #[test]
    fn two_holders_keep_an_address_until_both_let_go() {
        // A VirtualIP handing over (1) and its successor on the same address (7).
        let mut l = Ledger::default();
        let a = va("198.51.100.50");
        l.hold(2, id(1), &key("old/ipv4"), &[a], None);
        l.hold(2, id(7), &key("new/ipv4"), &[a], None);
        assert_eq!(
            l.get(2, a.address).unwrap().holder.as_ref().unwrap().0,
            id(7),
            "the newest binder announces"
        );
        assert!(
            l.release(2, id(1), [a.address]).is_empty(),
            "7 still holds it"
        );
        assert_eq!(l.get(2, a.address).unwrap().others, vec![]);
        assert_eq!(l.release(2, id(7), [a.address]), vec![(2, a)]);
        // The other order: the newest lets go first, the older one takes it back.
        l.hold(2, id(1), &key("old/ipv4"), &[a], None);
        l.hold(2, id(7), &key("new/ipv4"), &[a], None);
        assert!(l.release(2, id(7), [a.address]).is_empty());
        assert_eq!(
            l.get(2, a.address).unwrap().holder.as_ref().unwrap().0,
            id(1)
        );
        assert_eq!(l.release(2, id(1), [a.address]), vec![(2, a)]);
        assert!(l.renewable().is_empty());
    }

    #[test]
    fn a_forgotten_instance_leaves_nothing_behind() {
        let mut l = Ledger::default();
        let (a, b) = (va("198.51.100.50"), va("198.51.100.51"));
        l.hold(2, id(1), &key("old/ipv4"), &[a, b], None);
        l.hold(2, id(7), &key("new/ipv4"), &[b], None);
        let mut freed = l.forget_instance(id(1));
        freed.sort();
        assert_eq!(freed, vec![(2, a)], "b is still 7's");
        assert_eq!(l.renewable(), vec![(2, b)]);
        assert_eq!(l.forget_instance(id(7)), vec![(2, b)]);
        assert!(l.forget_instance(id(7)).is_empty());
    }

    #[test]
    fn inherited_addresses_are_not_renewed_and_go_with_any_instance() {
        let mut l = Ledger::default();
        let (a, b) = (va("198.51.100.50"), va("198.51.100.51"));
        l.inherit(2, a);
        l.inherit(2, b);
        assert!(
            l.renewable().is_empty(),
            "a predecessor's addresses expire unless bound"
        );
        // An instance binds one: it is its own from now on, and renewed.
        l.hold(2, id(3), &key("x/ipv4"), &[a], None);
        assert_eq!(l.renewable(), vec![(2, a)]);
        assert_eq!(l.get(2, a.address).unwrap().others, vec![]);
        // An instance that stays backup lets go of the other: deleted.
        assert_eq!(l.release(2, id(4), [b.address]), vec![(2, b)]);
        // Disown takes only what a previous run left, never what an instance holds.
        l.inherit(2, b);
        assert!(l.disown(2, [a.address]).is_empty());
        assert_eq!(l.disown(2, [a.address, b.address]), vec![(2, b)]);
        // Inherit never takes over what an instance holds.
        l.inherit(2, a);
        assert_eq!(
            l.get(2, a.address).unwrap().holder.as_ref().unwrap().0,
            id(3)
        );
        assert!(!l.drop_inherited(2, a.address));
    }

    #[test]
    fn unhold_leaves_another_instances_address() {
        let mut l = Ledger::default();
        l.hold(2, id(7), &key("b/ipv4"), &[va("10.0.0.2")], None);
        l.unhold(2, id(1), va("10.0.0.2").address);
        assert!(l.get(2, va("10.0.0.2").address).is_some());
        l.unhold(2, id(7), va("10.0.0.2").address);
        assert!(l.get(2, va("10.0.0.2").address).is_none());
    }

    #[test]
    fn set_mac_returns_only_what_is_held() {
        let mut l = Ledger::default();
        l.hold(2, id(1), &key("a/ipv4"), &[va("10.0.0.1")], None);
        let bound = l.set_mac(2, &[va("10.0.0.1"), va("10.0.0.9")], Some([2; 6]));
        assert_eq!(bound, vec![va("10.0.0.1").address]);
        assert_eq!(l.get(2, va("10.0.0.1").address).unwrap().mac, Some([2; 6]));
    }

    #[test]
    fn forget_link_and_release_all() {
        let mut l = Ledger::default();
        l.hold(2, id(1), &key("a/ipv4"), &[va("10.0.0.1")], None);
        l.hold(
            9,
            id(1),
            &key("a/ipv4"),
            &[va("10.0.0.2"), va("10.0.0.3")],
            None,
        );
        l.forget_link(9);
        assert_eq!(l.release_all(), vec![(2, va("10.0.0.1"))]);
        assert!(l.release_all().is_empty());
    }

    #[test]
    fn a_conflict_clears_once() {
        let mut l = Ledger::default();
        l.conflict(2, va("10.0.0.1").address, &key("a/ipv4"));
        assert_eq!(
            l.clear_conflict(2, va("10.0.0.1").address),
            Some(key("a/ipv4"))
        );
        assert_eq!(l.clear_conflict(2, va("10.0.0.1").address), None);
    }
}
