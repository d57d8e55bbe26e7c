//! A `VirtualIPPool` on its own, pure: its address ranges ("198.51.100.64/26",
//! "198.51.100.200-198.51.100.220" or one address, parsed into inclusive ranges of integers,
//! IPv4 in the low bits), the VirtualIP settings every router of it shares, and whether it is
//! valid (`kube-vrrp check` and the controller use the same rules).

use std::net::IpAddr;
use std::sync::Arc;

use kube::ResourceExt;

use crate::api::{VirtualIPPool, VirtualIpSpec};
use crate::ids::Family;

/// Addresses of one family: `start..=end` as integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub family: Family,
    pub start: u128,
    pub end: u128,
}

impl Range {
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let (f, n) = (Family::of(&ip), to_int(ip));
        self.family == f && self.start <= n && n <= self.end
    }

    /// Whether the two have an address in common.
    pub(crate) fn overlaps(&self, other: &Range) -> bool {
        other.family == self.family && other.start <= self.end && self.start <= other.end
    }

    /// How many addresses (saturating: `::/0` counts `u128::MAX`).
    pub(crate) fn size(&self) -> u128 {
        (self.end - self.start).saturating_add(1)
    }
}

pub(crate) fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

pub(crate) fn from_int(family: Family, n: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4((n as u32).into()),
        Family::V6 => IpAddr::V6(n.into()),
    }
}

/// The address as a host route: `/32` or `/128`.
pub(crate) fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    }
}

/// "198.51.100.64/26", "198.51.100.200-198.51.100.220" or one address.
pub(crate) fn parse_range(text: &str) -> Result<Range, String> {
    let t = text.trim();
    if let Some((a, b)) = t.split_once('-') {
        let a: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: {a:?} is not an IP address"))?;
        let b: IpAddr = b
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: {b:?} is not an IP address"))?;
        if a.is_ipv4() != b.is_ipv4() {
            return Err(format!("{text:?} mixes IPv4 and IPv6"));
        }
        let (s, e) = (to_int(a), to_int(b));
        if s > e {
            return Err(format!("{text:?} ends before it starts"));
        }
        return Ok(Range {
            family: Family::of(&a),
            start: s,
            end: e,
        });
    }
    let (addr, len) = match t.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (t, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{text:?} is not a CIDR, a range or an address"))?;
    let bits = if ip.is_ipv4() { 32u32 } else { 128 };
    let len: u32 = match len {
        Some(l) => l
            .parse()
            .ok()
            .filter(|l| *l <= bits)
            .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {bits}"))?,
        None => bits,
    };
    let host_bits = bits - len;
    let mask: u128 = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let start = to_int(ip) & !mask;
    if start != to_int(ip) {
        return Err(format!(
            "{text:?} has host bits set: write {}/{len}",
            from_int(Family::of(&ip), start)
        ));
    }
    Ok(Range {
        family: Family::of(&ip),
        start,
        end: start | mask,
    })
}

/// A pool's address ranges, or what is wrong with it: its addresses, or its VRRP settings
/// as every router of it would use them (the same rules as a VirtualIP's).
pub(crate) fn parse_pool(p: &VirtualIPPool) -> Result<Vec<Range>, String> {
    let ranges = p
        .spec
        .addresses
        .iter()
        .map(|a| parse_range(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("spec.addresses: {e}"))?;
    for f in [Family::V4, Family::V6] {
        let Some(r) = ranges.iter().find(|r| r.family == f) else {
            continue;
        };
        let probe = router_spec(p, &[from_int(f, r.end)]);
        super::spec::validate(p.name_any(), probe, super::spec::VridRule::Allocated)
            .map_err(|(field, e)| format!("{}: {e}", field.replacen("spec.", "spec.vrrp.", 1)))?;
    }
    Ok(ranges)
}

/// Checks one pool on its own (`kube-vrrp check --cluster`): a summary, or the problem.
pub(crate) fn check_pool(p: &VirtualIPPool) -> Result<String, String> {
    let ranges = parse_pool(p)?;
    let count = |f: Family| {
        ranges
            .iter()
            .filter(|r| r.family == f)
            .map(Range::size)
            .fold(0u128, u128::saturating_add)
    };
    Ok(format!(
        "{} IPv4 and {} IPv6 address(es)",
        count(Family::V4),
        count(Family::V6)
    ))
}

/// The VirtualIP settings of a pool's router holding `addrs` (sorted, at least one): the
/// first address advertised, the others host routes in `excludedAddresses`.
pub(crate) fn router_spec(pool: &VirtualIPPool, addrs: &[IpAddr]) -> VirtualIpSpec {
    let v = &pool.spec.vrrp;
    VirtualIpSpec {
        addresses: vec![host(addrs[0])],
        excluded_addresses: Arc::new(addrs[1..].iter().map(|a| host(*a)).collect()),
        interface: v.interface.clone(),
        virtual_router_id: None,
        version: v.version,
        advert_interval: v.advert_interval.clone(),
        max_learned_interval: None,
        preempt: v.preempt,
        preempt_delay: v.preempt_delay.clone(),
        node_selector: v.node_selector.clone(),
        priorities: v.priorities.clone(),
        default_priority: 100,
        unicast: v.unicast,
        unicast_peers: Vec::new(),
        virtual_mac: v.virtual_mac,
        accept_mode: false,
        garp: v.garp.clone(),
        authentication: None,
        health_checks: v.health_checks.clone(),
        track_interfaces: v.track_interfaces.clone(),
        notify: None,
        leave_cordoned_nodes: v.leave_cordoned_nodes,
        active_nodes: None,
        virtual_servers: Vec::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::VirtualIPPoolSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    /// A pool of these addresses, created `age` seconds after the epoch.
    pub(crate) fn pool(name: &str, addresses: &[&str], age: i64) -> Arc<VirtualIPPool> {
        let mut p = VirtualIPPool::new(
            name,
            VirtualIPPoolSpec {
                addresses: addresses.iter().map(|a| a.to_string()).collect(),
                auto_assign: true,
                service_allocation: None,
                spread: None,
                vrrp: Default::default(),
            },
        );
        p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(age).unwrap()));
        Arc::new(p)
    }

    pub(crate) fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn pools_ranges_parse_and_refuse_with_the_reason() {
        assert_eq!(
            parse_range("198.51.100.64/30").unwrap().end
                - parse_range("198.51.100.64/30").unwrap().start,
            3
        );
        assert!(
            parse_range("198.51.100.65/30")
                .unwrap_err()
                .contains("host bits")
        );
        assert!(
            parse_range("198.51.100.9-198.51.100.1")
                .unwrap_err()
                .contains("ends before")
        );
        assert!(
            parse_range("198.51.100.1-2001:db8::1")
                .unwrap_err()
                .contains("mixes")
        );
    }

    #[test]
    fn a_single_address_a_whole_family_and_bad_prefixes() {
        let one = parse_range(" 198.51.100.7 ").unwrap();
        assert_eq!(
            (one.start, one.end),
            (to_int(ip("198.51.100.7")), one.start)
        );
        assert_eq!(one.size(), 1);
        let v6 = parse_range("2001:db8::5").unwrap();
        assert_eq!(v6.family, Family::V6);
        assert_eq!(v6.size(), 1);
        // /0: every address of the family; the count saturates for IPv6.
        let all4 = parse_range("0.0.0.0/0").unwrap();
        assert_eq!((all4.start, all4.end), (0, u128::from(u32::MAX)));
        let all6 = parse_range("::/0").unwrap();
        assert_eq!((all6.start, all6.end), (0, u128::MAX));
        assert_eq!(all6.size(), u128::MAX);
        assert!(
            parse_range("198.51.100.0/33")
                .unwrap_err()
                .contains("0 to 32")
        );
        assert!(
            parse_range("2001:db8::/129")
                .unwrap_err()
                .contains("0 to 128")
        );
        assert!(
            parse_range("198.51.100.0/x")
                .unwrap_err()
                .contains("0 to 32")
        );
        assert!(
            parse_range("pool")
                .unwrap_err()
                .contains("not a CIDR, a range or an address")
        );
        assert!(
            parse_range("198.51.100.1-x")
                .unwrap_err()
                .contains("is not an IP address")
        );
        // A range of one address, spaces allowed around the dash.
        let r = parse_range("198.51.100.9 - 198.51.100.9").unwrap();
        assert_eq!(r.size(), 1);
    }

    #[test]
    fn ranges_contain_and_overlap_only_within_their_family() {
        let a = parse_range("198.51.100.0/30").unwrap();
        let b = parse_range("198.51.100.3-198.51.100.9").unwrap();
        let c = parse_range("198.51.100.4/30").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(a.contains(ip("198.51.100.3")));
        assert!(!a.contains(ip("198.51.100.4")));
        // ::c633:6400 is 198.51.100.0 as an integer, but of the other family.
        let v6 = parse_range("::c633:6400/126").unwrap();
        assert_eq!((v6.start, v6.end), (a.start, a.end));
        assert!(!a.overlaps(&v6));
        assert!(!v6.contains(ip("198.51.100.1")));
        assert_eq!(host(ip("198.51.100.1")), "198.51.100.1/32");
        assert_eq!(host(ip("2001:db8::1")), "2001:db8::1/128");
    }

    #[test]
    fn a_router_advertises_its_first_address_and_excludes_the_rest() {
        let p = pool("p", &["198.51.100.0/30"], 1);
        let spec = router_spec(&p, &[ip("198.51.100.1"), ip("198.51.100.2")]);
        assert_eq!(spec.addresses, ["198.51.100.1/32"]);
        assert_eq!(*spec.excluded_addresses, ["198.51.100.2/32"]);
        assert_eq!(spec.default_priority, 100);
        assert!(spec.virtual_router_id.is_none() && spec.active_nodes.is_none());
    }
}
