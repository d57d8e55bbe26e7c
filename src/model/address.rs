//! Address and subnet rules shared by the controller and the agent: which addresses may be a
//! virtual address or a unicast peer, subnet membership, and the segment key VRIDs are unique
//! in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::vrrp::{Family, VirtualAddress};

/// Whether `a` and `b` share the first `prefix` bits (false across families).
pub(crate) fn same_subnet(a: &IpAddr, b: &IpAddr, prefix: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = mask32(prefix);
            u32::from(*a) & mask == u32::from(*b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = mask128(prefix);
            u128::from(*a) & mask == u128::from(*b) & mask
        }
        _ => false,
    }
}

fn mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix.min(128)))
    }
}

/// The segment an address lives on: its network. Virtual router IDs are unique per segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Segment {
    pub family: Family,
    /// The network's bits, left-aligned in 128 (an IPv4 network in the top 32).
    network: u128,
    pub prefix_len: u8,
}

impl Segment {
    /// The network's address (`192.0.2.0` of `192.0.2.1/24`).
    pub(crate) fn network(&self) -> IpAddr {
        match self.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from((self.network >> 96) as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(self.network)),
        }
    }
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix_len)
    }
}

/// The segment `a` lives on.
pub(crate) fn segment(a: &VirtualAddress) -> Segment {
    let bits = match a.address {
        IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
        IpAddr::V6(v) => u128::from(v),
    };
    Segment {
        family: a.family(),
        network: bits & mask128(a.prefix_len),
        prefix_len: a.prefix_len,
    }
}

pub(crate) fn is_link_local(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.is_link_local(),
        IpAddr::V6(v) => is_link_local_v6(v),
    }
}

pub(crate) fn is_link_local_v6(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Why `a` can never be a host address on a shared segment: loopback, unspecified,
/// multicast, broadcast, link-local. `None`: it can.
fn unusable(a: &IpAddr) -> Option<&'static str> {
    if a.is_unspecified() {
        return Some("the unspecified address");
    }
    if a.is_loopback() {
        return Some("a loopback address");
    }
    if a.is_multicast() {
        return Some("a multicast address");
    }
    if *a == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Some("the broadcast address");
    }
    if is_link_local(a) {
        return Some("a link-local address (it is not routed, and every interface has its own)");
    }
    None
}

/// Refuses virtual addresses that cannot be one: those of [`unusable`], and the network and
/// broadcast address of their own IPv4 subnet (/30 and wider).
pub(crate) fn check_virtual_address(v: &VirtualAddress) -> Result<(), String> {
    if let Some(why) = unusable(&v.address) {
        return Err(format!("{v} is {why}: it cannot be a virtual address"));
    }
    if let IpAddr::V4(a) = v.address
        && let Some(edge) = subnet_edge(a, v.prefix_len)
    {
        return Err(format!(
            "{v} is the {edge} address of its subnet: it cannot be a virtual address"
        ));
    }
    Ok(())
}

/// Whether `a` is the network or the broadcast address of its IPv4 subnet of `prefix_len`
/// (/30 and wider; /31 and /32 have neither).
pub(crate) fn subnet_edge(a: Ipv4Addr, prefix_len: u8) -> Option<&'static str> {
    if prefix_len > 30 {
        return None;
    }
    let host = !mask32(prefix_len);
    match u32::from(a) & host {
        0 => Some("network"),
        h if h == host => Some("broadcast"),
        _ => None,
    }
}

/// Refuses unicast peers that cannot be a VRRP router's address.
pub(crate) fn check_peer(p: &IpAddr) -> Result<(), String> {
    match unusable(p) {
        Some(why) => Err(format!("{p} is {why}: it cannot be a unicast peer")),
        None => Ok(()),
    }
}

/// An `addresses` entry, `ip/prefix` or keepalived's `ip/prefix dev IFACE`: the address text
/// and the interface it names, if any (the name checked as Linux checks one).
pub(crate) fn split_interface(entry: &str) -> Result<(&str, Option<&str>), String> {
    let Some((address, name)) = entry.split_once(" dev ") else {
        return Ok((entry.trim(), None));
    };
    let name = name.trim();
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.chars().any(char::is_whitespace)
    {
        return Err(format!(
            "{entry:?}: {name:?} is not an interface name (1 to 15 characters, no '/', ':' or spaces)"
        ));
    }
    Ok((address.trim(), Some(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip(s: &str) -> VirtualAddress {
        s.parse().unwrap()
    }

    #[test]
    fn ordinary_addresses_are_accepted() {
        for s in [
            "198.51.100.50/24",
            "198.51.100.0/32",
            "198.51.100.255/32",
            "198.51.100.1/31",
            "2001:db8:1::50/64",
        ] {
            assert_eq!(check_virtual_address(&vip(s)), Ok(()), "{s}");
        }
    }

    #[test]
    fn unusable_virtual_addresses_are_refused_with_the_reason() {
        for (s, why) in [
            ("127.0.0.5/8", "loopback"),
            ("::1/128", "loopback"),
            ("255.255.255.255/32", "the broadcast address"),
            ("198.51.100.255/24", "broadcast address of its subnet"),
            ("198.51.100.0/24", "network address of its subnet"),
            ("169.254.1.1/16", "link-local"),
            ("fe80::50/64", "link-local"),
        ] {
            let e = check_virtual_address(&vip(s)).unwrap_err();
            assert!(e.contains(why), "{s}: {e}");
        }
        // Unspecified and multicast ones do not even parse as virtual addresses.
        for s in ["0.0.0.0/0", "::/0", "224.0.0.18/32", "ff02::12/128"] {
            assert!(s.parse::<VirtualAddress>().is_err(), "{s}");
        }
    }

    #[test]
    fn unusable_peers_are_refused() {
        for s in [
            "224.0.0.18",
            "255.255.255.255",
            "127.0.0.1",
            "::1",
            "ff02::1",
            "0.0.0.0",
        ] {
            assert!(check_peer(&s.parse().unwrap()).is_err(), "{s}");
        }
        assert!(check_peer(&"198.51.100.12".parse().unwrap()).is_ok());
    }

    #[test]
    fn subnets_and_segments() {
        let a: IpAddr = "198.51.100.11".parse().unwrap();
        assert!(same_subnet(&a, &"198.51.100.50".parse().unwrap(), 24));
        assert!(!same_subnet(&a, &"198.51.101.50".parse().unwrap(), 24));
        assert!(!same_subnet(&a, &"2001:db8::1".parse().unwrap(), 0));
        assert_eq!(
            segment(&vip("198.51.100.50/24")),
            segment(&vip("198.51.100.60/24"))
        );
        assert_ne!(
            segment(&vip("198.51.100.50/24")),
            segment(&vip("198.51.100.50/25"))
        );
    }
}
