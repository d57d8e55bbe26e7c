//! Gratuitous ARP (IPv4) and unsolicited Neighbor Advertisements (IPv6) that tell the segment
//! a virtual address now lives behind this MAC. Frames are built here byte for byte (the same
//! bytes keepalived 2.2.7 sends: an ARP request with sender = target = VIP, and an NA from the
//! VIP to all-nodes with the Override flag) and sent through an AF_PACKET socket.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub(crate) type Mac = [u8; 6];

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const BROADCAST: Mac = [0xff; 6];
/// 33:33 + low 32 bits of ff02::1.
const ALL_NODES_MAC: Mac = [0x33, 0x33, 0, 0, 0, 1];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The frame announcing `address` at `mac`.
pub(crate) fn announcement(address: IpAddr, mac: Mac) -> Vec<u8> {
    match address {
        IpAddr::V4(a) => gratuitous_arp(a, mac),
        IpAddr::V6(a) => unsolicited_na(a, mac),
    }
}

/// RFC 5227 style gratuitous ARP request: sender and target protocol address are the VIP.
pub(crate) fn gratuitous_arp(address: Ipv4Addr, mac: Mac) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&BROADCAST);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&address.octets());
    f.extend_from_slice(&BROADCAST);
    f.extend_from_slice(&address.octets());
    f
}

/// RFC 4861 §7.2.6 unsolicited Neighbor Advertisement to all-nodes, Override set, with the
/// target link-layer address option.
pub(crate) fn unsolicited_na(address: Ipv6Addr, mac: Mac) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[136, 0, 0, 0]); // type NA, code 0, checksum
    icmp.extend_from_slice(&[0x20, 0, 0, 0]); // Override
    icmp.extend_from_slice(&address.octets());
    icmp.extend_from_slice(&[2, 1]); // target link-layer address, 8 octets
    icmp.extend_from_slice(&mac);
    let sum = icmpv6_checksum(&address, &ALL_NODES, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    f.extend_from_slice(&ALL_NODES_MAC);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]); // ICMPv6, hop limit 255 (RFC 4861 requires it)
    f.extend_from_slice(&address.octets());
    f.extend_from_slice(&ALL_NODES.octets());
    f.extend_from_slice(&icmp);
    f
}

fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            let hi = u32::from(c[0]) << 8;
            let lo = c.get(1).map(|x| u32::from(*x)).unwrap_or(0);
            sum += hi | lo;
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(msg);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An AF_PACKET socket sending whole Ethernet frames out of one interface.
pub(crate) struct FrameSender {
    fd: OwnedFd,
    ifindex: u32,
}

impl FrameSender {
    pub(crate) fn open(ifindex: u32) -> io::Result<FrameSender> {
        // Protocol 0: this socket only sends, it never receives.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(FrameSender {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            ifindex,
        })
    }

    pub(crate) fn send(&self, frame: &[u8]) -> io::Result<()> {
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_protocol = u16::from_be_bytes([frame[12], frame[13]]).to_be();
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEPALIVED_MAC: Mac = [0xfa, 0xec, 0x01, 0xbb, 0x9d, 0xfb];

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn gratuitous_arp_matches_keepalived_frame_2() {
        let expected = hex(
            "ff ff ff ff ff ff fa ec 01 bb 9d fb 08 06 00 01 08 00 06 04 00 01 fa ec 01 bb 9d fb \
             c6 33 64 3c ff ff ff ff ff ff c6 33 64 3c",
        );
        assert_eq!(
            gratuitous_arp("198.51.100.60".parse().unwrap(), KEEPALIVED_MAC),
            expected
        );
    }

    #[test]
    fn unsolicited_na_matches_keepalived_frame_22() {
        let expected = hex(
            "33 33 00 00 00 01 fa ec 01 bb 9d fb 86 dd 60 00 00 00 00 20 3a ff 20 01 0d b8 00 01 \
             00 00 00 00 00 00 00 00 00 60 ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 01 88 00 \
             5f c8 20 00 00 00 20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 60 02 01 fa ec 01 bb \
             9d fb",
        );
        assert_eq!(
            unsolicited_na("2001:db8:1::60".parse().unwrap(), KEEPALIVED_MAC),
            expected
        );
    }
}
