//! The validated configuration of one VRRP instance. Everything the core needs, and nothing it
//! has to interpret: user-facing schemas (VirtualIP YAML, keepalived.conf) are turned into this
//! at the edge and validated once.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::packet::{Advertisement, Authentication, Family, V3_MAX_INTERVAL_CS, Version};
// Durations moved to `crate::units`; the old path stays for the protocol core's callers.
pub(crate) use crate::units::{format_duration, parse_duration};

/// A virtual address with the prefix length it is bound with, written `ip/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VirtualAddress {
    pub address: IpAddr,
    pub prefix_len: u8,
}

impl VirtualAddress {
    pub fn family(&self) -> Family {
        Family::of(&self.address)
    }
}

impl fmt::Display for VirtualAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl FromStr for VirtualAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let address: IpAddr = addr.trim().parse().map_err(|_| {
            format!("{s:?} is not an IP address (write ip/prefix, e.g. 192.0.2.10/24)")
        })?;
        let max = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix_len = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0 to {max}"))?,
        };
        if address.is_unspecified() || address.is_multicast() {
            return Err(format!(
                "{s:?}: a virtual address cannot be unspecified or multicast"
            ));
        }
        Ok(VirtualAddress {
            address,
            prefix_len,
        })
    }
}

impl TryFrom<String> for VirtualAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<VirtualAddress> for String {
    fn from(v: VirtualAddress) -> String {
        v.to_string()
    }
}

/// Configuration of one virtual router on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    pub version: Version,
    /// Virtual Router Identifier, 1 to 255.
    pub vrid: u8,
    /// Configured priority, 1 to 255; 255 makes this router the address owner.
    pub priority: u8,
    /// Advertisement_Interval: whole seconds for v2, centiseconds for v3.
    pub advert_interval: Duration,
    pub preempt: bool,
    /// Hold-off before preempting a lower-priority master, after start-up or after first
    /// seeing that master (keepalived `preempt_delay`).
    pub preempt_delay: Duration,
    /// RFC 5798 Accept_Mode: a non-owner master accepts packets addressed to the VIPs.
    pub accept_mode: bool,
    /// This router's primary address on the interface: the advertisement source, and the
    /// tie-breaker between equal priorities.
    pub primary_address: IpAddr,
    /// All addresses the master owns (advertisements carry as many as fit in `mtu`).
    pub addresses: Vec<VirtualAddress>,
    /// How many of `addresses` (the first) advertisements list; the rest are held but not
    /// listed (keepalived `virtual_ipaddress_excluded`).
    pub advertised: usize,
    /// VRRPv2 only.
    pub authentication: Authentication,
    /// Empty: multicast. Otherwise advertisements go to, and are accepted only from, these.
    pub unicast_peers: Vec<IpAddr>,
    /// Link MTU, bounding how many addresses one advertisement carries.
    pub mtu: usize,
    /// v3: the longest Master_Adver_Interval a backup adopts from a master. `None`: any
    /// (RFC 5798). One spoofed advertisement with 40.95 s would otherwise leave the backups
    /// waiting over two minutes before they notice the master is gone.
    pub max_learned_interval: Option<Duration>,
}

/// A configuration that can never work, with what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstanceConfigError {
    #[error("virtual router ID 0 is reserved: use 1 to 255")]
    Vrid,
    #[error("priority 0 is reserved for a master leaving: use 1 to 255 (255 = address owner)")]
    Priority,
    #[error("VRRPv2 advertisement interval must be whole seconds from 1s to 255s, got {0:?}")]
    V2Interval(Duration),
    #[error(
        "VRRPv3 advertisement interval must be a multiple of 10ms from 10ms to 40.95s, got {0:?}"
    )]
    V3Interval(Duration),
    #[error("authentication exists only in VRRPv2 (RFC 5798 removed it): set version 2 or drop it")]
    V3Authentication,
    #[error("at least one virtual address is required")]
    NoAddresses,
    #[error("VRRPv2 carries IPv4 only; {0} is IPv6: use version 3")]
    V2Ipv6(VirtualAddress),
    #[error("all addresses of one instance must share a family: {0} differs from {1}")]
    MixedFamilies(VirtualAddress, VirtualAddress),
    #[error("primary address {0} is not of the addresses' family {1}")]
    PrimaryFamily(IpAddr, Family),
    #[error("unicast peer {0} is not of the addresses' family {1}")]
    PeerFamily(IpAddr, Family),
    #[error("the MTU {0} leaves no room for a single address in an advertisement")]
    Mtu(usize),
}

impl InstanceConfig {
    /// A configuration with the defaults keepalived users expect: v3, priority 100, 1 s
    /// advertisements, preempt, no delay, accept mode off, multicast, MTU 1500.
    pub fn new(vrid: u8, primary_address: IpAddr, addresses: Vec<VirtualAddress>) -> Self {
        InstanceConfig {
            version: Version::V3,
            vrid,
            priority: 100,
            advert_interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            accept_mode: false,
            primary_address,
            advertised: addresses.len(),
            addresses,
            authentication: Authentication::None,
            unicast_peers: Vec::new(),
            mtu: 1500,
            max_learned_interval: None,
        }
    }

    pub fn family(&self) -> Family {
        self.addresses
            .first()
            .map(VirtualAddress::family)
            .unwrap_or_else(|| Family::of(&self.primary_address))
    }

    /// Advertisement_Interval in centiseconds, as carried on the wire.
    pub fn interval_cs(&self) -> u16 {
        (self.advert_interval.as_millis() / 10).min(u128::from(u16::MAX)) as u16
    }

    pub fn validate(&self) -> Result<(), InstanceConfigError> {
        if self.vrid == 0 {
            return Err(InstanceConfigError::Vrid);
        }
        if self.priority == 0 {
            return Err(InstanceConfigError::Priority);
        }
        let ms = self.advert_interval.as_millis();
        let exact_cs = self.advert_interval.as_nanos() % 10_000_000 == 0;
        match self.version {
            Version::V2 => {
                if self.advert_interval.subsec_nanos() != 0 || !(1000..=255_000).contains(&ms) {
                    return Err(InstanceConfigError::V2Interval(self.advert_interval));
                }
            }
            Version::V3 => {
                if !exact_cs || !(10..=u128::from(V3_MAX_INTERVAL_CS) * 10).contains(&ms) {
                    return Err(InstanceConfigError::V3Interval(self.advert_interval));
                }
                if self.authentication != Authentication::None {
                    return Err(InstanceConfigError::V3Authentication);
                }
            }
        }
        let first = *self
            .addresses
            .first()
            .ok_or(InstanceConfigError::NoAddresses)?;
        let family = first.family();
        for a in &self.addresses {
            if a.family() != family {
                return Err(InstanceConfigError::MixedFamilies(*a, first));
            }
        }
        if self.version == Version::V2 && family == Family::V6 {
            return Err(InstanceConfigError::V2Ipv6(first));
        }
        if Family::of(&self.primary_address) != family {
            return Err(InstanceConfigError::PrimaryFamily(
                self.primary_address,
                family,
            ));
        }
        if let Some(p) = self.unicast_peers.iter().find(|p| Family::of(p) != family) {
            return Err(InstanceConfigError::PeerFamily(*p, family));
        }
        if Advertisement::max_addresses(self.version, family, self.mtu) == 0 {
            return Err(InstanceConfigError::Mtu(self.mtu));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> InstanceConfig {
        InstanceConfig::new(
            51,
            "198.51.100.11".parse().unwrap(),
            vec!["198.51.100.50/24".parse().unwrap()],
        )
    }

    #[test]
    fn virtual_address_parses_and_rejects() {
        let v: VirtualAddress = "2001:db8:1::60/64".parse().unwrap();
        assert_eq!(v.prefix_len, 64);
        assert_eq!(v.to_string(), "2001:db8:1::60/64");
        assert_eq!(
            "192.0.2.1".parse::<VirtualAddress>().unwrap().prefix_len,
            32
        );
        assert!("192.0.2.1/33".parse::<VirtualAddress>().is_err());
        assert!("192.0.2/24".parse::<VirtualAddress>().is_err());
        assert!("224.0.0.18/32".parse::<VirtualAddress>().is_err());
    }

    #[test]
    fn validation_rejects_what_cannot_work() {
        assert_eq!(cfg().validate(), Ok(()));
        let mut c = cfg();
        c.vrid = 0;
        assert_eq!(c.validate(), Err(InstanceConfigError::Vrid));
        let mut c = cfg();
        c.priority = 0;
        assert_eq!(c.validate(), Err(InstanceConfigError::Priority));
        let mut c = cfg();
        c.version = Version::V2;
        c.advert_interval = Duration::from_millis(500);
        assert!(matches!(
            c.validate(),
            Err(InstanceConfigError::V2Interval(_))
        ));
        let mut c = cfg();
        c.advert_interval = Duration::from_millis(5);
        assert!(matches!(
            c.validate(),
            Err(InstanceConfigError::V3Interval(_))
        ));
        let mut c = cfg();
        c.advert_interval = Duration::from_millis(41_000);
        assert!(matches!(
            c.validate(),
            Err(InstanceConfigError::V3Interval(_))
        ));
        let mut c = cfg();
        c.authentication = Authentication::password("s3cret");
        assert_eq!(c.validate(), Err(InstanceConfigError::V3Authentication));
        let mut c = cfg();
        c.addresses.clear();
        assert_eq!(c.validate(), Err(InstanceConfigError::NoAddresses));
        let mut c = cfg();
        c.addresses.push("2001:db8::1/64".parse().unwrap());
        assert!(matches!(
            c.validate(),
            Err(InstanceConfigError::MixedFamilies(..))
        ));
        let mut c = cfg();
        c.version = Version::V2;
        c.addresses = vec!["2001:db8::1/64".parse().unwrap()];
        c.primary_address = "fe80::1".parse().unwrap();
        assert!(matches!(c.validate(), Err(InstanceConfigError::V2Ipv6(_))));
        let mut c = cfg();
        c.primary_address = "fe80::1".parse().unwrap();
        assert!(matches!(
            c.validate(),
            Err(InstanceConfigError::PrimaryFamily(..))
        ));
        let mut c = cfg();
        c.unicast_peers = vec!["2001:db8::2".parse().unwrap()];
        assert!(matches!(
            c.validate(),
            Err(InstanceConfigError::PeerFamily(..))
        ));
        let mut c = cfg();
        c.mtu = 30;
        assert_eq!(c.validate(), Err(InstanceConfigError::Mtu(30)));
    }
}
