//! VRRP advertisement codec: RFC 3768 (VRRPv2, IPv4 only) and RFC 5798 (VRRPv3, IPv4 and IPv6).
//!
//! The codec works on the VRRP message alone (the IP payload). The IP header is the socket's
//! business, but two of its fields matter here: the source and destination addresses enter the
//! VRRPv3 checksum through the pseudo-header, and select the address family of the message.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

// The family is shared vocabulary (its text forms too); the codec adds its multicast group.
pub use crate::ids::Family;

/// IP protocol number of VRRP (both versions).
pub(crate) const IPPROTO_VRRP: u8 = 112;
/// TTL / hop limit every advertisement is sent with and must arrive with (RFC 5798 §5.1.1.3).
pub(crate) const VRRP_TTL: u8 = 255;
/// IPv4 multicast group of VRRP (RFC 5798 §5.1.1.2).
pub(crate) const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP (RFC 5798 §5.1.2.2).
pub(crate) const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// The only VRRP packet type (RFC 5798 §5.2.2).
const TYPE_ADVERTISEMENT: u8 = 1;
/// Fixed header: version/type, VRID, priority, count, interval (and v2 auth type), checksum.
const HEADER_LEN: usize = 8;
/// VRRPv2 carries 8 octets of authentication data after the addresses (RFC 3768 §5.3.10).
const V2_AUTH_LEN: usize = 8;
const IPV4_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
/// Largest VRRPv3 interval: 12 bits of centiseconds.
pub(crate) const V3_MAX_INTERVAL_CS: u16 = 0x0fff;

/// Protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Version {
    /// RFC 3768.
    V2,
    /// RFC 5798.
    V3,
}

impl From<Version> for u8 {
    fn from(v: Version) -> u8 {
        match v {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

impl TryFrom<u8> for Version {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        match v {
            2 => Ok(Version::V2),
            3 => Ok(Version::V3),
            other => Err(format!("VRRP version must be 2 or 3, not {other}")),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", u8::from(*self))
    }
}

impl Family {
    /// The VRRP multicast group of this family.
    pub fn multicast_group(self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(MULTICAST_V4),
            Family::V6 => IpAddr::V6(MULTICAST_V6),
        }
    }
}

/// VRRPv2 authentication (RFC 3768 §5.3.6). VRRPv3 has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Authentication {
    /// Type 0. The 8 octets of authentication data are sent as zero and ignored on receipt.
    #[default]
    None,
    /// Type 1: a clear-text password of up to 8 octets, zero padded (kept by keepalived as
    /// `auth_type PASS` for compatibility with RFC 2338).
    SimplePassword([u8; 8]),
}

impl Authentication {
    /// Password authentication from the configured text (keepalived truncates to 8 octets; we
    /// refuse longer ones at validation, so here it is at most 8).
    pub fn password(text: &str) -> Authentication {
        let mut data = [0u8; 8];
        let n = text.len().min(8);
        data[..n].copy_from_slice(&text.as_bytes()[..n]);
        Authentication::SimplePassword(data)
    }

    fn type_code(&self) -> u8 {
        match self {
            Authentication::None => 0,
            Authentication::SimplePassword(_) => 1,
        }
    }
}

/// The virtual addresses an advertisement carries; all of one family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Addresses {
    V4(Vec<Ipv4Addr>),
    V6(Vec<Ipv6Addr>),
}

impl Addresses {
    pub fn family(&self) -> Family {
        match self {
            Addresses::V4(_) => Family::V4,
            Addresses::V6(_) => Family::V6,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Addresses::V4(a) => a.len(),
            Addresses::V6(a) => a.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn to_ip_addrs(&self) -> Vec<IpAddr> {
        match self {
            Addresses::V4(a) => a.iter().copied().map(IpAddr::V4).collect(),
            Addresses::V6(a) => a.iter().copied().map(IpAddr::V6).collect(),
        }
    }

    /// Builds the list from addresses that must all be of `family`; others are skipped.
    pub fn from_ip_addrs<'a>(family: Family, addrs: impl IntoIterator<Item = &'a IpAddr>) -> Self {
        match family {
            Family::V4 => Addresses::V4(
                addrs
                    .into_iter()
                    .filter_map(|a| match a {
                        IpAddr::V4(a) => Some(*a),
                        IpAddr::V6(_) => None,
                    })
                    .collect(),
            ),
            Family::V6 => Addresses::V6(
                addrs
                    .into_iter()
                    .filter_map(|a| match a {
                        IpAddr::V6(a) => Some(*a),
                        IpAddr::V4(_) => None,
                    })
                    .collect(),
            ),
        }
    }
}

/// A decoded VRRP ADVERTISEMENT.
///
/// VRRPv3 (RFC 5798 §5.1):
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |(rsvd) |     Max Adver Int     |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       IPvX Address(es)                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
/// VRRPv2 (RFC 3768 §5.1) has `Auth Type | Adver Int (seconds)` in the second word and 8 octets
/// of authentication data after the IPv4 addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Advertisement {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// Advertisement interval in centiseconds. VRRPv2 carries whole seconds, so for v2 this is a
    /// multiple of 100.
    pub interval_cs: u16,
    pub addresses: Addresses,
    /// Always [`Authentication::None`] for VRRPv3.
    #[serde(default)]
    pub auth: Authentication,
}

/// Why a received VRRP message was refused. One variant per rule of RFC 5798 §7.1 / RFC 3768
/// §7.1 that the bytes alone can break; serializable so malformed input can be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DecodeError {
    #[error("packet too short: {len} bytes, a VRRP message needs at least {min}")]
    TooShort { len: usize, min: usize },
    #[error("unsupported VRRP version {0} (2 and 3 exist)")]
    Version(u8),
    #[error("VRRP packet type {0} is not ADVERTISEMENT (1)")]
    Type(u8),
    #[error("advertisement carries no address (count is 0)")]
    NoAddresses,
    #[error("length {len} does not match {count} {family} addresses: expected {expected} bytes")]
    Length {
        len: usize,
        count: u8,
        family: Family,
        expected: usize,
    },
    #[error("bad checksum: packet has {found:#06x}, computed {computed:#06x}")]
    Checksum { found: u16, computed: u16 },
    #[error(
        "VRRPv2 IP Authentication Header (auth type 2) is not supported; use none or a password"
    )]
    AuthAh,
    #[error("unknown VRRPv2 authentication type {0}")]
    AuthType(u8),
    #[error("VRRPv2 carries IPv4 only; got it over IPv6")]
    V2OverIpv6,
    #[error("advertisement interval is 0")]
    ZeroInterval,
    #[error("source {src} and destination {dst} are of different address families")]
    FamilyMismatch { src: IpAddr, dst: IpAddr },
}

impl DecodeError {
    /// A stable short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::TooShort { .. } | DecodeError::Length { .. } => "length",
            DecodeError::Version(_) | DecodeError::V2OverIpv6 => "version",
            DecodeError::Type(_) => "type",
            DecodeError::NoAddresses => "address_count",
            DecodeError::Checksum { .. } => "checksum",
            DecodeError::AuthAh | DecodeError::AuthType(_) => "auth_type",
            DecodeError::ZeroInterval => "interval",
            DecodeError::FamilyMismatch { .. } => "family",
        }
    }
}

/// Why an advertisement could not be encoded: the caller built one that no wire format holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{0} addresses do not fit the 8-bit address count")]
    TooManyAddresses(usize),
    #[error("an advertisement needs at least one address")]
    NoAddresses,
    #[error("VRRPv2 carries IPv4 only")]
    V2Ipv6,
    #[error("VRRPv2 interval must be whole seconds from 1 to 255, got {0} cs")]
    V2Interval(u16),
    #[error("VRRPv3 interval must be 1 to 4095 centiseconds, got {0}")]
    V3Interval(u16),
    #[error("VRRPv3 has no authentication")]
    V3Auth,
    #[error("source {src}, destination {dst} and the {family} addresses must share a family")]
    FamilyMismatch {
        src: IpAddr,
        dst: IpAddr,
        family: Family,
    },
}

impl Advertisement {
    /// How many addresses of `family` one advertisement can carry on a link of `mtu` bytes:
    /// the IP payload room divided by the address size, and never more than the 8-bit count.
    pub fn max_addresses(version: Version, family: Family, mtu: usize) -> usize {
        let (ip_header, addr_len) = match family {
            Family::V4 => (IPV4_HEADER_LEN, 4),
            Family::V6 => (IPV6_HEADER_LEN, 16),
        };
        let trailer = if version == Version::V2 {
            V2_AUTH_LEN
        } else {
            0
        };
        let room = mtu.saturating_sub(ip_header + HEADER_LEN + trailer);
        (room / addr_len).min(u8::MAX as usize)
    }

    /// Length of the encoded message.
    pub fn encoded_len(&self) -> usize {
        let addr_len = match self.addresses.family() {
            Family::V4 => 4,
            Family::V6 => 16,
        };
        let trailer = if self.version == Version::V2 {
            V2_AUTH_LEN
        } else {
            0
        };
        HEADER_LEN + addr_len * self.addresses.len() + trailer
    }

    /// Encodes the message sent from `src` to `dst` (the addresses enter the v3 checksum).
    pub fn encode(&self, src: IpAddr, dst: IpAddr) -> Result<Vec<u8>, EncodeError> {
        let family = self.addresses.family();
        if Family::of(&src) != family || Family::of(&dst) != family {
            return Err(EncodeError::FamilyMismatch { src, dst, family });
        }
        let count = self.addresses.len();
        if count == 0 {
            return Err(EncodeError::NoAddresses);
        }
        let count = u8::try_from(count).map_err(|_| EncodeError::TooManyAddresses(count))?;
        let second_word_hi = match self.version {
            Version::V2 => {
                if family != Family::V4 {
                    return Err(EncodeError::V2Ipv6);
                }
                if self.interval_cs % 100 != 0 || !(100..=25500).contains(&self.interval_cs) {
                    return Err(EncodeError::V2Interval(self.interval_cs));
                }
                (u16::from(self.auth.type_code()) << 8) | (self.interval_cs / 100)
            }
            Version::V3 => {
                if self.auth != Authentication::None {
                    return Err(EncodeError::V3Auth);
                }
                if !(1..=V3_MAX_INTERVAL_CS).contains(&self.interval_cs) {
                    return Err(EncodeError::V3Interval(self.interval_cs));
                }
                self.interval_cs
            }
        };

        let mut buf = Vec::with_capacity(self.encoded_len());
        buf.push(u8::from(self.version) << 4 | TYPE_ADVERTISEMENT);
        buf.push(self.vrid);
        buf.push(self.priority);
        buf.push(count);
        buf.extend_from_slice(&second_word_hi.to_be_bytes());
        buf.extend_from_slice(&[0, 0]); // checksum, filled below
        match &self.addresses {
            Addresses::V4(addrs) => addrs
                .iter()
                .for_each(|a| buf.extend_from_slice(&a.octets())),
            Addresses::V6(addrs) => addrs
                .iter()
                .for_each(|a| buf.extend_from_slice(&a.octets())),
        }
        if self.version == Version::V2 {
            match self.auth {
                Authentication::None => buf.extend_from_slice(&[0; V2_AUTH_LEN]),
                Authentication::SimplePassword(data) => buf.extend_from_slice(&data),
            }
        }
        let sum = checksum(self.version, src, dst, &buf);
        buf[6..8].copy_from_slice(&sum.to_be_bytes());
        Ok(buf)
    }

    /// Decodes a VRRP message received from `src` to `dst`, enforcing every rule that the bytes
    /// alone can break. Rules that need the local configuration (TTL, VRID, authentication data,
    /// interval) are the instance's.
    pub fn decode(bytes: &[u8], src: IpAddr, dst: IpAddr) -> Result<Advertisement, DecodeError> {
        if Family::of(&src) != Family::of(&dst) {
            return Err(DecodeError::FamilyMismatch { src, dst });
        }
        let family = Family::of(&src);
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::TooShort {
                len: bytes.len(),
                min: HEADER_LEN,
            });
        }
        let version = match bytes[0] >> 4 {
            2 => Version::V2,
            3 => Version::V3,
            other => return Err(DecodeError::Version(other)),
        };
        if version == Version::V2 && family == Family::V6 {
            return Err(DecodeError::V2OverIpv6);
        }
        let kind = bytes[0] & 0x0f;
        if kind != TYPE_ADVERTISEMENT {
            return Err(DecodeError::Type(kind));
        }
        let count = bytes[3];
        if count == 0 {
            return Err(DecodeError::NoAddresses);
        }
        let addr_len = match family {
            Family::V4 => 4,
            Family::V6 => 16,
        };
        let trailer = if version == Version::V2 {
            V2_AUTH_LEN
        } else {
            0
        };
        let expected = HEADER_LEN + addr_len * usize::from(count) + trailer;
        if bytes.len() != expected {
            return Err(DecodeError::Length {
                len: bytes.len(),
                count,
                family,
                expected,
            });
        }
        if checksum(version, src, dst, bytes) != 0 {
            let found = u16::from_be_bytes([bytes[6], bytes[7]]);
            let mut zeroed = bytes.to_vec();
            zeroed[6..8].fill(0);
            return Err(DecodeError::Checksum {
                found,
                computed: checksum(version, src, dst, &zeroed),
            });
        }

        let (interval_cs, auth) = match version {
            Version::V2 => {
                let auth_data: [u8; 8] = bytes[expected - V2_AUTH_LEN..]
                    .try_into()
                    .expect("length checked above");
                let auth = match bytes[4] {
                    0 => Authentication::None,
                    1 => Authentication::SimplePassword(auth_data),
                    2 => return Err(DecodeError::AuthAh),
                    other => return Err(DecodeError::AuthType(other)),
                };
                (u16::from(bytes[5]) * 100, auth)
            }
            // The 4 reserved bits are ignored on receipt (RFC 5798 §5.2.5).
            Version::V3 => (
                u16::from_be_bytes([bytes[4], bytes[5]]) & V3_MAX_INTERVAL_CS,
                Authentication::None,
            ),
        };
        if interval_cs == 0 {
            return Err(DecodeError::ZeroInterval);
        }

        let body = &bytes[HEADER_LEN..HEADER_LEN + addr_len * usize::from(count)];
        let addresses = match family {
            Family::V4 => Addresses::V4(
                body.chunks_exact(4)
                    .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                    .collect(),
            ),
            Family::V6 => Addresses::V6(
                body.chunks_exact(16)
                    .map(|c| Ipv6Addr::from(<[u8; 16]>::try_from(c).expect("16-byte chunk")))
                    .collect(),
            ),
        };
        Ok(Advertisement {
            version,
            vrid: bytes[1],
            priority: bytes[2],
            interval_cs,
            addresses,
            auth,
        })
    }
}

/// The checksum field's value for `msg` (with its checksum field zeroed), or 0 when `msg`
/// already carries a correct checksum. VRRPv2 sums the message alone (RFC 3768 §5.3.8);
/// VRRPv3 adds the IPv4 or IPv6 pseudo-header (RFC 5798 §5.2.8).
fn checksum(version: Version, src: IpAddr, dst: IpAddr, msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    if version == Version::V3 {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                sum = add_bytes(sum, &s.octets());
                sum = add_bytes(sum, &d.octets());
                sum += u32::from(IPPROTO_VRRP);
                sum += msg.len() as u32;
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                sum = add_bytes(sum, &s.octets());
                sum = add_bytes(sum, &d.octets());
                let len = msg.len() as u32;
                sum += len >> 16;
                sum += len & 0xffff;
                sum += u32::from(IPPROTO_VRRP);
            }
            // Callers check families first; a mixed pair cannot have a pseudo-header.
            _ => {}
        }
    }
    sum = add_bytes(sum, msg);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn add_bytes(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        // Fold early so that even a maximal message cannot overflow.
        if sum > 0xffff_0000 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_addresses_follow_the_mtu_and_the_count_field() {
        assert_eq!(
            Advertisement::max_addresses(Version::V2, Family::V4, 1500),
            255
        );
        assert_eq!(
            Advertisement::max_addresses(Version::V3, Family::V6, 1500),
            90
        );
        assert_eq!(
            Advertisement::max_addresses(Version::V3, Family::V4, 100),
            18
        );
        assert_eq!(
            Advertisement::max_addresses(Version::V2, Family::V4, 100),
            16
        );
        assert_eq!(Advertisement::max_addresses(Version::V3, Family::V4, 10), 0);
    }

    #[test]
    fn checksum_of_odd_length_pads_with_zero() {
        // 0x0102 + 0x0300 = 0x0402 -> !0x0402
        assert_eq!(
            checksum(
                Version::V2,
                [0, 0, 0, 0].into(),
                [0, 0, 0, 0].into(),
                &[1, 2, 3]
            ),
            !0x0402
        );
    }
}
