//! Codec against byte vectors: the advertisements a real keepalived 2.2.7 sent (captured in
//! tests/data/keepalived-2.2.7-vrrp.pcap, see shared testdata README), both ways, and one
//! negative test per decode error.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::{fix_checksum, keepalived_capture};
use kube_vrrp::vrrp::{
    Addresses, Advertisement, Authentication, DecodeError, EncodeError, Family, Version,
};

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn frame(number: usize) -> common::pcap::VrrpFrame {
    keepalived_capture()
        .into_iter()
        .find(|f| f.number == number)
        .unwrap_or_else(|| panic!("frame {number} is not VRRP"))
}

#[test]
fn every_keepalived_advert_decodes_and_reencodes_byte_for_byte() {
    let frames = keepalived_capture();
    // 57 v3 IPv4 + 10 IPv6 + 4 v2 adverts, per `tshark -Y vrrp`.
    assert_eq!(frames.len(), 71, "VRRP frames in the capture");
    let mut per_vrid = std::collections::BTreeMap::new();
    for f in &frames {
        assert_eq!(f.ttl, 255, "frame {}", f.number);
        let adv = Advertisement::decode(&f.payload, f.src, f.dst)
            .unwrap_or_else(|e| panic!("frame {}: {e}", f.number));
        assert_eq!(
            adv.encode(f.src, f.dst).unwrap(),
            f.payload,
            "frame {} re-encoded",
            f.number
        );
        *per_vrid.entry(adv.vrid).or_insert(0) += 1;
    }
    assert_eq!(
        per_vrid.into_iter().collect::<Vec<_>>(),
        vec![(51, 4), (52, 57), (53, 10)]
    );
}

#[test]
fn keepalived_v2_with_password() {
    let f = frame(54);
    let adv = Advertisement::decode(&f.payload, f.src, f.dst).unwrap();
    let expected = Advertisement {
        version: Version::V2,
        vrid: 51,
        priority: 150,
        interval_cs: 100,
        addresses: Addresses::V4(vec![
            v4("198.51.100.50"),
            v4("198.51.100.51"),
            v4("198.51.100.52"),
        ]),
        auth: Authentication::password("s3cret"),
    };
    assert_eq!(adv, expected);
    // Struct -> bytes gives exactly what keepalived sent, checksum 0x8c78 included.
    let bytes = expected.encode(f.src, f.dst).unwrap();
    assert_eq!(bytes, f.payload);
    assert_eq!(&bytes[6..8], &[0x8c, 0x78]);
    assert_eq!(bytes.len(), 8 + 3 * 4 + 8);
}

#[test]
fn keepalived_v3_ipv4() {
    let f = frame(1);
    let expected = Advertisement {
        version: Version::V3,
        vrid: 52,
        priority: 200,
        interval_cs: 10,
        addresses: Addresses::V4(vec![v4("198.51.100.60")]),
        auth: Authentication::None,
    };
    assert_eq!(
        Advertisement::decode(&f.payload, f.src, f.dst).unwrap(),
        expected
    );
    let bytes = expected
        .encode(ip("198.51.100.11"), ip("224.0.0.18"))
        .unwrap();
    assert_eq!(bytes, f.payload);
    assert_eq!(&bytes[6..8], &[0xd1, 0x81]);
}

#[test]
fn keepalived_v3_ipv6_link_local_source() {
    let f = frame(21);
    assert_eq!(f.src, ip("fe80::f8ec:1ff:febb:9dfb"));
    let expected = Advertisement {
        version: Version::V3,
        vrid: 53,
        priority: 120,
        interval_cs: 50,
        addresses: Addresses::V6(vec![v6("2001:db8:1::60"), v6("2001:db8:1::61")]),
        auth: Authentication::None,
    };
    assert_eq!(
        Advertisement::decode(&f.payload, f.src, f.dst).unwrap(),
        expected
    );
    let bytes = expected.encode(f.src, f.dst).unwrap();
    assert_eq!(bytes, f.payload);
    assert_eq!(&bytes[6..8], &[0x64, 0x8f]);
}

#[test]
fn keepalived_priority_zero_on_shutdown() {
    for (number, vrid, version) in [
        (107, 51, Version::V2),
        (108, 52, Version::V3),
        (109, 53, Version::V3),
    ] {
        let f = frame(number);
        let adv = Advertisement::decode(&f.payload, f.src, f.dst).unwrap();
        assert_eq!(
            (adv.vrid, adv.priority, adv.version),
            (vrid, 0, version),
            "frame {number}"
        );
    }
}

#[test]
fn the_v3_checksum_covers_the_pseudo_header() {
    // The same message sent to another destination (unicast) has another checksum.
    let f = frame(1);
    let adv = Advertisement::decode(&f.payload, f.src, f.dst).unwrap();
    let unicast = adv.encode(f.src, ip("198.51.100.12")).unwrap();
    assert_ne!(unicast[6..8], f.payload[6..8]);
    assert!(matches!(
        Advertisement::decode(&f.payload, f.src, ip("198.51.100.12")),
        Err(DecodeError::Checksum { .. })
    ));
    // v2 has no pseudo-header: the same bytes are valid whatever the addresses.
    let f = frame(54);
    assert!(Advertisement::decode(&f.payload, ip("192.0.2.1"), ip("192.0.2.2")).is_ok());
}

#[test]
fn reserved_bits_of_the_v3_interval_are_ignored() {
    let f = frame(1);
    let mut bytes = f.payload.clone();
    bytes[4] |= 0xf0;
    fix_checksum(&mut bytes, f.src, f.dst, true);
    assert_eq!(
        Advertisement::decode(&bytes, f.src, f.dst)
            .unwrap()
            .interval_cs,
        10
    );
}

// ---- one negative test per decode error ----

fn v3_frame() -> (Vec<u8>, IpAddr, IpAddr) {
    let f = frame(1);
    (f.payload, f.src, f.dst)
}

fn v2_frame() -> (Vec<u8>, IpAddr, IpAddr) {
    let f = frame(54);
    (f.payload, f.src, f.dst)
}

#[test]
fn error_too_short() {
    let (b, s, d) = v3_frame();
    assert_eq!(
        Advertisement::decode(&b[..7], s, d),
        Err(DecodeError::TooShort { len: 7, min: 8 })
    );
    assert_eq!(
        Advertisement::decode(&[], s, d),
        Err(DecodeError::TooShort { len: 0, min: 8 })
    );
}

#[test]
fn error_version() {
    let (mut b, s, d) = v3_frame();
    b[0] = 0x41;
    assert_eq!(
        Advertisement::decode(&b, s, d),
        Err(DecodeError::Version(4))
    );
    b[0] = 0x11;
    assert_eq!(
        Advertisement::decode(&b, s, d),
        Err(DecodeError::Version(1))
    );
}

#[test]
fn error_type() {
    let (mut b, s, d) = v3_frame();
    b[0] = 0x32;
    assert_eq!(Advertisement::decode(&b, s, d), Err(DecodeError::Type(2)));
}

#[test]
fn error_no_addresses() {
    let (mut b, s, d) = v3_frame();
    b[3] = 0;
    assert_eq!(
        Advertisement::decode(&b, s, d),
        Err(DecodeError::NoAddresses)
    );
}

#[test]
fn error_length() {
    let (mut b, s, d) = v3_frame();
    b[3] = 2; // claims two addresses, carries one
    assert!(matches!(
        Advertisement::decode(&b, s, d),
        Err(DecodeError::Length {
            len: 12,
            count: 2,
            expected: 16,
            ..
        })
    ));
    let (mut b, s, d) = v2_frame();
    b.pop(); // one octet of authentication data missing
    assert!(matches!(
        Advertisement::decode(&b, s, d),
        Err(DecodeError::Length {
            len: 27,
            expected: 28,
            ..
        })
    ));
}

#[test]
fn error_checksum() {
    let (mut b, s, d) = v3_frame();
    b[2] = 201; // priority changed in flight
    assert_eq!(
        Advertisement::decode(&b, s, d),
        Err(DecodeError::Checksum {
            found: 0xd181,
            computed: 0xd081
        })
    );
}

#[test]
fn error_auth_ah_refused() {
    let (mut b, s, d) = v2_frame();
    b[4] = 2;
    fix_checksum(&mut b, s, d, false);
    let e = Advertisement::decode(&b, s, d).unwrap_err();
    assert_eq!(e, DecodeError::AuthAh);
    assert!(e.to_string().contains("not supported"), "{e}");
}

#[test]
fn error_unknown_auth_type() {
    let (mut b, s, d) = v2_frame();
    b[4] = 7;
    fix_checksum(&mut b, s, d, false);
    assert_eq!(
        Advertisement::decode(&b, s, d),
        Err(DecodeError::AuthType(7))
    );
}

#[test]
fn error_v2_over_ipv6() {
    let (b, _, _) = v2_frame();
    assert_eq!(
        Advertisement::decode(&b, ip("fe80::1"), ip("ff02::12")),
        Err(DecodeError::V2OverIpv6)
    );
}

#[test]
fn error_zero_interval() {
    let (mut b, s, d) = v3_frame();
    b[4] = 0;
    b[5] = 0;
    fix_checksum(&mut b, s, d, true);
    assert_eq!(
        Advertisement::decode(&b, s, d),
        Err(DecodeError::ZeroInterval)
    );
    let (mut b, s, d) = v2_frame();
    b[5] = 0;
    fix_checksum(&mut b, s, d, false);
    assert_eq!(
        Advertisement::decode(&b, s, d),
        Err(DecodeError::ZeroInterval)
    );
}

#[test]
fn error_family_mismatch() {
    let (b, s, _) = v3_frame();
    assert!(matches!(
        Advertisement::decode(&b, s, ip("ff02::12")),
        Err(DecodeError::FamilyMismatch { .. })
    ));
}

#[test]
fn decode_errors_serialize_for_replay() {
    let e = DecodeError::Checksum {
        found: 1,
        computed: 2,
    };
    let json = serde_json::to_string(&e).unwrap();
    assert_eq!(serde_json::from_str::<DecodeError>(&json).unwrap(), e);
}

// ---- encoding ----

fn adv(version: Version, addresses: Addresses) -> Advertisement {
    Advertisement {
        version,
        vrid: 9,
        priority: 100,
        interval_cs: 100,
        addresses,
        auth: Authentication::None,
    }
}

#[test]
fn encode_refuses_what_no_wire_format_holds() {
    let s4 = ip("198.51.100.11");
    let d4 = ip("224.0.0.18");
    let many = Addresses::V4(
        (0..256u32)
            .map(|i| Ipv4Addr::from(0xc0000200 + i))
            .collect(),
    );
    assert_eq!(
        adv(Version::V3, many).encode(s4, d4),
        Err(EncodeError::TooManyAddresses(256))
    );
    assert_eq!(
        adv(Version::V3, Addresses::V4(vec![])).encode(s4, d4),
        Err(EncodeError::NoAddresses)
    );
    let six = Addresses::V6(vec![v6("2001:db8::1")]);
    assert_eq!(
        adv(Version::V2, six.clone()).encode(ip("fe80::1"), ip("ff02::12")),
        Err(EncodeError::V2Ipv6)
    );
    assert!(matches!(
        adv(Version::V3, six).encode(s4, d4),
        Err(EncodeError::FamilyMismatch { .. })
    ));
    let mut a = adv(Version::V2, Addresses::V4(vec![v4("198.51.100.50")]));
    a.interval_cs = 50;
    assert_eq!(a.encode(s4, d4), Err(EncodeError::V2Interval(50)));
    let mut a = adv(Version::V3, Addresses::V4(vec![v4("198.51.100.50")]));
    a.interval_cs = 4096;
    assert_eq!(a.encode(s4, d4), Err(EncodeError::V3Interval(4096)));
    a.interval_cs = 10;
    a.auth = Authentication::password("x");
    assert_eq!(a.encode(s4, d4), Err(EncodeError::V3Auth));
}

#[test]
fn a_full_packet_of_addresses_round_trips() {
    let n = Advertisement::max_addresses(Version::V3, Family::V6, 1500);
    let addrs: Vec<Ipv6Addr> = (0..n as u128)
        .map(|i| Ipv6Addr::from(0x2001_0db8_u128 << 96 | i))
        .collect();
    let a = adv(Version::V3, Addresses::V6(addrs));
    let bytes = a.encode(ip("fe80::1"), ip("ff02::12")).unwrap();
    assert_eq!(bytes.len(), 8 + 16 * 90);
    assert!(bytes.len() + 40 <= 1500);
    assert_eq!(
        Advertisement::decode(&bytes, ip("fe80::1"), ip("ff02::12")).unwrap(),
        a
    );
}
