//! The independent check that we speak the standard: advertisements produced by our instances
//! are written to a pcap and read back by tshark's VRRP dissector (Wireshark's), which must
//! see the same fields and report every checksum good.
//!
//! Needs tshark (Debian package `tshark`); `.ci/run` installs it. Fails, never skips, without it.

mod common;

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use kube_vrrp::vrrp::{
    Action, Advertisement, Authentication, Input, Instance, InstanceConfig, Version,
};

struct Case {
    config: InstanceConfig,
}

fn case(
    version: Version,
    vrid: u8,
    priority: u8,
    interval_ms: u64,
    primary: &str,
    vips: Vec<String>,
) -> Case {
    let mut config = InstanceConfig::new(
        vrid,
        primary.parse().unwrap(),
        vips.iter().map(|v| v.parse().unwrap()).collect(),
    );
    config.version = version;
    config.priority = priority;
    config.advert_interval = Duration::from_millis(interval_ms);
    Case { config }
}

/// The advertisements an instance sends as owner on startup and on shutdown (priority 0).
fn adverts_of(config: &InstanceConfig) -> Vec<Advertisement> {
    config.validate().unwrap();
    let mut owner = config.clone();
    owner.priority = 255;
    let mut i = Instance::new(owner);
    let mut actions = i.handle(Duration::ZERO, Input::Startup);
    actions.extend(i.handle(Duration::from_secs(1), Input::Shutdown));
    let mut adverts: Vec<Advertisement> = actions
        .into_iter()
        .filter_map(|a| match a {
            Action::SendAdvertisement(adv) => Some(adv),
            _ => None,
        })
        .collect();
    assert_eq!(adverts.len(), 2);
    // The owner sends 255; show the configured priority too.
    let mut configured = adverts[0].clone();
    configured.priority = config.priority;
    adverts.push(configured);
    adverts
}

#[test]
fn tshark_decodes_our_advertisements() {
    let mut pass = case(
        Version::V2,
        51,
        150,
        1000,
        "198.51.100.11",
        vec!["198.51.100.50/24".into()],
    );
    pass.config.authentication = Authentication::password("s3cret");
    let cases = vec![
        pass,
        case(
            Version::V3,
            52,
            200,
            100,
            "198.51.100.11",
            vec!["198.51.100.60/24".into()],
        ),
        case(
            Version::V3,
            53,
            120,
            20,
            "fe80::f8ec:1ff:febb:9dfb",
            vec!["2001:db8:1::60/64".into(), "2001:db8:1::61/64".into()],
        ),
        case(
            Version::V3,
            54,
            100,
            1000,
            "198.51.100.11",
            (1..=25)
                .map(|i| format!("198.51.100.{}/24", 100 + i))
                .collect(),
        ),
        case(
            Version::V2,
            55,
            1,
            255_000,
            "198.51.100.12",
            vec!["203.0.113.1/32".into()],
        ),
        case(
            Version::V3,
            255,
            254,
            40_950,
            "2001:db8:1::2",
            vec!["2001:db8:2::1/128".into()],
        ),
    ];

    let mut packets = Vec::new();
    let mut expected = Vec::new();
    for c in &cases {
        let src = c.config.primary_address;
        let dst = c.config.family().multicast_group();
        for adv in adverts_of(&c.config) {
            packets.push((src, dst, adv.encode(src, dst).unwrap()));
            expected.push(adv);
        }
    }
    let dir = std::env::temp_dir().join(format!("kube-vrrp-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ours.pcap");
    std::fs::write(&file, common::pcap::write_vrrp_pcap(&packets)).unwrap();

    let out = Command::new("tshark")
        .args([
            "-r",
            file.to_str().unwrap(),
            "-o",
            "vrrp.v3_checksum_as_in_v2:FALSE",
            "-T",
            "fields",
            "-E",
            "separator=|",
        ])
        .args([
            "-E",
            "aggregator=,",
            "-e",
            "vrrp.version",
            "-e",
            "vrrp.virt_rtr_id",
            "-e",
            "vrrp.prio",
        ])
        .args([
            "-e",
            "vrrp.adver_int",
            "-e",
            "vrrp.short_adver_int",
            "-e",
            "vrrp.addr_count",
        ])
        .args([
            "-e",
            "vrrp.ip_addr",
            "-e",
            "vrrp.ipv6_addr",
            "-e",
            "vrrp.checksum.status",
            "-e",
            "vrrp.auth_string",
        ])
        .output()
        .expect("tshark must be installed (apt-get install tshark); this test never skips");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), expected.len(), "tshark output:\n{text}");

    for (line, adv) in lines.iter().zip(&expected) {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 10, "{line}");
        assert_eq!(f[0], u8::from(adv.version).to_string(), "version: {line}");
        assert_eq!(f[1], adv.vrid.to_string(), "vrid: {line}");
        assert_eq!(f[2], adv.priority.to_string(), "priority: {line}");
        match adv.version {
            Version::V2 => assert_eq!(
                f[3],
                (adv.interval_cs / 100).to_string(),
                "v2 interval: {line}"
            ),
            Version::V3 => assert_eq!(f[4], adv.interval_cs.to_string(), "v3 interval: {line}"),
        }
        assert_eq!(f[5], adv.addresses.len().to_string(), "count: {line}");
        let addrs: Vec<IpAddr> = f[6]
            .split(',')
            .chain(f[7].split(','))
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(addrs, adv.addresses.to_ip_addrs(), "addresses: {line}");
        assert_eq!(f[8], "1", "checksum status must be good (1): {line}");
        if let Authentication::SimplePassword(_) = adv.auth {
            assert_eq!(f[9], "s3cret", "password: {line}");
        }
    }
}
