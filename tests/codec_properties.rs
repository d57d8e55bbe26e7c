//! Property tests of the codec: decode(encode(x)) == x for every advertisement the wire can
//! carry, and decoding arbitrary or mutated bytes never panics (100,000+ cases each).

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kube_vrrp::vrrp::{Addresses, Advertisement, Authentication, Version};
use proptest::prelude::*;

fn addresses_v4() -> impl Strategy<Value = Vec<Ipv4Addr>> {
    prop::collection::vec(any::<u32>().prop_map(Ipv4Addr::from), 1..=255)
}

fn addresses_v6() -> impl Strategy<Value = Vec<Ipv6Addr>> {
    prop::collection::vec(any::<u128>().prop_map(Ipv6Addr::from), 1..=90)
}

/// Any advertisement with its source and destination.
fn advertisement() -> impl Strategy<Value = (Advertisement, IpAddr, IpAddr)> {
    let v2 = (
        any::<u8>(),
        any::<u8>(),
        1u16..=255,
        addresses_v4(),
        prop_oneof![
            Just(Authentication::None),
            any::<[u8; 8]>().prop_map(Authentication::SimplePassword)
        ],
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(vrid, priority, secs, addrs, auth, s, d)| {
            let a = Advertisement {
                version: Version::V2,
                vrid,
                priority,
                interval_cs: secs * 100,
                addresses: Addresses::V4(addrs),
                auth,
            };
            (a, IpAddr::V4(s.into()), IpAddr::V4(d.into()))
        });
    let v3 = (
        any::<u8>(),
        any::<u8>(),
        1u16..=4095,
        prop_oneof![
            addresses_v4().prop_map(Addresses::V4),
            addresses_v6().prop_map(Addresses::V6)
        ],
        any::<u128>(),
        any::<u128>(),
    )
        .prop_map(|(vrid, priority, interval_cs, addresses, s, d)| {
            let (src, dst) = match addresses {
                Addresses::V4(_) => (
                    IpAddr::V4(Ipv4Addr::from(s as u32)),
                    IpAddr::V4(Ipv4Addr::from(d as u32)),
                ),
                Addresses::V6(_) => (IpAddr::V6(s.into()), IpAddr::V6(d.into())),
            };
            let a = Advertisement {
                version: Version::V3,
                vrid,
                priority,
                interval_cs,
                addresses,
                auth: Authentication::None,
            };
            (a, src, dst)
        });
    prop_oneof![v2, v3]
}

fn endpoints() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        (any::<u32>(), any::<u32>())
            .prop_map(|(s, d)| (IpAddr::V4(s.into()), IpAddr::V4(d.into()))),
        (any::<u128>(), any::<u128>())
            .prop_map(|(s, d)| (IpAddr::V6(s.into()), IpAddr::V6(d.into()))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn decode_inverts_encode((adv, src, dst) in advertisement()) {
        let bytes = adv.encode(src, dst).unwrap();
        prop_assert_eq!(bytes.len(), adv.encoded_len());
        prop_assert_eq!(Advertisement::decode(&bytes, src, dst).unwrap(), adv);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100_000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), (src, dst) in endpoints()) {
        let _ = Advertisement::decode(&bytes, src, dst);
    }

    /// Valid packets with a few bytes changed, half of them with the checksum repaired, reach
    /// every rule past the checksum.
    #[test]
    fn mutated_packets_never_panic(
        (adv, src, dst) in advertisement(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        truncate in prop::option::of(any::<prop::sample::Index>()),
        repair in any::<bool>(),
    ) {
        let mut bytes = adv.encode(src, dst).unwrap();
        for (i, v) in edits {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        if let Some(t) = truncate {
            bytes.truncate(t.index(bytes.len()).max(8));
        }
        if repair {
            common::fix_checksum(&mut bytes, src, dst, adv.version == Version::V3);
        }
        if let Ok(decoded) = Advertisement::decode(&bytes, src, dst) {
            // Whatever decodes must encode back to the same bytes (but for ignored bits).
            let again = decoded.encode(src, dst).unwrap();
            prop_assert_eq!(Advertisement::decode(&again, src, dst).unwrap(), decoded);
        }
    }
}
