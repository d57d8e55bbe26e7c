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
use crate::net::announce::Mac;
use crate::net::netlink::NetlinkError;
use crate::vrrp::VirtualAddress;

/// Netlink requests in flight per batch.
const PARALLEL: usize = 64;

/// Who holds an address of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    pub id: u64,
    pub key: String,
    pub prefix_len: u8,
    /// The MAC it is announced with while its instance is master.
    pub mac: Option<Mac>,
}

/// What this agent bound: (interface, address) → holder.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    held: HashMap<(u32, IpAddr), Held>,
    /// Addresses that were there and not ours, blocking an instance: (ifindex, address) → key.
    conflicts: HashMap<(u32, IpAddr), String>,
}

pub(crate) type SharedLedger = Arc<Mutex<Ledger>>;

impl Ledger {
    /// Records `addresses` on `link` as instance `id`'s. Done before the request, so our own
    /// address event finds them ours.
    pub fn hold(
        &mut self,
        link: u32,
        id: u64,
        key: &str,
        addresses: &[VirtualAddress],
        mac: Option<Mac>,
    ) {
        for a in addresses {
            self.held.insert(
                (link, a.address),
                Held {
                    id,
                    key: key.to_string(),
                    prefix_len: a.prefix_len,
                    mac,
                },
            );
        }
    }

    pub fn get(&self, link: u32, address: IpAddr) -> Option<&Held> {
        self.held.get(&(link, address))
    }

    /// Drops `address` on `link` if instance `id` holds it (a bind that failed).
    pub fn unhold(&mut self, link: u32, id: u64, address: IpAddr) {
        if self.get(link, address).is_some_and(|h| h.id == id) {
            self.held.remove(&(link, address));
        }
    }

    /// Takes out of the ledger those of `addresses` that instance `id` holds on `link`, and
    /// returns them: only those may be deleted. Out of the ledger first, so our own delete
    /// event is not a loss.
    pub fn release(
        &mut self,
        link: u32,
        id: u64,
        addresses: impl IntoIterator<Item = IpAddr>,
    ) -> Vec<(u32, VirtualAddress)> {
        addresses
            .into_iter()
            .filter_map(|address| {
                let h = self.held.get(&(link, address)).filter(|h| h.id == id)?;
                let prefix_len = h.prefix_len;
                self.held.remove(&(link, address));
                Some((
                    link,
                    VirtualAddress {
                        address,
                        prefix_len,
                    },
                ))
            })
            .collect()
    }

    /// Forgets everything on `link` (a standby link being removed with its addresses).
    pub fn forget_link(&mut self, link: u32) {
        self.held.retain(|(l, _), _| *l != link);
    }

    /// Takes everything out (the agent stops).
    pub fn release_all(&mut self) -> Vec<(u32, VirtualAddress)> {
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
    pub fn set_mac(
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
    pub fn conflict(&mut self, link: u32, address: IpAddr, key: &str) {
        self.conflicts.insert((link, address), key.to_string());
    }

    /// The instance a conflict on `address` blocked, if any; the conflict is gone.
    pub fn clear_conflict(&mut self, link: u32, address: IpAddr) -> Option<String> {
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

    fn va(s: &str) -> VirtualAddress {
        VirtualAddress {
            address: s.parse().unwrap(),
            prefix_len: 24,
        }
    }

    #[test]
    fn release_takes_only_what_the_instance_holds() {
        let mut l = Ledger::default();
        l.hold(2, 1, "a/ipv4", &[va("10.0.0.1")], None);
        l.hold(2, 7, "b/ipv4", &[va("10.0.0.2")], None);
        let out = l.release(
            2,
            1,
            ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map(|s| s.parse().unwrap()),
        );
        assert_eq!(out, vec![(2, va("10.0.0.1"))]);
        assert!(l.get(2, va("10.0.0.1").address).is_none());
        assert_eq!(l.get(2, va("10.0.0.2").address).unwrap().id, 7);
        // Same address, other interface: not this one.
        l.hold(3, 1, "a/ipv4", &[va("10.0.0.1")], None);
        assert!(l.release(2, 1, [va("10.0.0.1").address]).is_empty());
    }

    #[test]
    fn unhold_leaves_another_instances_address() {
        let mut l = Ledger::default();
        l.hold(2, 7, "b/ipv4", &[va("10.0.0.2")], None);
        l.unhold(2, 1, va("10.0.0.2").address);
        assert!(l.get(2, va("10.0.0.2").address).is_some());
        l.unhold(2, 7, va("10.0.0.2").address);
        assert!(l.get(2, va("10.0.0.2").address).is_none());
    }

    #[test]
    fn set_mac_returns_only_what_is_held() {
        let mut l = Ledger::default();
        l.hold(2, 1, "a/ipv4", &[va("10.0.0.1")], None);
        let bound = l.set_mac(2, &[va("10.0.0.1"), va("10.0.0.9")], Some([2; 6]));
        assert_eq!(bound, vec![va("10.0.0.1").address]);
        assert_eq!(l.get(2, va("10.0.0.1").address).unwrap().mac, Some([2; 6]));
    }

    #[test]
    fn forget_link_and_release_all() {
        let mut l = Ledger::default();
        l.hold(2, 1, "a/ipv4", &[va("10.0.0.1")], None);
        l.hold(9, 1, "a/ipv4", &[va("10.0.0.2"), va("10.0.0.3")], None);
        l.forget_link(9);
        assert_eq!(l.release_all(), vec![(2, va("10.0.0.1"))]);
        assert!(l.release_all().is_empty());
    }

    #[test]
    fn a_conflict_clears_once() {
        let mut l = Ledger::default();
        l.conflict(2, va("10.0.0.1").address, "a/ipv4");
        assert_eq!(
            l.clear_conflict(2, va("10.0.0.1").address).as_deref(),
            Some("a/ipv4")
        );
        assert_eq!(l.clear_conflict(2, va("10.0.0.1").address), None);
    }
}
