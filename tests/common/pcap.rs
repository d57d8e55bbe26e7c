//! Just enough pcap to read the keepalived capture and to hand our packets to tshark:
//! classic pcap, Ethernet link type, IPv4 / IPv6 carrying IP protocol 112.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One VRRP packet found in a capture, with the IP fields the protocol uses.
#[derive(Debug, Clone)]
pub struct VrrpFrame {
    /// 1-based, as tshark and Wireshark number frames.
    pub number: usize,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub payload: Vec<u8>,
}

/// Reads every VRRP frame of a classic little-endian Ethernet pcap.
pub fn read_vrrp_frames(bytes: &[u8]) -> Vec<VrrpFrame> {
    assert!(bytes.len() >= 24, "pcap too short");
    assert_eq!(
        &bytes[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian microsecond pcap expected"
    );
    let link = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!(link, 1, "Ethernet link type expected");
    let mut frames = Vec::new();
    let mut off = 24;
    let mut number = 0;
    while off + 16 <= bytes.len() {
        number += 1;
        let caplen = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
        let frame = &bytes[off + 16..off + 16 + caplen];
        off += 16 + caplen;
        if let Some(f) = parse_ethernet(number, frame) {
            frames.push(f);
        }
    }
    frames
}

fn parse_ethernet(number: usize, frame: &[u8]) -> Option<VrrpFrame> {
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let ip = &frame[14..];
    match ethertype {
        0x0800 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            (ip[9] == 112).then(|| VrrpFrame {
                number,
                ttl: ip[8],
                src: IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15])),
                dst: IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19])),
                payload: ip[ihl..total].to_vec(),
            })
        }
        0x86dd => {
            let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            (ip[6] == 112).then(|| VrrpFrame {
                number,
                ttl: ip[7],
                src: IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap())),
                dst: IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap())),
                payload: ip[40..40 + len].to_vec(),
            })
        }
        _ => None,
    }
}

/// Writes VRRP messages as Ethernet frames (TTL 255) into a classic pcap.
pub fn write_vrrp_pcap(packets: &[(IpAddr, IpAddr, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, (src, dst, payload)) in packets.iter().enumerate() {
        let mut frame = Vec::new();
        let (dst_mac, ethertype): ([u8; 6], u16) = match dst {
            IpAddr::V4(_) => ([0x01, 0x00, 0x5e, 0, 0, 0x12], 0x0800),
            IpAddr::V6(_) => ([0x33, 0x33, 0, 0, 0, 0x12], 0x86dd),
        };
        frame.extend_from_slice(&dst_mac);
        frame.extend_from_slice(&[0x00, 0x00, 0x5e, 0x00, 0x01, 0x33]);
        frame.extend_from_slice(&ethertype.to_be_bytes());
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut h = vec![0x45, 0xc0];
                h.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
                h.extend_from_slice(&[0, 0, 0, 0, 255, 112, 0, 0]);
                h.extend_from_slice(&s.octets());
                h.extend_from_slice(&d.octets());
                let sum = ipv4_header_checksum(&h);
                h[10..12].copy_from_slice(&sum.to_be_bytes());
                frame.extend_from_slice(&h);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                frame.extend_from_slice(&[0x60, 0, 0, 0]);
                frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
                frame.extend_from_slice(&[112, 255]);
                frame.extend_from_slice(&s.octets());
                frame.extend_from_slice(&d.octets());
            }
            _ => panic!("mixed families"),
        }
        frame.extend_from_slice(payload);
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

fn ipv4_header_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
