//! Excluded addresses: the virtual addresses after the advertised ones, never in an
//! advertisement, so they change in place (no restart, no election). This room owns the two
//! questions every part of the agent asks about them: is a change only in the excluded
//! addresses, and what was added and removed.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::vrrp::{InstanceConfig, VirtualAddress};

/// Anything that names one address (a [`VirtualAddress`], or a bare [`IpAddr`] where the
/// prefix is kept elsewhere).
pub(crate) trait Addressed: Copy {
    fn address(&self) -> IpAddr;
}

impl Addressed for VirtualAddress {
    fn address(&self) -> IpAddr {
        self.address
    }
}

impl Addressed for IpAddr {
    fn address(&self) -> IpAddr {
        *self
    }
}

/// What goes from one address list to another, compared by address only (a new prefix length
/// alone is no change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AddressChange<Old> {
    /// In the new list and not in the old one, in the new list's order.
    pub added: Vec<VirtualAddress>,
    /// In the old list and not in the new one, in the old list's order.
    pub removed: Vec<Old>,
}

/// The addresses to bind and to release to go from `old` to `new`.
pub(crate) fn change<Old: Addressed>(
    old: impl IntoIterator<Item = Old>,
    new: &[VirtualAddress],
) -> AddressChange<Old> {
    let old: Vec<Old> = old.into_iter().collect();
    let before: HashSet<IpAddr> = old.iter().map(Addressed::address).collect();
    let after: HashSet<IpAddr> = new.iter().map(|a| a.address).collect();
    AddressChange {
        added: new
            .iter()
            .filter(|a| !before.contains(&a.address))
            .copied()
            .collect(),
        removed: old
            .into_iter()
            .filter(|a| !after.contains(&a.address()))
            .collect(),
    }
}

/// Whether `a` and `b` advertise the same addresses (same count, same list), so that only
/// their excluded addresses may differ.
pub(crate) fn same_advertised(a: &InstanceConfig, b: &InstanceConfig) -> bool {
    let n = a.advertised;
    b.advertised == n
        && a.addresses.len() >= n
        && b.addresses.len() >= n
        && a.addresses[..n] == b.addresses[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn va(s: &str) -> VirtualAddress {
        s.parse().unwrap()
    }

    fn config(addresses: &[&str], advertised: usize) -> InstanceConfig {
        let mut c = InstanceConfig::new(
            1,
            "198.51.100.11".parse().unwrap(),
            addresses.iter().map(|a| va(a)).collect(),
        );
        c.advertised = advertised;
        c
    }

    #[test]
    fn change_lists_added_and_removed_in_their_lists_order() {
        let old = [va("10.0.0.1/32"), va("10.0.0.2/32"), va("10.0.0.3/32")];
        let new = [va("10.0.0.4/32"), va("10.0.0.2/32"), va("10.0.0.5/32")];
        let c = change(old, &new);
        assert_eq!(c.added, vec![va("10.0.0.4/32"), va("10.0.0.5/32")]);
        assert_eq!(c.removed, vec![va("10.0.0.1/32"), va("10.0.0.3/32")]);
    }

    #[test]
    fn a_new_prefix_length_alone_is_no_change() {
        let c = change([va("10.0.0.1/32")], &[va("10.0.0.1/24")]);
        assert!(c.added.is_empty() && c.removed.is_empty());
    }

    #[test]
    fn change_from_bare_addresses_keeps_them_bare() {
        let held: Vec<IpAddr> = vec![
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        ];
        let c = change(held, &[va("2001:db8::2/128"), va("2001:db8::3/128")]);
        assert_eq!(c.added, vec![va("2001:db8::3/128")]);
        assert_eq!(c.removed, vec!["2001:db8::1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn same_advertised_ignores_excluded_addresses_only() {
        let a = config(&["10.0.0.1/32", "10.0.0.9/32"], 1);
        let b = config(&["10.0.0.1/32", "10.0.0.8/32", "10.0.0.7/32"], 1);
        assert!(same_advertised(&a, &b));
        // One more advertised address changes every advertisement.
        assert!(!same_advertised(
            &a,
            &config(&["10.0.0.1/32", "10.0.0.9/32"], 2)
        ));
        assert!(!same_advertised(
            &a,
            &config(&["10.0.0.2/32", "10.0.0.9/32"], 1)
        ));
        // A list shorter than its advertised count is never "the same".
        assert!(!same_advertised(&config(&["10.0.0.1/32"], 2), &a));
    }
}
