//! What a node has, as the model sees it: its interfaces and their addresses. Plain data: the
//! kernel shell (`net::netlink`) fills it in, the model and tests build it by hand.

use std::net::IpAddr;
use std::time::Duration;

/// The `IFA_PROTO` value that marks addresses kube-vrrp added ("k").
pub const ADDRESS_PROTO: u8 = 0x6b;

/// How long an address we bind lives unless renewed, at least. The last resort only: when
/// the agent dies, its warden (`agent::warden`) removes its addresses at once; the lifetime
/// bounds what stays when the warden dies too (the whole container killed), as keepalived
/// has no bound at all. 90 s for up to [`RENEWALS_PER_SECOND`] × 30 addresses, longer beyond.
pub const ADDRESS_LIFETIME: Duration = Duration::from_secs(90);
/// How long an address a previous run left lives once a new agent starts, unless one of its
/// instances binds it: time for the election to decide (a restarted master answers
/// meanwhile), not a full lifetime.
pub(crate) const INHERITED_LIFETIME: Duration = Duration::from_secs(4);
/// How often a live agent renews the lifetime of what it holds, at most (two renewals may
/// be missed).
pub const RENEW_EVERY: Duration = Duration::from_secs(30);
/// Renewals a second the agent allows itself, on average. Renewing an IPv6 address costs
/// the kernel its multicast and lifetime bookkeeping: 1,000 addresses renewed every second
/// took 13% of a core (`resource-bench`), against 0.2% before lifetimes; 100 a second made
/// the agent cost 6 times keepalived.
pub(crate) const RENEWALS_PER_SECOND: usize = 4;

/// How often `n` held addresses are renewed, and the lifetime each gets: every
/// [`RENEW_EVERY`] with [`ADDRESS_LIFETIME`] up to 30 s × [`RENEWALS_PER_SECOND`]
/// addresses; beyond, as rarely as that budget asks, with lifetimes three periods long.
pub(crate) fn renewal(n: usize) -> (Duration, Duration) {
    let every = Duration::from_secs(n.div_ceil(RENEWALS_PER_SECOND) as u64).max(RENEW_EVERY);
    (every, (every * 3).max(ADDRESS_LIFETIME))
}

/// An interface as the agent needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    /// Administratively up with carrier (IFF_UP and IFF_LOWER_UP).
    pub up: bool,
    /// The parent of a macvlan / vlan.
    pub parent: Option<u32>,
}

/// An address configured on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub address: IpAddr,
    pub prefix_len: u8,
    pub proto: Option<u8>,
}

impl Address {
    pub fn is_ours(&self) -> bool {
        self.proto == Some(ADDRESS_PROTO)
    }
}

#[cfg(test)]
impl Link {
    /// An Ethernet link that is up, MTU 1500, no parent (a test's node).
    pub(crate) fn ethernet(index: u32, name: &str, mac: [u8; 6]) -> Link {
        Link {
            index,
            name: name.into(),
            mac: Some(mac),
            mtu: 1500,
            up: true,
            parent: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_keep_within_their_budget() {
        assert_eq!(renewal(0), (RENEW_EVERY, ADDRESS_LIFETIME));
        assert_eq!(renewal(120), (RENEW_EVERY, ADDRESS_LIFETIME));
        let s = Duration::from_secs;
        assert_eq!(renewal(121), (s(31), s(93)));
        assert_eq!(renewal(1000), (s(250), s(750)));
        for n in [1, 99, 100, 101, 250, 1000, 4096, 20000] {
            let (every, life) = renewal(n);
            assert!(
                n as f64 / every.as_secs_f64() <= RENEWALS_PER_SECOND as f64,
                "{n}"
            );
            assert!(life >= every * 3, "{n}: two renewals may be missed");
        }
    }

    #[test]
    fn only_addresses_with_our_mark_are_ours() {
        let mut a = Address {
            index: 2,
            address: "192.0.2.10".parse().unwrap(),
            prefix_len: 24,
            proto: Some(ADDRESS_PROTO),
        };
        assert!(a.is_ours());
        a.proto = None;
        assert!(!a.is_ours());
        a.proto = Some(2); // kernel-assigned (IFAPROT_KERNEL_LO)
        assert!(!a.is_ours());
    }
}
