#![allow(dead_code)] // each test binary uses a different part

pub mod lab;
pub mod pcap;

use std::net::IpAddr;

/// An independent RFC 1071 checksum for tests: rewrites the checksum field of a VRRP message
/// (with the v3 pseudo-header when `pseudo` is set), so tests can build packets that are
/// well-formed except for the rule they break.
pub fn fix_checksum(bytes: &mut [u8], src: IpAddr, dst: IpAddr, pseudo: bool) {
    bytes[6] = 0;
    bytes[7] = 0;
    let mut data = Vec::new();
    if pseudo {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                data.extend_from_slice(&s.octets());
                data.extend_from_slice(&d.octets());
                data.extend_from_slice(&[0, 112]);
                data.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                data.extend_from_slice(&s.octets());
                data.extend_from_slice(&d.octets());
                data.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                data.extend_from_slice(&[0, 0, 0, 112]);
            }
            _ => panic!("mixed families"),
        }
    }
    data.extend_from_slice(bytes);
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut sum: u64 = data
        .chunks(2)
        .map(|c| u64::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    bytes[6..8].copy_from_slice(&c.to_be_bytes());
}

pub fn keepalived_capture() -> Vec<pcap::VrrpFrame> {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/keepalived-2.2.7-vrrp.pcap"
    ))
    .expect("tests/data/keepalived-2.2.7-vrrp.pcap");
    pcap::read_vrrp_frames(&bytes)
}
