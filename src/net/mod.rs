//! The thin I/O shell around the protocol core: raw VRRP sockets, rtnetlink addresses and
//! links, gratuitous ARP / unsolicited NA. No protocol decisions are made here.

pub mod announce;
pub mod netlink;
pub mod nft;
pub mod socket;
pub mod sysctl;

/// The RFC 5798 §7.3 virtual MAC of a virtual router: 00-00-5E-00-01-{VRID} for IPv4,
/// 00-00-5E-00-02-{VRID} for IPv6.
pub fn virtual_mac(family: crate::vrrp::Family, vrid: u8) -> [u8; 6] {
    let kind = match family {
        crate::vrrp::Family::V4 => 1,
        crate::vrrp::Family::V6 => 2,
    };
    [0x00, 0x00, 0x5e, 0x00, kind, vrid]
}
