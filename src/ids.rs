//! The shared vocabulary: address families with their one text form each, instance keys and
//! tracker names. Every module that writes or reads one of these goes through here, so a
//! name is never built with `format!` in one place and taken apart in another.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Address family of an instance and of the addresses its advertisements carry.
///
/// Two text forms: the key ([`Family::as_key`], `ipv4`) in instance keys, notify
/// environments and serialized configuration, and the label ([`Family::label`], `IPv4`, also
/// its `Display`) in status, messages and the Kubernetes `ipFamilies` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    #[serde(rename = "ipv4")]
    V4,
    #[serde(rename = "ipv6")]
    V6,
}

impl Family {
    /// Both families, IPv4 first.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// `ipv4` / `ipv6`: instance keys (`web/ipv4`), `KUBE_VRRP_FAMILY`, serde.
    pub fn as_key(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// `IPv4` / `IPv6`: status, messages, Kubernetes `ipFamilies`.
    pub fn label(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A text that is neither form of a family.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address family: use IPv4 or IPv6")]
pub struct UnknownFamily(pub String);

impl FromStr for Family {
    type Err = UnknownFamily;

    /// Either form: the key (`ipv4`) or the label (`IPv4`). Nothing else: `IPV4` or `4`
    /// are not written anywhere, so reading them back would hide a bug.
    fn from_str(s: &str) -> Result<Family, UnknownFamily> {
        Family::ALL
            .into_iter()
            .find(|f| s == f.as_key() || s == f.label())
            .ok_or_else(|| UnknownFamily(s.to_string()))
    }
}

/// The key of one VRRP instance: a VirtualIP's name and one of its families. Its one text
/// form is `web/ipv4` (`Display`, `FromStr`, serde): logs, `/status` and the errors it keys.
/// VirtualIP names are DNS names, so they hold no `/` and the text reads back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceKey {
    name: String,
    family: Family,
}

impl InstanceKey {
    pub fn new(name: impl Into<String>, family: Family) -> InstanceKey {
        InstanceKey {
            name: name.into(),
            family,
        }
    }

    /// The VirtualIP's name (`web` of `web/ipv4`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// The text form's bytes, without building it: keys sort as their text does.
    fn text_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        self.name
            .bytes()
            .chain(std::iter::once(b'/'))
            .chain(self.family.as_key().bytes())
    }
}

impl Ord for InstanceKey {
    /// As the text form sorts (`web-1/ipv4` before `web/ipv4`), so every map of instances
    /// keeps the order it had when keys were strings.
    fn cmp(&self, other: &InstanceKey) -> std::cmp::Ordering {
        self.text_bytes().cmp(other.text_bytes())
    }
}

impl PartialOrd for InstanceKey {
    fn partial_cmp(&self, other: &InstanceKey) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.family.as_key())
    }
}

/// A text that is not `name/family`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an instance key (name/ipv4 or name/ipv6)")]
pub struct BadInstanceKey(pub String);

impl FromStr for InstanceKey {
    type Err = BadInstanceKey;

    fn from_str(s: &str) -> Result<InstanceKey, BadInstanceKey> {
        s.rsplit_once('/')
            .and_then(|(name, f)| Some(InstanceKey::new(name, f.parse().ok()?)))
            .ok_or_else(|| BadInstanceKey(s.to_string()))
    }
}

impl Serialize for InstanceKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InstanceKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<InstanceKey, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One run of one instance in this agent. The engine numbers every start (a restart is a
/// new run), so the data plane, the ledger and the announcer tell an old run still handing
/// over from its successor under the same [`InstanceKey`]. Never zero: an address a previous
/// process left has no run at all (the ledger's holder is `None`), not a reserved number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct InstanceId(std::num::NonZeroU64);

impl InstanceId {
    /// The first run the engine starts.
    pub(crate) const FIRST: InstanceId = InstanceId(std::num::NonZeroU64::MIN);
    /// The greatest: the end of a range of runs (timers due by a time, any run).
    pub(crate) const LAST: InstanceId = InstanceId(std::num::NonZeroU64::MAX);

    /// The run after this one.
    pub(crate) fn next(self) -> InstanceId {
        InstanceId(self.0.saturating_add(1))
    }

    /// Run number `n` (tests name runs by number, from 1).
    #[cfg(test)]
    pub(crate) const fn nth(n: u64) -> InstanceId {
        match std::num::NonZeroU64::new(n) {
            Some(n) => InstanceId(n),
            None => panic!("runs are numbered from 1"),
        }
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::LowerHex for InstanceId {
    /// Short names built from a run (a standby link's `kvs` + hex).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0.get(), f)
    }
}

/// What moves a node's priority or puts it in FAULT, as named in its status entry
/// (`status.nodes[].checks[].name`) and in the `Failing` column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TrackerName {
    /// The node's own condition (cordoned, excluded, not in `activeNodes`): `node`.
    Node,
    /// The notify hooks' last outcome: `notify`.
    Notify,
    /// The link of the interface the instance runs on (down: FAULT): `interface`.
    Link,
    /// An address of the instance is someone else's on the node (FAULT until it goes):
    /// `address-conflict`.
    AddressConflict,
    /// A tracked interface: `interface:NAME`.
    Interface(String),
    /// A user's health check, by its name.
    Check(String),
}

impl TrackerName {
    /// The name of the node's own condition.
    pub(crate) const NODE: &'static str = "node";
    /// The name of the notify hooks' entry.
    pub(crate) const NOTIFY: &'static str = "notify";
    /// The name of the instance's own link.
    pub(crate) const LINK: &'static str = "interface";
    /// The name of an address conflict.
    pub(crate) const ADDRESS_CONFLICT: &'static str = "address-conflict";
    /// The prefix of tracked interfaces.
    pub(crate) const INTERFACE_PREFIX: &'static str = "interface:";

    /// A user's check name, unless it would read as one of the names the agent writes
    /// itself: the error says which and why.
    pub(crate) fn check(name: &str) -> Result<TrackerName, ReservedName> {
        match TrackerName::parse(name) {
            TrackerName::Check(n) => Ok(TrackerName::Check(n)),
            _ => Err(ReservedName(name.to_string())),
        }
    }

    /// Reads a name the agent wrote back (the controller reads the status entries).
    pub(crate) fn parse(name: &str) -> TrackerName {
        match name {
            TrackerName::NODE => TrackerName::Node,
            TrackerName::NOTIFY => TrackerName::Notify,
            TrackerName::LINK => TrackerName::Link,
            TrackerName::ADDRESS_CONFLICT => TrackerName::AddressConflict,
            _ => match name.strip_prefix(TrackerName::INTERFACE_PREFIX) {
                Some(interface) => TrackerName::Interface(interface.to_string()),
                None => TrackerName::Check(name.to_string()),
            },
        }
    }
}

impl fmt::Display for TrackerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrackerName::Node => f.write_str(TrackerName::NODE),
            TrackerName::Notify => f.write_str(TrackerName::NOTIFY),
            TrackerName::Link => f.write_str(TrackerName::LINK),
            TrackerName::AddressConflict => f.write_str(TrackerName::ADDRESS_CONFLICT),
            TrackerName::Interface(i) => write!(f, "{}{i}", TrackerName::INTERFACE_PREFIX),
            TrackerName::Check(c) => f.write_str(c),
        }
    }
}

/// A health check named like an entry the agent writes itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "name {0:?} is reserved: the agent reports the node's own condition as \"node\", notify \
     hooks as \"notify\", the instance's link as \"interface\", an address conflict as \
     \"address-conflict\" and tracked interfaces as \"interface:NAME\"; choose another name"
)]
pub(crate) struct ReservedName(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_text_forms_read_back() {
        for f in Family::ALL {
            assert_eq!(f.as_key().parse::<Family>(), Ok(f));
            assert_eq!(f.label().parse::<Family>(), Ok(f));
            assert_eq!(f.to_string(), f.label());
            assert_eq!(
                serde_json::to_string(&f).unwrap(),
                format!("\"{}\"", f.as_key())
            );
        }
        assert!("IPV4".parse::<Family>().is_err());
        assert!("4".parse::<Family>().is_err());
    }

    #[test]
    fn family_of_an_address() {
        assert_eq!(Family::of(&"192.0.2.1".parse().unwrap()), Family::V4);
        assert_eq!(Family::of(&"2001:db8::1".parse().unwrap()), Family::V6);
    }

    #[test]
    fn instance_keys_read_back() {
        let key = InstanceKey::new("web", Family::V6);
        let back: InstanceKey = key.to_string().parse().unwrap();
        assert_eq!(back.name(), "web");
        assert_eq!(back.family(), Family::V6);
        assert_eq!(back, key);
        assert!("bare".parse::<InstanceKey>().is_err());
        assert!("web/4".parse::<InstanceKey>().is_err());
    }

    #[test]
    fn instance_keys_use_the_family_key() {
        assert_eq!(InstanceKey::new("web", Family::V6).to_string(), "web/ipv6");
        assert_eq!(
            serde_json::to_string(&InstanceKey::new("web", Family::V4)).unwrap(),
            "\"web/ipv4\""
        );
        let map = std::collections::BTreeMap::from([(InstanceKey::new("web", Family::V4), 1)]);
        assert_eq!(serde_json::to_string(&map).unwrap(), r#"{"web/ipv4":1}"#);
        let back: InstanceKey = serde_json::from_str("\"web/ipv6\"").unwrap();
        assert_eq!(back, InstanceKey::new("web", Family::V6));
    }

    #[test]
    fn instance_keys_sort_as_their_text() {
        let mut keys = [
            InstanceKey::new("web", Family::V6),
            InstanceKey::new("web", Family::V4),
            InstanceKey::new("web-1", Family::V4),
            InstanceKey::new("web.a", Family::V4),
            InstanceKey::new("we", Family::V6),
        ];
        let mut texts: Vec<String> = keys.iter().map(ToString::to_string).collect();
        keys.sort();
        texts.sort();
        assert_eq!(
            keys.iter().map(ToString::to_string).collect::<Vec<_>>(),
            texts
        );
    }

    #[test]
    fn tracker_names_read_back() {
        for t in [
            TrackerName::Node,
            TrackerName::Notify,
            TrackerName::Link,
            TrackerName::AddressConflict,
            TrackerName::Interface("eth1".into()),
            TrackerName::Check("nginx".into()),
        ] {
            assert_eq!(TrackerName::parse(&t.to_string()), t);
        }
        assert_eq!(
            TrackerName::Interface("eth1".into()).to_string(),
            "interface:eth1"
        );
    }

    #[test]
    fn user_checks_cannot_take_reserved_names() {
        assert_eq!(
            TrackerName::check("nginx"),
            Ok(TrackerName::Check("nginx".into()))
        );
        // "interface" and "address-conflict" are the agent's own trackers of every instance:
        // a check of that name would overwrite one (and be overwritten).
        for name in [
            "node",
            "notify",
            "interface",
            "address-conflict",
            "interface:eth0",
        ] {
            let e = TrackerName::check(name).unwrap_err();
            assert!(e.to_string().contains("is reserved"), "{e}");
        }
        // Only the exact names: a check may still be called `nodes` or `notify-ok`.
        assert!(TrackerName::check("nodes").is_ok());
        assert!(TrackerName::check("notify-ok").is_ok());
    }
}
