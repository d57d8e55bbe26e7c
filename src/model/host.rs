//! What a node has, as the model sees it: its interfaces and their addresses. Plain data: the
//! kernel shell (`net::netlink`) fills it in, the model and tests build it by hand.

use std::net::IpAddr;
use std::time::Duration;

/// The `IFA_PROTO` value that marks addresses kube-vrrp added ("k").
pub const ADDRESS_PROTO: u8 = 0x6b;

/// How long an address we bind lives unless renewed: a dead agent's addresses are gone this
/// long after its last renewal (the kernel removes them: 4.2 s after a SIGKILL in
/// `cargo test --test lab_hold a_dead_agents_vip_expires_by_itself -- --nocapture`).
pub const ADDRESS_LIFETIME: Duration = Duration::from_secs(4);
/// How often a live agent renews the lifetime of what it holds (three renewals may be missed).
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// Renewals a second the agent allows itself. Renewing an IPv6 address costs the kernel its
/// multicast and lifetime bookkeeping: 1,000 addresses renewed every second took 13% of a core
/// (`resource-bench`), against 0.2% before lifetimes.
pub const RENEWALS_PER_SECOND: usize = 100;

/// How often `n` held addresses are renewed, and the lifetime each gets: every
/// [`RENEW_EVERY`] and [`ADDRESS_LIFETIME`] up to [`RENEWALS_PER_SECOND`] addresses; beyond,
/// as rarely as that budget asks, with lifetimes long enough that two renewals may be missed.
pub fn renewal(n: usize) -> (Duration, Duration) {
    let every = n.div_ceil(RENEWALS_PER_SECOND).max(1) as u64;
    let every = Duration::from_secs(every) * RENEW_EVERY.as_secs() as u32;
    (
        every,
        (every * 2 + Duration::from_secs(2)).max(ADDRESS_LIFETIME),
    )
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
mod tests {
    use super::*;

    #[test]
    fn renewals_keep_within_their_budget() {
        assert_eq!(renewal(0), (RENEW_EVERY, ADDRESS_LIFETIME));
        assert_eq!(renewal(100), (RENEW_EVERY, ADDRESS_LIFETIME));
        let s = Duration::from_secs;
        assert_eq!(renewal(101), (s(2), s(6)));
        assert_eq!(renewal(1000), (s(10), s(22)));
        for n in [1, 99, 100, 101, 250, 1000, 4096, 20000] {
            let (every, life) = renewal(n);
            assert!(
                n as f64 / every.as_secs_f64() <= RENEWALS_PER_SECOND as f64,
                "{n}"
            );
            assert!(life >= every * 2 + s(2), "{n}: two renewals may be missed");
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
