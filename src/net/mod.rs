//! The thin I/O shell around the protocol core: raw VRRP sockets, rtnetlink addresses and
//! links, gratuitous ARP / unsolicited NA. No protocol decisions are made here.

pub(crate) mod announce;
pub mod netlink;
pub mod nft;
pub(crate) mod socket;
pub(crate) mod sysctl;

/// A program the agent runs beside itself (nft, conntrackd): on PATH, or where distributions
/// and our image put it.
pub fn program(name: &str) -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(std::path::PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The RFC 5798 §7.3 virtual MAC of a virtual router: 00-00-5E-00-01-{VRID} for IPv4,
/// 00-00-5E-00-02-{VRID} for IPv6.
pub fn virtual_mac(family: crate::vrrp::Family, vrid: u8) -> [u8; 6] {
    let kind = match family {
        crate::vrrp::Family::V4 => 1,
        crate::vrrp::Family::V6 => 2,
    };
    [0x00, 0x00, 0x5e, 0x00, kind, vrid]
}
