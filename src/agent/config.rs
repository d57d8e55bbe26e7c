//! The standalone agent's configuration: `VirtualIP` YAML documents, validated as a whole
//! (a bad file never half-configures the agent), then resolved for one node against its
//! interfaces into per-instance [`InstanceConfig`]s.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::api::{API_VERSION, KIND, VirtualIpDocument, VirtualIpSpec};
use crate::net::netlink::{Address, Link};
use crate::vrrp::config::parse_duration;
use crate::vrrp::{Authentication, Family, InstanceConfig, Version, VirtualAddress};

/// What is wrong, where: document number (1-based), object name when known, field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub document: usize,
    pub name: Option<String>,
    pub field: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if let Some(n) = &self.name {
            write!(f, " ({n:?})")?;
        }
        if !self.field.is_empty() {
            write!(f, ", field {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Gratuitous ARP / NA timing of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarpConfig {
    /// Announcements per burst.
    pub repeat: u32,
    /// Second burst after becoming master; zero: none.
    pub delay: Duration,
    /// Periodic re-announcement while master; zero: none.
    pub refresh: Duration,
}

impl Default for GarpConfig {
    fn default() -> Self {
        // keepalived's defaults: garp_master_repeat 5, garp_master_delay 5 s, no refresh.
        GarpConfig {
            repeat: 5,
            delay: Duration::from_secs(5),
            refresh: Duration::ZERO,
        }
    }
}

/// A validated `VirtualIP`, not yet bound to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualIp {
    pub name: String,
    pub spec: VirtualIpSpec,
    pub version: Version,
    pub vrid: u8,
    pub addresses: Vec<VirtualAddress>,
    pub advert_interval: Duration,
    pub preempt_delay: Duration,
    pub unicast_peers: Vec<IpAddr>,
    pub authentication: Authentication,
    pub garp: GarpConfig,
}

/// One VRRP instance for this node: a `VirtualIP` and one address family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedInstance {
    /// `name/ipv4` or `name/ipv6`.
    pub key: String,
    pub name: String,
    pub interface: String,
    pub ifindex: u32,
    pub config: InstanceConfig,
    pub virtual_mac: bool,
    pub garp: GarpConfig,
}

/// Parses and validates every document of a file. Any error rejects the whole file.
pub fn parse(text: &str) -> Result<Vec<VirtualIp>, ConfigError> {
    let mut out: Vec<VirtualIp> = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let value = serde_yaml::Value::deserialize(de).map_err(|e| ConfigError {
            document,
            name: None,
            field: String::new(),
            reason: format!("not YAML: {e}"),
        })?;
        if value.is_null() {
            continue; // an empty document (e.g. a trailing ---)
        }
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .map(String::from);
        let err = |field: &str, reason: String| ConfigError {
            document,
            name: name.clone(),
            field: field.to_string(),
            reason,
        };
        // The CRD schema lets the API server reject unknown fields; a file has no server, so
        // collect them here: a misspelt field must not silently fall back to a default.
        let mut unknown = Vec::new();
        let doc: VirtualIpDocument =
            serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
                value.clone(),
                &mut |path: serde_ignored::Path<'_>| unknown.push(path.to_string()),
            ))
            .map_err(|e| {
                let path = e.path().to_string();
                err(
                    if path == "." { "" } else { &path },
                    e.into_inner().to_string(),
                )
            })?;
        if let Some(path) = unknown.first() {
            let field = path.rsplit('.').next().unwrap_or(path);
            return Err(err(
                path,
                format!("unknown field `{field}`: check the spelling"),
            ));
        }
        if doc.api_version != API_VERSION {
            return Err(err(
                "apiVersion",
                format!("must be {API_VERSION}, not {:?}", doc.api_version),
            ));
        }
        if doc.kind != KIND {
            return Err(err("kind", format!("must be {KIND}, not {:?}", doc.kind)));
        }
        if doc.metadata.name.is_empty() {
            return Err(err("metadata.name", "must not be empty".into()));
        }
        if out.iter().any(|v| v.name == doc.metadata.name) {
            return Err(err(
                "metadata.name",
                format!("{:?} is defined twice", doc.metadata.name),
            ));
        }
        let v = validate(doc.metadata.name.clone(), doc.spec).map_err(|(f, r)| err(f, r))?;
        if let Some(other) = out.iter().find(|o| {
            o.vrid == v.vrid && o.spec.interface == v.spec.interface && shares_family(o, &v)
        }) {
            return Err(err(
                "spec.virtualRouterID",
                format!(
                    "{} is already used by {:?} on the same interface",
                    v.vrid, other.name
                ),
            ));
        }
        out.push(v);
    }
    Ok(out)
}

fn shares_family(a: &VirtualIp, b: &VirtualIp) -> bool {
    a.addresses
        .iter()
        .any(|x| b.addresses.iter().any(|y| x.family() == y.family()))
}

type FieldError = (&'static str, String);

/// Validates one spec on its own (no node knowledge needed).
pub fn validate(name: String, spec: VirtualIpSpec) -> Result<VirtualIp, FieldError> {
    let version = Version::try_from(spec.version).map_err(|e| ("spec.version", e))?;
    let vrid = match spec.virtual_router_id {
        Some(0) | None => {
            return Err((
                "spec.virtualRouterID",
                "required in standalone mode: 1 to 255".into(),
            ));
        }
        Some(v) => v,
    };
    if spec.addresses.is_empty() {
        return Err(("spec.addresses", "at least one address is required".into()));
    }
    let mut addresses = Vec::new();
    for a in &spec.addresses {
        let v: VirtualAddress = a.parse().map_err(|e| ("spec.addresses", e))?;
        if addresses.contains(&v) {
            return Err(("spec.addresses", format!("{a} is listed twice")));
        }
        addresses.push(v);
    }
    let advert_interval = match &spec.advert_interval {
        Some(s) => parse_duration(s).map_err(|e| ("spec.advertInterval", e))?,
        None => Duration::from_secs(1),
    };
    let preempt_delay = match &spec.preempt_delay {
        Some(s) => parse_duration(s).map_err(|e| ("spec.preemptDelay", e))?,
        None => Duration::ZERO,
    };
    let mut unicast_peers = Vec::new();
    for p in &spec.unicast_peers {
        unicast_peers.push(
            p.parse::<IpAddr>()
                .map_err(|_| ("spec.unicastPeers", format!("{p:?} is not an IP address")))?,
        );
    }
    let authentication = match &spec.authentication {
        None => Authentication::None,
        Some(a) if a.password_secret_ref.is_some() => {
            return Err((
                "spec.authentication.passwordSecretRef",
                "Secrets exist only in a cluster: in standalone mode give the password itself"
                    .into(),
            ));
        }
        Some(a) => match &a.password {
            None => {
                return Err((
                    "spec.authentication.password",
                    "required when authentication is set".into(),
                ));
            }
            Some(p) if p.is_empty() || p.len() > 8 => {
                return Err((
                    "spec.authentication.password",
                    "must be 1 to 8 characters".into(),
                ));
            }
            Some(p) => Authentication::password(p),
        },
    };
    let mut garp = GarpConfig::default();
    if let Some(g) = &spec.garp {
        if let Some(d) = &g.master_delay {
            garp.delay = parse_duration(d).map_err(|e| ("spec.garp.masterDelay", e))?;
        }
        if let Some(r) = g.master_repeat {
            if !(1..=100).contains(&r) {
                return Err(("spec.garp.masterRepeat", "must be 1 to 100".into()));
            }
            garp.repeat = r;
        }
        if let Some(r) = &g.master_refresh {
            garp.refresh = parse_duration(r).map_err(|e| ("spec.garp.masterRefresh", e))?;
        }
    }
    for (node_priority, field) in spec
        .priorities
        .iter()
        .map(|p| (p.priority, "spec.priorities"))
        .chain([(spec.default_priority, "spec.defaultPriority")])
    {
        if node_priority == 0 {
            return Err((
                field,
                "priority 0 is reserved for a master leaving: use 1 to 255".into(),
            ));
        }
    }
    let v = VirtualIp {
        name,
        version,
        vrid,
        addresses,
        advert_interval,
        preempt_delay,
        unicast_peers,
        authentication,
        garp,
        spec,
    };
    // Everything the protocol core checks, per family, with a stand-in primary address.
    for family in v.families() {
        let probe = v.instance_config(family, 100, placeholder(family));
        probe.validate().map_err(|e| {
            let field = match e {
                crate::vrrp::ConfigError::V2Interval(_)
                | crate::vrrp::ConfigError::V3Interval(_) => "spec.advertInterval",
                crate::vrrp::ConfigError::V3Authentication => "spec.authentication",
                crate::vrrp::ConfigError::V2Ipv6(_) => "spec.version",
                crate::vrrp::ConfigError::PeerFamily(..) => "spec.unicastPeers",
                _ => "spec",
            };
            (field, e.to_string())
        })?;
    }
    Ok(v)
}

fn placeholder(family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::from([192, 0, 2, 1]),
        Family::V6 => "fe80::1".parse().expect("literal"),
    }
}

impl VirtualIp {
    /// The address families present, IPv4 first.
    pub fn families(&self) -> Vec<Family> {
        let mut f: Vec<Family> = self.addresses.iter().map(VirtualAddress::family).collect();
        f.sort();
        f.dedup();
        f
    }

    pub fn priority_of(&self, node: &str) -> u8 {
        self.spec
            .priorities
            .iter()
            .find(|p| p.node == node)
            .map(|p| p.priority)
            .unwrap_or(self.spec.default_priority)
    }

    fn instance_config(&self, family: Family, priority: u8, primary: IpAddr) -> InstanceConfig {
        let addresses: Vec<VirtualAddress> = self
            .addresses
            .iter()
            .copied()
            .filter(|a| a.family() == family)
            .collect();
        let mut c = InstanceConfig::new(self.vrid, primary, addresses);
        c.version = self.version;
        c.priority = priority;
        c.advert_interval = self.advert_interval;
        c.preempt = self.spec.preempt;
        c.preempt_delay = self.preempt_delay;
        c.accept_mode = self.spec.accept_mode;
        c.authentication = self.authentication;
        c.unicast_peers = self
            .unicast_peers
            .iter()
            .copied()
            .filter(|p| Family::of(p) == family)
            .collect();
        c
    }

    /// This node's instances, against its interfaces and addresses.
    pub fn resolve(
        &self,
        node: &str,
        links: &[Link],
        addrs: &[Address],
    ) -> Result<Vec<ResolvedInstance>, String> {
        let mut out = Vec::new();
        for family in self.families() {
            let first = *self
                .addresses
                .iter()
                .find(|a| a.family() == family)
                .expect("family present");
            // Our own VIPs are never a primary address, nor a reason to pick an interface.
            let own: Vec<&Address> = addrs
                .iter()
                .filter(|a| !a.is_ours() && !self.addresses.iter().any(|v| v.address == a.address))
                .collect();
            let link = match &self.spec.interface {
                Some(name) => links
                    .iter()
                    .find(|l| &l.name == name)
                    .ok_or_else(|| format!("{}: interface {name:?} does not exist on node {node}", self.name))?,
                None => own
                    .iter()
                    .find(|a| same_subnet(&a.address, &first.address, first.prefix_len))
                    .and_then(|a| links.iter().find(|l| l.index == a.index))
                    .ok_or_else(|| {
                        format!(
                            "{}: no interface on node {node} has an address in {}/{}: set spec.interface",
                            self.name, first.address, first.prefix_len
                        )
                    })?,
            };
            let on_link: Vec<&&Address> = own.iter().filter(|a| a.index == link.index).collect();
            let primary = match family {
                Family::V4 => on_link
                    .iter()
                    .filter(|a| a.address.is_ipv4())
                    .min_by_key(|a| !same_subnet(&a.address, &first.address, first.prefix_len))
                    .map(|a| a.address),
                // RFC 5798 §5.1.2.1: IPv6 advertisements come from the link-local address.
                Family::V6 => on_link
                    .iter()
                    .find(|a| matches!(a.address, IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80))
                    .map(|a| a.address),
            }
            .ok_or_else(|| format!("{}: interface {} has no {family} address to send from", self.name, link.name))?;
            let mut config = self.instance_config(family, self.priority_of(node), primary);
            config.mtu = link.mtu as usize;
            // One file serves every node: a node is not its own peer.
            config
                .unicast_peers
                .retain(|p| !addrs.iter().any(|a| a.address == *p));
            config
                .validate()
                .map_err(|e| format!("{}: {e}", self.name))?;
            out.push(ResolvedInstance {
                key: format!("{}/{}", self.name, family_label(family)),
                name: self.name.clone(),
                interface: link.name.clone(),
                ifindex: link.index,
                config,
                virtual_mac: self.spec.virtual_mac,
                garp: self.garp,
            });
        }
        Ok(out)
    }
}

pub fn family_label(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

fn same_subnet(a: &IpAddr, b: &IpAddr, prefix: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            u32::from(*a) & mask == u32::from(*b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            u128::from(*a) & mask == u128::from(*b) & mask
        }
        _ => false,
    }
}

/// Resolves every `VirtualIP` for `node`; any failure rejects the whole set.
pub fn resolve_all(
    vips: &[VirtualIp],
    node: &str,
    links: &[Link],
    addrs: &[Address],
) -> Result<BTreeMap<String, ResolvedInstance>, String> {
    let mut out = BTreeMap::new();
    for v in vips {
        for r in v.resolve(node, links, addrs)? {
            out.insert(r.key.clone(), r);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
apiVersion: kube-vrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: web}
spec:
  addresses: ["198.51.100.50/24", "2001:db8:1::50/64"]
  virtualRouterID: 51
  advertInterval: 100ms
  priorities: [{node: n1, priority: 200}]
---
apiVersion: kube-vrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: legacy}
spec:
  addresses: ["198.51.100.60/24"]
  virtualRouterID: 52
  version: 2
  authentication: {password: s3cret}
"#;

    fn links() -> Vec<Link> {
        vec![
            Link {
                index: 1,
                name: "lo".into(),
                mac: None,
                mtu: 65536,
                up: true,
                parent: None,
            },
            Link {
                index: 2,
                name: "eth0".into(),
                mac: Some([2, 0, 0, 0, 0, 1]),
                mtu: 1500,
                up: true,
                parent: None,
            },
        ]
    }

    fn addrs() -> Vec<Address> {
        let a = |index, s: &str, prefix_len, proto| Address {
            index,
            address: s.parse().unwrap(),
            prefix_len,
            proto,
        };
        vec![
            a(1, "127.0.0.1", 8, None),
            a(
                2,
                "198.51.100.50",
                24,
                Some(crate::net::netlink::ADDRESS_PROTO),
            ), // a stale VIP of ours
            a(2, "198.51.100.11", 24, None),
            a(2, "2001:db8:1::11", 64, None),
            a(2, "fe80::1", 64, None),
        ]
    }

    #[test]
    fn parses_and_resolves_for_a_node() {
        let vips = parse(GOOD).unwrap();
        assert_eq!(vips.len(), 2);
        let all = resolve_all(&vips, "n1", &links(), &addrs()).unwrap();
        assert_eq!(
            all.keys().collect::<Vec<_>>(),
            vec!["legacy/ipv4", "web/ipv4", "web/ipv6"]
        );
        let w4 = &all["web/ipv4"];
        assert_eq!((w4.interface.as_str(), w4.config.priority), ("eth0", 200));
        assert_eq!(
            w4.config.primary_address,
            "198.51.100.11".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            all["web/ipv6"].config.primary_address,
            "fe80::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(all["legacy/ipv4"].config.priority, 100);
        assert_eq!(
            all["legacy/ipv4"].config.authentication,
            Authentication::password("s3cret")
        );
    }

    fn error_of(yaml: &str) -> String {
        parse(yaml).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_document_field_and_reason() {
        let bad = GOOD.replace("advertInterval: 100ms", "advertInterval: 100");
        assert_eq!(
            error_of(&bad),
            "document 1 (\"web\"), field spec.advertInterval: \"100\": missing unit (use h, m, s, ms, us or ns)"
        );
        let bad = GOOD.replace("version: 2", "version: 2\n  advertInterval: 500ms");
        assert!(
            error_of(&bad)
                .starts_with("document 2 (\"legacy\"), field spec.advertInterval: VRRPv2"),
            "{}",
            error_of(&bad)
        );
        let bad = GOOD.replace("priority: 200", "priority: 300");
        assert!(
            error_of(&bad).contains("field spec.priorities[0].priority"),
            "{}",
            error_of(&bad)
        );
        let bad = GOOD.replace("virtualRouterID: 52", "virtualRouterID: 51");
        assert!(
            error_of(&bad).contains("51 is already used by \"web\""),
            "{}",
            error_of(&bad)
        );
        let bad = GOOD.replace("198.51.100.60/24", "198.51.100.600/24");
        assert!(
            error_of(&bad)
                .contains("field spec.addresses: \"198.51.100.600/24\" is not an IP address")
        );
        let bad = GOOD.replace("virtualRouterID: 51", "virtualRouterId: 51");
        assert!(
            error_of(&bad).contains("unknown field `virtualRouterId`"),
            "{}",
            error_of(&bad)
        );
        let bad = GOOD.replace(
            "kind: VirtualIP\nmetadata: {name: legacy}",
            "kind: VirtualIp\nmetadata: {name: legacy}",
        );
        assert!(error_of(&bad).contains("document 2 (\"legacy\"), field kind"));
        let bad = GOOD.replace("version: 2", "version: 3");
        assert!(error_of(&bad).contains("authentication exists only in VRRPv2"));
        let bad = GOOD.replace(
            "password: s3cret",
            "passwordSecretRef: {name: vrrp, namespace: kube-system, key: password}",
        );
        assert!(error_of(&bad).contains(
            "field spec.authentication.passwordSecretRef: Secrets exist only in a cluster"
        ));
        let bad = GOOD.replace("password: s3cret", "password: waytoolongpassword");
        assert!(error_of(&bad).contains("1 to 8 characters"));
    }

    #[test]
    fn resolution_errors_say_what_to_set() {
        let vips = parse(&GOOD.replace("198.51.100.60/24", "203.0.113.60/24")).unwrap();
        let e = resolve_all(&vips, "n1", &links(), &addrs()).unwrap_err();
        assert!(
            e.contains(
                "no interface on node n1 has an address in 203.0.113.60/24: set spec.interface"
            ),
            "{e}"
        );
        let vips = parse(&GOOD.replace(
            "virtualRouterID: 52",
            "virtualRouterID: 52\n  interface: eth9",
        ))
        .unwrap();
        let e = resolve_all(&vips, "n1", &links(), &addrs()).unwrap_err();
        assert!(e.contains("interface \"eth9\" does not exist"), "{e}");
    }
}
