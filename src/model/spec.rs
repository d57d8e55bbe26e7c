//! A `VirtualIP` spec → a validated [`ValidatedVirtualIp`] (the controller and the agent share
//! these rules). On one node it becomes per-family instances: [`super::resolved`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::address::{check_peer, check_virtual_address};
pub(crate) use super::field::FieldError;
use super::field::bounded;
use super::tracking::Tracking;
use crate::api::VirtualIpSpec;
use crate::ids::Family;
use crate::units::parse_duration;
use crate::vrrp::{Authentication, InstanceConfig, Version, VirtualAddress};

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
pub struct ValidatedVirtualIp {
    pub name: String,
    pub spec: VirtualIpSpec,
    pub version: Version,
    /// `None`: left to the controller (cluster mode, before resolution).
    pub vrid: Option<u8>,
    pub addresses: Vec<VirtualAddress>,
    pub advert_interval: Duration,
    pub max_learned_interval: Duration,
    pub preempt_delay: Duration,
    pub unicast_peers: Vec<IpAddr>,
    pub authentication: Authentication,
    pub garp: GarpConfig,
    /// Health checks, tracked interfaces, notify hooks.
    pub tracking: Tracking,
    /// Services spread over real servers by the master.
    pub virtual_servers: Vec<super::virtualserver::VirtualServer>,
    /// Addresses bound on an interface of their own (`ip/prefix dev IFACE`, keepalived's
    /// `dev`): the gateway of a two-armed director's back network, say. VRRP still runs on
    /// the VirtualIP's interface; each of these is tracked (weight 0).
    pub address_interfaces: BTreeMap<IpAddr, String>,
}

/// Whether the virtual router ID must be in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VridRule {
    /// Standalone files and resolved node configurations: 1 to 255, given.
    Required,
    /// A user's VirtualIP in a cluster: the controller allocates one when it is left out.
    Allocated,
}

/// Upper bounds on durations: beyond them a value is a typo, not a choice.
const MAX_PREEMPT_DELAY: Duration = Duration::from_secs(3600);
const MAX_GARP_DELAY: Duration = Duration::from_secs(3600);
const MIN_GARP_REFRESH: Duration = Duration::from_secs(1);
const MAX_GARP_REFRESH: Duration = Duration::from_secs(24 * 3600);

/// Validates one spec on its own (no node knowledge needed): the first problem.
pub(crate) fn validate(
    name: String,
    spec: VirtualIpSpec,
    rule: VridRule,
) -> Result<ValidatedVirtualIp, FieldError> {
    validate_all(name, spec, rule).map_err(|mut e| e.swap_remove(0))
}

/// The value of one check, its problem noted in `errs`.
fn noted<T>(errs: &mut Vec<FieldError>, r: Result<T, FieldError>) -> Option<T> {
    r.map_err(|e| errs.push(e)).ok()
}

/// Validates one spec on its own, finding every problem of its fields (in field order; never
/// empty when it fails). A field that fails is taken at its default for the checks after it.
pub(crate) fn validate_all(
    name: String,
    spec: VirtualIpSpec,
    rule: VridRule,
) -> Result<ValidatedVirtualIp, Vec<FieldError>> {
    let mut errs = Vec::new();
    let e = &mut errs;
    let version = noted(
        e,
        Version::try_from(spec.version).map_err(|x| ("spec.version", x)),
    );
    let vrid = noted(e, validate_vrid(spec.virtual_router_id, rule));
    let (addresses, address_interfaces) = match noted(e, validate_addresses(&spec)) {
        Some((a, i)) => (Some(a), i),
        None => (None, BTreeMap::new()),
    };
    if spec.interface.as_deref() == Some("lo") {
        e.push((
            "spec.interface",
            "\"lo\" is the loopback interface: VRRP needs a shared segment".into(),
        ));
    }
    let advert_interval = match &spec.advert_interval {
        Some(s) => noted(e, parse_duration(s).map_err(|x| ("spec.advertInterval", x))),
        None => Some(Duration::from_secs(1)),
    };
    let interval = advert_interval.unwrap_or(Duration::from_secs(1));
    let max_learned_interval = match &spec.max_learned_interval {
        Some(s) => noted(
            e,
            bounded(
                "spec.maxLearnedInterval",
                s,
                interval,
                Duration::from_millis(40_950),
            ),
        ),
        None => Some(interval),
    };
    let preempt_delay = match &spec.preempt_delay {
        Some(s) => noted(
            e,
            bounded("spec.preemptDelay", s, Duration::ZERO, MAX_PREEMPT_DELAY),
        ),
        None => Some(Duration::ZERO),
    };
    let unicast_peers = noted(e, validate_peers(&spec.unicast_peers));
    let authentication = noted(
        e,
        validate_authentication(spec.authentication.as_ref(), rule),
    );
    let garp = match &spec.garp {
        Some(g) => noted(e, validate_garp(g)),
        None => Some(GarpConfig::default()),
    };
    noted(e, check_priorities(&spec));
    let tracking = noted(
        e,
        super::tracking::validate(&spec, rule == VridRule::Required),
    );
    let virtual_servers = match &addresses {
        Some(a) => noted(
            e,
            super::virtualserver::validate(&spec, a, rule == VridRule::Allocated),
        ),
        None => Some(Vec::new()),
    };
    let (
        Some(version),
        Some(vrid),
        Some(addresses),
        Some(advert_interval),
        Some(max_learned_interval),
        Some(preempt_delay),
        Some(unicast_peers),
        Some(authentication),
        Some(garp),
        Some(tracking),
        Some(virtual_servers),
        true,
    ) = (
        version,
        vrid,
        addresses,
        advert_interval,
        max_learned_interval,
        preempt_delay,
        unicast_peers,
        authentication,
        garp,
        tracking,
        virtual_servers,
        errs.is_empty(),
    )
    else {
        return Err(errs);
    };
    let v = ValidatedVirtualIp {
        tracking,
        virtual_servers,
        name,
        version,
        vrid,
        addresses,
        advert_interval,
        max_learned_interval,
        preempt_delay,
        unicast_peers,
        authentication,
        garp,
        spec,
        address_interfaces,
    };
    // Everything the protocol core checks, per family. The primary address is a node's and
    // the VRID may be the controller's to choose: stand-ins that pass their own checks.
    for family in v.families() {
        let probe = v.instance_config(family, 100, placeholder(family));
        probe
            .validate()
            .map_err(|x| vec![(core_error_field(&x), x.to_string())])?;
    }
    Ok(v)
}

/// The virtual router ID: 1 to 255, or left to the controller where the rule allows.
fn validate_vrid(vrid: Option<u8>, rule: VridRule) -> Result<Option<u8>, FieldError> {
    match (vrid, rule) {
        (Some(0), _) => Err(("spec.virtualRouterID", "0 is reserved: use 1 to 255".into())),
        (None, VridRule::Required) => Err((
            "spec.virtualRouterID",
            "required in standalone mode: 1 to 255".into(),
        )),
        (v, _) => Ok(v),
    }
}

/// `addresses` then `excludedAddresses`, parsed and checked: at least one address, none listed
/// twice (across both lists), and no excluded address of a family with nothing to advertise.
type Addresses = (Vec<VirtualAddress>, BTreeMap<IpAddr, String>);

fn validate_addresses(spec: &VirtualIpSpec) -> Result<Addresses, FieldError> {
    if spec.addresses.is_empty() {
        return Err(("spec.addresses", "at least one address is required".into()));
    }
    let mut addresses = Vec::with_capacity(spec.addresses.len() + spec.excluded_addresses.len());
    let mut seen = std::collections::HashSet::new();
    let mut interfaces = BTreeMap::new();
    for (field, list) in [
        ("spec.addresses", spec.addresses.as_slice()),
        ("spec.excludedAddresses", spec.excluded_addresses.as_slice()),
    ] {
        for a in list {
            let (text, dev) = super::address::split_interface(a).map_err(|e| (field, e))?;
            let v: VirtualAddress = text.parse().map_err(|e| (field, e))?;
            if let Some(d) = dev.filter(|d| Some(*d) != spec.interface.as_deref()) {
                if d == "lo" {
                    return Err((
                        field,
                        format!(
                            "{a}: \"lo\" is the loopback interface: a virtual address is bound where it is reached"
                        ),
                    ));
                }
                interfaces.insert(v.address, d.to_string());
            }
            if !seen.insert(v.address) {
                return Err((field, format!("{a} is listed twice")));
            }
            check_virtual_address(&v).map_err(|e| (field, e))?;
            addresses.push(v);
        }
    }
    let (advertised, excluded) = addresses.split_at(spec.addresses.len());
    if let Some(x) = excluded
        .iter()
        .find(|x| !advertised.iter().any(|a| a.family() == x.family()))
    {
        return Err((
            "spec.excludedAddresses",
            format!(
                "{} has no {} address in spec.addresses to advertise: an advertisement lists at least one",
                x.address,
                x.family()
            ),
        ));
    }
    // VRRP runs on spec.interface, or on the interface of the first address that names
    // none: a family whose every address names one needs spec.interface.
    if spec.interface.is_none()
        && let Some(f) = advertised.iter().map(VirtualAddress::family).find(|f| {
            advertised
                .iter()
                .filter(|a| a.family() == *f)
                .all(|a| interfaces.contains_key(&a.address))
        })
    {
        return Err((
            "spec.addresses",
            format!(
                "every {f} address names an interface (dev): set spec.interface, where VRRP runs, or list one {f} address without dev"
            ),
        ));
    }
    Ok((addresses, interfaces))
}

/// `unicastPeers`: IP addresses a peer may have.
fn validate_peers(peers: &[String]) -> Result<Vec<IpAddr>, FieldError> {
    let mut unicast_peers = Vec::new();
    for p in peers {
        let peer = p
            .parse::<IpAddr>()
            .map_err(|_| ("spec.unicastPeers", format!("{p:?} is not an IP address")))?;
        check_peer(&peer).map_err(|e| ("spec.unicastPeers", e))?;
        unicast_peers.push(peer);
    }
    Ok(unicast_peers)
}

/// `authentication`: a password of 1 to 8 characters, or (cluster objects only) a Secret's,
/// which the controller reads and checks later.
fn validate_authentication(
    auth: Option<&crate::api::AuthenticationSpec>,
    rule: VridRule,
) -> Result<Authentication, FieldError> {
    Ok(match auth {
        None => Authentication::None,
        // A cluster object: the controller reads the Secret and checks the password then.
        Some(a) if a.password_secret_ref.is_some() && rule == VridRule::Allocated => {
            Authentication::password("secret")
        }
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
    })
}

/// `garp`: keepalived's defaults where a field is left out.
fn validate_garp(g: &crate::api::GarpSpec) -> Result<GarpConfig, FieldError> {
    let mut garp = GarpConfig::default();
    if let Some(d) = &g.master_delay {
        garp.delay = bounded("spec.garp.masterDelay", d, Duration::ZERO, MAX_GARP_DELAY)?;
    }
    if let Some(r) = g.master_repeat {
        if !(1..=100).contains(&r) {
            return Err(("spec.garp.masterRepeat", "must be 1 to 100".into()));
        }
        garp.repeat = r;
    }
    if let Some(r) = &g.master_refresh {
        let d = parse_duration(r).map_err(|e| ("spec.garp.masterRefresh", e))?;
        // "0s" turns it off, as leaving it out does.
        garp.refresh = if d.is_zero() {
            d
        } else {
            bounded(
                "spec.garp.masterRefresh",
                r,
                MIN_GARP_REFRESH,
                MAX_GARP_REFRESH,
            )?
        };
    }
    Ok(garp)
}

/// No priority (per node or default) is 0, the one a leaving master sends.
fn check_priorities(spec: &VirtualIpSpec) -> Result<(), FieldError> {
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
    Ok(())
}

/// The spec field a protocol core refusal is about.
fn core_error_field(e: &crate::vrrp::InstanceConfigError) -> &'static str {
    use crate::vrrp::InstanceConfigError as E;
    match e {
        E::V2Interval(_) | E::V3Interval(_) => "spec.advertInterval",
        E::V3Authentication => "spec.authentication",
        E::V2Ipv6(_) => "spec.version",
        E::PeerFamily(..) => "spec.unicastPeers",
        _ => "spec",
    }
}

fn placeholder(family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::from([192, 0, 2, 1]),
        Family::V6 => "fe80::1".parse().expect("literal"),
    }
}

impl ValidatedVirtualIp {
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

    pub(super) fn instance_config(
        &self,
        family: Family,
        priority: u8,
        primary: IpAddr,
    ) -> InstanceConfig {
        let addresses: Vec<VirtualAddress> = self
            .addresses
            .iter()
            .copied()
            .filter(|a| a.family() == family)
            .collect();
        let mut c = InstanceConfig::new(self.vrid.unwrap_or(1), primary, addresses);
        // `addresses` come first, then the excluded ones: only the first are advertised.
        c.advertised = self.addresses[..self.spec.addresses.len()]
            .iter()
            .filter(|a| a.family() == family)
            .count();
        c.version = self.version;
        c.max_learned_interval = Some(self.max_learned_interval);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> VirtualIpSpec {
        yaml_serde::from_str(yaml).unwrap()
    }

    #[test]
    fn a_vrid_is_1_to_255_and_required_only_in_standalone_mode() {
        assert_eq!(validate_vrid(Some(7), VridRule::Required), Ok(Some(7)));
        assert_eq!(validate_vrid(None, VridRule::Allocated), Ok(None));
        let (field, why) = validate_vrid(None, VridRule::Required).unwrap_err();
        assert_eq!(
            (field, why.as_str()),
            (
                "spec.virtualRouterID",
                "required in standalone mode: 1 to 255"
            )
        );
        let (_, why) = validate_vrid(Some(0), VridRule::Allocated).unwrap_err();
        assert_eq!(why, "0 is reserved: use 1 to 255");
    }

    #[test]
    fn addresses_come_first_then_the_excluded_ones_each_once() {
        let s = spec("addresses: [192.0.2.10/24]\nexcludedAddresses: [192.0.2.11/24]");
        let (a, _) = validate_addresses(&s).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].address.to_string(), "192.0.2.11");
        let s = spec("addresses: [192.0.2.10/24]\nexcludedAddresses: [192.0.2.10/24]");
        assert_eq!(
            validate_addresses(&s),
            Err((
                "spec.excludedAddresses",
                "192.0.2.10/24 is listed twice".into()
            ))
        );
        let s = spec("addresses: [192.0.2.10/24]\nexcludedAddresses: [2001:db8::1/64]");
        let (field, why) = validate_addresses(&s).unwrap_err();
        assert_eq!(field, "spec.excludedAddresses");
        assert!(why.contains("has no"), "{why}");
        let (field, _) = validate_addresses(&spec("addresses: []")).unwrap_err();
        assert_eq!(field, "spec.addresses");
    }

    #[test]
    fn an_address_may_name_its_interface_as_keepalived_writes_it() {
        let s = spec("addresses: [198.51.100.50/24, 203.0.113.1/24 dev eth1]");
        let (a, i) = validate_addresses(&s).unwrap();
        assert_eq!(a[1].to_string(), "203.0.113.1/24");
        assert_eq!(i.len(), 1);
        assert_eq!(i[&a[1].address], "eth1");
        // Naming spec.interface itself names nothing more.
        let s = spec("interface: eth0\naddresses: [198.51.100.50/24 dev eth0]");
        assert!(validate_addresses(&s).unwrap().1.is_empty());
        // VRRP needs an interface of its own for each family.
        let (_, why) =
            validate_addresses(&spec("addresses: [203.0.113.1/24 dev eth1]")).unwrap_err();
        assert!(why.contains("set spec.interface"), "{why}");
        let s = spec("interface: eth0\naddresses: [203.0.113.1/24 dev eth1]");
        assert!(validate_addresses(&s).is_ok());
        for bad in [
            "198.51.100.50/24 dev ",
            "198.51.100.50/24 dev a/b",
            "198.51.100.50/24 dev averyveryverylongname",
            "198.51.100.50/24 dev lo",
        ] {
            let s = spec(&format!("addresses: [198.51.100.51/24, \"{bad}\"]"));
            assert!(validate_addresses(&s).is_err(), "{bad}");
        }
    }

    #[test]
    fn peers_are_ip_addresses() {
        assert_eq!(
            validate_peers(&["192.0.2.2".into()]),
            Ok(vec!["192.0.2.2".parse().unwrap()])
        );
        assert_eq!(
            validate_peers(&["peer-1".into()]),
            Err((
                "spec.unicastPeers",
                "\"peer-1\" is not an IP address".into()
            ))
        );
    }

    #[test]
    fn a_password_is_given_or_a_secret_in_a_cluster() {
        let auth =
            |yaml: &str| -> crate::api::AuthenticationSpec { yaml_serde::from_str(yaml).unwrap() };
        assert_eq!(
            validate_authentication(None, VridRule::Required),
            Ok(Authentication::None)
        );
        assert_eq!(
            validate_authentication(Some(&auth("password: secret1")), VridRule::Required),
            Ok(Authentication::password("secret1"))
        );
        let secret = auth("passwordSecretRef: {namespace: n, name: s, key: k}");
        assert!(validate_authentication(Some(&secret), VridRule::Allocated).is_ok());
        let (field, _) = validate_authentication(Some(&secret), VridRule::Required).unwrap_err();
        assert_eq!(field, "spec.authentication.passwordSecretRef");
        for (yaml, why) in [
            ("{}", "required when authentication is set"),
            ("password: ninechars", "must be 1 to 8 characters"),
        ] {
            assert_eq!(
                validate_authentication(Some(&auth(yaml)), VridRule::Required),
                Err(("spec.authentication.password", why.into()))
            );
        }
    }

    #[test]
    fn garp_keeps_keepalived_defaults_and_0s_turns_refresh_off() {
        let garp = |yaml: &str| validate_garp(&yaml_serde::from_str(yaml).unwrap());
        assert_eq!(garp("{}"), Ok(GarpConfig::default()));
        let g = garp("{masterDelay: 0s, masterRepeat: 2, masterRefresh: 1m}").unwrap();
        assert_eq!(
            g,
            GarpConfig {
                repeat: 2,
                delay: Duration::ZERO,
                refresh: Duration::from_secs(60)
            }
        );
        assert_eq!(garp("{masterRefresh: 0s}").unwrap().refresh, Duration::ZERO);
        assert_eq!(
            garp("{masterRefresh: 500ms}").unwrap_err().0,
            "spec.garp.masterRefresh"
        );
        assert_eq!(
            garp("{masterRepeat: 0}"),
            Err(("spec.garp.masterRepeat", "must be 1 to 100".into()))
        );
    }

    #[test]
    fn priority_0_is_refused_per_node_and_as_the_default() {
        assert_eq!(check_priorities(&spec("addresses: []")), Ok(()));
        let s = spec("addresses: []\npriorities: [{node: a, priority: 0}]");
        assert_eq!(check_priorities(&s).unwrap_err().0, "spec.priorities");
        let s = spec("addresses: []\ndefaultPriority: 0");
        assert_eq!(check_priorities(&s).unwrap_err().0, "spec.defaultPriority");
    }

    #[test]
    fn core_refusals_name_the_field_they_are_about() {
        use crate::vrrp::InstanceConfigError as E;
        let second = Duration::from_secs(1);
        assert_eq!(
            core_error_field(&E::V2Interval(second)),
            "spec.advertInterval"
        );
        assert_eq!(
            core_error_field(&E::V3Interval(second)),
            "spec.advertInterval"
        );
        assert_eq!(
            core_error_field(&E::V3Authentication),
            "spec.authentication"
        );
        assert_eq!(core_error_field(&E::NoAddresses), "spec");
    }
}
