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
