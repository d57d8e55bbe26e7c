//! Virtual servers of a `VirtualIP` spec, validated (the same rules for the standalone file,
//! the agent in a cluster and `check`). Pure; what the director does with them is
//! [`crate::director`].

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::field::{FieldError, bounded};
use super::tracking::{Check, CheckKind, HttpCheck, MAX_INTERVAL, MIN_INTERVAL, MIN_TIMEOUT, Tls};
use crate::api::{
    Forwarding, Protocol, RealServerCheckSpec, Scheduler, Scheme, VirtualIpSpec, VirtualServerSpec,
};
use crate::vrrp::VirtualAddress;

const FIELD: &str = "spec.virtualServers";
pub const MAX_WEIGHT: u32 = 1000;
const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(5);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_RETRY: u32 = 1;
const DEFAULT_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(1);

/// One validated virtual server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServer {
    pub address: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    pub scheduler: Scheduler,
    pub forwarding: Forwarding,
    pub reals: Vec<RealServer>,
    pub sorry: Option<SocketAddr>,
    pub inhibit_on_failure: bool,
    /// keepalived `persistence_timeout`: a client keeps its real server this long after its
    /// last new connection.
    pub persistence: Option<Duration>,
    /// Real servers may be the director's own addresses.
    pub allow_node_addresses: bool,
}

/// One validated real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    pub addr: SocketAddr,
    pub weight: u32,
    pub check: Option<RealCheck>,
    /// Its own `inhibitOnFailure`; none: the virtual server's.
    pub inhibit: Option<bool>,
}

/// A real server's check: the tracker check model (interval = `delayLoop`, timeout =
/// `connectTimeout`, fall = `retry` + 1, rise 1) and the wait between retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealCheck {
    pub check: Check,
    pub retry_delay: Duration,
}

/// What names a virtual server in the status and metrics: `198.51.100.50:80/TCP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub addr: SocketAddr,
    pub protocol: Protocol,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.protocol)
    }
}

impl std::str::FromStr for ServiceKey {
    type Err = String;

    /// Its `Display` form read back (`198.51.100.50:80/TCP`, `[2001:db8::50]:53/UDP`).
    fn from_str(s: &str) -> Result<ServiceKey, String> {
        let (addr, protocol) = s
            .rsplit_once('/')
            .ok_or_else(|| format!("{s:?} is not ADDRESS:PORT/PROTOCOL"))?;
        Ok(ServiceKey {
            addr: addr.parse().map_err(|e| format!("{s:?}: {e}"))?,
            protocol: protocol.parse()?,
        })
    }
}

impl VirtualServer {
    pub fn key(&self) -> ServiceKey {
        ServiceKey {
            addr: SocketAddr::new(self.address, self.port),
            protocol: self.protocol,
        }
    }
}

/// Validates the virtual servers of a spec whose addresses are `addresses` (already
/// validated). `cluster`: a user's object in a cluster, where the controller turns
/// `realServerNodes` into real servers; elsewhere (a standalone file, a node's resolved
/// configuration) there are no Nodes to select.
pub fn validate(
    spec: &VirtualIpSpec,
    addresses: &[VirtualAddress],
    cluster: bool,
) -> Result<Vec<VirtualServer>, FieldError> {
    let mut out: Vec<VirtualServer> = Vec::new();
    for (i, vs) in spec.virtual_servers.iter().enumerate() {
        let v = one(vs, addresses)
            .and_then(|v| {
                real_server_nodes(vs, cluster)?;
                Ok(v)
            })
            .map_err(|e| (FIELD, format!("[{i}] {e}")))?;
        if let Some(o) = out.iter().find(|o| o.key() == v.key()) {
            return Err((FIELD, format!("[{i}] {} is listed twice", o.key())));
        }
        out.push(v);
    }
    Ok(out)
}

/// `realServerNodes`: only in a cluster, with a port and weight in range, and (direct routing)
/// a check.
fn real_server_nodes(vs: &VirtualServerSpec, cluster: bool) -> Result<(), String> {
    let Some(n) = &vs.real_server_nodes else {
        return Ok(());
    };
    let name = format!("{}:{}", vs.address, vs.port);
    if !cluster {
        return Err(format!(
            "{name}: realServerNodes: Nodes exist only in a cluster: in standalone mode (a static pod too) list the nodes' addresses in realServers"
        ));
    }
    if n.port == Some(0) {
        return Err(format!("{name}: realServerNodes.port: use 1 to 65535"));
    }
    if vs.forwarding == Some(Forwarding::DirectRouting) {
        let port = n.port.unwrap_or(vs.port);
        direct_routing(
            &format!("{name}: realServerNodes"),
            vs.port,
            port,
            vs.check.is_some(),
        )?;
    }
    match n.weight {
        Some(w) if w > MAX_WEIGHT => Err(format!(
            "{name}: realServerNodes.weight: {w} is out of range: use 0 to {MAX_WEIGHT}"
        )),
        _ => Ok(()),
    }
}

/// Direct routing's rules, the one place they are written: the packet reaches the real
/// server unchanged, so on the virtual server's own port, and the director learns the real
/// server's MAC address from its check, so it needs one (a sorry server is sent to as it
/// is). `what` names the server in the error.
fn direct_routing(what: &str, vs_port: u16, port: u16, checked: bool) -> Result<(), String> {
    if port != vs_port {
        return Err(format!(
            "{what}: direct routing cannot change the port: use {vs_port}"
        ));
    }
    if !checked {
        return Err(format!(
            "{what}: direct routing needs a check (the director learns each real server's MAC address from it)"
        ));
    }
    Ok(())
}

fn ip(what: &str, text: &str) -> Result<IpAddr, String> {
    text.parse()
        .map_err(|_| format!("{what} {text:?} is not an IP address"))
}

fn one(vs: &VirtualServerSpec, addresses: &[VirtualAddress]) -> Result<VirtualServer, String> {
    let address = ip("address", &vs.address)?;
    if !addresses.iter().any(|a| a.address == address) {
        return Err(format!(
            "address {address} is not one of spec.addresses: a virtual server is on the VirtualIP's own address"
        ));
    }
    if vs.port == 0 {
        return Err("port: use 1 to 65535".into());
    }
    let name = format!("{}", SocketAddr::new(address, vs.port));
    let forwarding = vs.forwarding.unwrap_or_default();
    let dr = forwarding == Forwarding::DirectRouting;
    let default_check = vs
        .check
        .as_ref()
        .map(|c| real_check(c, &name))
        .transpose()?;
    let mut reals: Vec<RealServer> = Vec::new();
    let mut seen = BTreeSet::new();
    for (j, r) in vs.real_servers.iter().enumerate() {
        let a = ip(&format!("{name}: real server {j}: address"), &r.address)?;
        if a.is_ipv4() != address.is_ipv4() {
            return Err(format!(
                "{name}: real server {a} is of the other address family"
            ));
        }
        if let Some(why) = node_only(a) {
            return Err(format!("{name}: real server {a} is {why}"));
        }
        if a == address || addresses.iter().any(|v| v.address == a) {
            return Err(format!(
                "{name}: real server {a} is one of the VirtualIP's own addresses"
            ));
        }
        let addr = SocketAddr::new(a, r.port_on(vs.port));
        if addr.port() == 0 {
            return Err(format!("{name}: real server {a}: port: use 1 to 65535"));
        }
        if !seen.insert(addr) {
            return Err(format!("{name}: real server {addr} is listed twice"));
        }
        if dr {
            let checked = r.check.is_some() || vs.check.is_some();
            direct_routing(
                &format!("{name}: real server {addr}"),
                vs.port,
                addr.port(),
                checked,
            )?;
        }
        let weight = r.weight.unwrap_or(1);
        if weight > MAX_WEIGHT {
            return Err(format!(
                "{name}: real server {addr}: weight {weight} is out of range: use 0 to {MAX_WEIGHT}"
            ));
        }
        let check = match &r.check {
            Some(c) => Some(real_check(c, &name)?),
            None => default_check.clone(),
        }
        .map(|c| c.aimed_at(addr));
        reals.push(RealServer {
            addr,
            weight,
            check,
            inhibit: r.inhibit_on_failure,
        });
    }
    let sorry = match &vs.sorry_server {
        Some(s) => {
            let a = ip(&format!("{name}: sorryServer: address"), &s.address)?;
            if a.is_ipv4() != address.is_ipv4() {
                return Err(format!(
                    "{name}: sorry server {a} is of the other address family"
                ));
            }
            if let Some(why) = node_only(a) {
                return Err(format!("{name}: sorry server {a} is {why}"));
            }
            let port = s.port.unwrap_or(vs.port);
            if dr {
                direct_routing(&format!("{name}: sorry server {a}"), vs.port, port, true)?;
            }
            Some(SocketAddr::new(a, port))
        }
        None => None,
    };
    let persistence = match &vs.persistence_timeout {
        Some(t) => {
            if address.is_ipv6() {
                return Err(format!(
                    "{name}: persistenceTimeout: nftables cannot record an IPv6 client's real server from the packet path: use scheduler SourceHash (one client, one real server while the set stands)"
                ));
            }
            let at = |e: FieldError| format!("{name}: {}: {}", e.0, e.1);
            Some(
                bounded(
                    "persistenceTimeout",
                    t,
                    Duration::from_secs(1),
                    Duration::from_secs(86_400),
                )
                .map_err(at)?,
            )
        }
        None => None,
    };
    Ok(VirtualServer {
        persistence,
        allow_node_addresses: vs.allow_node_addresses || vs.real_server_nodes.is_some(),
        address,
        port: vs.port,
        protocol: vs.protocol.unwrap_or_default(),
        scheduler: vs.scheduler.unwrap_or_default(),
        forwarding,
        reals,
        sorry,
        inhibit_on_failure: vs.inhibit_on_failure,
    })
}

/// Why `a` can be no real server: an address only the director itself reaches (loopback,
/// link-local: a metadata service at 169.254.169.254 must never be relayed to a client) or
/// no one host (unspecified, multicast, broadcast). `None`: it can be.
pub fn node_only(a: IpAddr) -> Option<&'static str> {
    let link_local = match a {
        IpAddr::V4(v) => v.is_link_local(),
        IpAddr::V6(v) => (v.segments()[0] & 0xffc0) == 0xfe80,
    };
    let mapped = match a {
        IpAddr::V6(v) => v.to_ipv4_mapped().is_some(),
        IpAddr::V4(_) => false,
    };
    if a.is_loopback() {
        Some("a loopback address: only the director itself reaches it, no client's connection can")
    } else if link_local {
        Some(
            "link-local (169.254.0.0/16, fe80::/10): node-only services live there (a cloud's metadata service), a virtual server must not relay clients to them",
        )
    } else if a.is_unspecified() {
        Some("unspecified: no host has it")
    } else if a.is_multicast() || a == IpAddr::from([255, 255, 255, 255]) {
        Some("a multicast or broadcast address: a connection goes to one host")
    } else if mapped {
        Some("an IPv4-mapped IPv6 address: write the IPv4 address")
    } else {
        None
    }
}

/// A check spec as a check of no particular server yet (its address is set per real server).
fn real_check(c: &RealServerCheckSpec, name: &str) -> Result<RealCheck, String> {
    let at = |e: FieldError| format!("{name}: check.{}: {}", e.0, e.1);
    let interval = match &c.delay_loop {
        Some(s) => bounded("delayLoop", s, MIN_INTERVAL, MAX_INTERVAL).map_err(at)?,
        None => DEFAULT_DELAY_LOOP,
    };
    let timeout = match &c.connect_timeout {
        Some(s) => bounded("connectTimeout", s, MIN_TIMEOUT, interval).map_err(at)?,
        None => DEFAULT_CONNECT_TIMEOUT.min(interval),
    };
    let retry = c.retry.unwrap_or(DEFAULT_RETRY);
    if retry > 10 {
        return Err(format!(
            "{name}: check.retry: {retry} is out of range: use 0 to 10"
        ));
    }
    let retry_delay = match &c.delay_before_retry {
        Some(s) => bounded("delayBeforeRetry", s, MIN_TIMEOUT, MAX_INTERVAL).map_err(at)?,
        None => DEFAULT_DELAY_BEFORE_RETRY,
    };
    let set = [c.http.is_some(), c.tcp.is_some(), c.exec.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set != 1 {
        return Err(format!(
            "{name}: check: set exactly one of http, tcp or exec ({set} set)"
        ));
    }
    // The address is a placeholder until `aimed_at`; the port, if given, stays.
    let placeholder = SocketAddr::new(IpAddr::from([0, 0, 0, 0]), c.port.unwrap_or(0));
    let kind = if let Some(h) = &c.http {
        let request = super::tracking::http_request(
            h.path.as_deref(),
            h.host_header.as_deref(),
            &h.expected_status,
        )
        .map_err(|(field, e)| format!("{name}: check.http.{field}: {e}"))?;
        let digest = match &h.digest {
            Some(d) if d.len() == 32 && d.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(d.to_ascii_lowercase())
            }
            Some(d) => {
                return Err(format!(
                    "{name}: check.http.digest: {d:?} is not an MD5 in hex (32 hex digits, as keepalived's genhash prints it)"
                ));
            }
            None => None,
        };
        CheckKind::Http(HttpCheck {
            digest,
            addr: placeholder,
            path: request.path,
            host: request.host_header.unwrap_or_default(),
            expected: request.expected,
            tls: (h.scheme == Some(Scheme::Https)).then_some(Tls::Insecure),
        })
    } else if c.tcp.is_some() {
        CheckKind::Tcp(placeholder)
    } else {
        let e = c.exec.as_ref().expect("one kind is set");
        let argv = super::tracking::validate_argv(&e.command)
            .map_err(|e| format!("{name}: check.exec.command: {e}"))?;
        CheckKind::Exec(argv)
    };
    Ok(RealCheck {
        check: Check {
            name: String::new(),
            interval,
            timeout,
            fall: retry + 1,
            rise: 1,
            weight: 0,
            initially_failing: false,
            kind,
        },
        retry_delay,
    })
}

impl RealCheck {
    /// This check aimed at one real server: its address (and port, unless the check names
    /// one), its name, and the Host header if none was given.
    fn aimed_at(mut self, addr: SocketAddr) -> RealCheck {
        let aim = |a: &mut SocketAddr| {
            let port = if a.port() == 0 { addr.port() } else { a.port() };
            *a = SocketAddr::new(addr.ip(), port);
        };
        match &mut self.check.kind {
            CheckKind::Http(h) => {
                aim(&mut h.addr);
                if h.host.is_empty() {
                    h.host = addr.ip().to_string();
                }
            }
            CheckKind::Tcp(a) => aim(a),
            CheckKind::Exec(_) | CheckKind::File { .. } => {}
        }
        self.check.name = addr.to_string();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> VirtualIpSpec {
        yaml_serde::from_str(yaml).unwrap()
    }

    fn vss(yaml: &str) -> Result<Vec<VirtualServer>, FieldError> {
        vss_in(yaml, false)
    }

    fn vss_in(yaml: &str, cluster: bool) -> Result<Vec<VirtualServer>, FieldError> {
        let s = spec(yaml);
        let addrs: Vec<VirtualAddress> = s.addresses.iter().map(|a| a.parse().unwrap()).collect();
        validate(&s, &addrs, cluster)
    }

    #[test]
    fn a_digest_is_32_hex_digits_kept_in_lowercase() {
        let with = |d: &str| {
            vss(&format!(
                "{BASE}  realServers: [{{address: 198.51.100.21}}]\n  check: {{http: {{digest: \"{d}\"}}}}\n"
            ))
        };
        let v = with("B1946AC92492D2347C6235B4D2611184").unwrap();
        let Some(RealCheck {
            check:
                Check {
                    kind: CheckKind::Http(h),
                    ..
                },
            ..
        }) = &v[0].reals[0].check
        else {
            panic!("{v:?}")
        };
        assert_eq!(
            h.digest.as_deref(),
            Some("b1946ac92492d2347c6235b4d2611184")
        );
        let e = with("abc").unwrap_err();
        assert!(
            e.1.contains("check.http.digest: \"abc\" is not an MD5 in hex"),
            "{e:?}"
        );
    }

    #[test]
    fn nodes_as_real_servers_are_for_the_cluster_and_follow_the_real_server_rules() {
        let nodes = "  realServerNodes: {nodeSelector: {role: web}}\n";
        let ok = format!("{BASE}{nodes}");
        assert!(vss_in(&ok, true).is_ok());
        let e = vss_in(&ok, false).unwrap_err();
        assert!(
            e.1.contains("Nodes exist only in a cluster") && e.1.contains("realServers"),
            "{e:?}"
        );
        let heavy = format!("{BASE}  realServerNodes: {{weight: 1001}}\n");
        assert!(vss_in(&heavy, true).unwrap_err().1.contains("0 to 1000"));
        let dr = format!("{BASE}  forwarding: DirectRouting\n{nodes}");
        assert!(vss_in(&dr, true).unwrap_err().1.contains("needs a check"));
        let dr_port = format!(
            "{BASE}  forwarding: DirectRouting\n  check: {{tcp: {{}}}}\n  realServerNodes: {{port: 8080}}\n"
        );
        assert!(
            vss_in(&dr_port, true)
                .unwrap_err()
                .1
                .contains("cannot change the port")
        );
    }

    const BASE: &str =
        "addresses: [198.51.100.50/24]\nvirtualServers:\n- address: 198.51.100.50\n  port: 80\n";

    #[test]
    fn defaults_follow_keepalived() {
        let v = vss(&format!(
            "{BASE}  realServers: [{{address: 198.51.100.21}}, {{address: 198.51.100.22, port: 8080, weight: 3}}]\n  check: {{tcp: {{}}}}\n"
        ))
        .unwrap();
        let v = &v[0];
        assert_eq!(v.key().to_string(), "198.51.100.50:80/TCP");
        assert_eq!(
            (v.protocol, v.scheduler, v.forwarding),
            (Protocol::Tcp, Scheduler::RoundRobin, Forwarding::Nat)
        );
        assert_eq!(v.reals[0].addr, "198.51.100.21:80".parse().unwrap());
        assert_eq!(v.reals[1].weight, 3);
        let c = v.reals[1].check.as_ref().unwrap();
        assert_eq!(
            c.check.kind,
            CheckKind::Tcp("198.51.100.22:8080".parse().unwrap())
        );
        assert_eq!(c.check.name, "198.51.100.22:8080");
        assert_eq!(
            (
                c.check.interval,
                c.check.timeout,
                c.check.fall,
                c.check.rise,
                c.retry_delay
            ),
            (
                Duration::from_secs(5),
                Duration::from_secs(5),
                2,
                1,
                Duration::from_secs(1)
            )
        );
    }

    #[test]
    fn an_http_check_is_aimed_at_each_server_with_its_host() {
        let v = vss(&format!(
            "{BASE}  realServers: [{{address: 198.51.100.21}}]\n  check: {{delayLoop: 1s, connectTimeout: 300ms, retry: 0, port: 8081, http: {{path: /healthz, expectedStatus: ['200']}}}}\n"
        ))
        .unwrap();
        let c = v[0].reals[0].check.as_ref().unwrap();
        match &c.check.kind {
            CheckKind::Http(h) => {
                assert_eq!(h.addr, "198.51.100.21:8081".parse().unwrap());
                assert_eq!(
                    (h.path.as_str(), h.host.as_str()),
                    ("/healthz", "198.51.100.21")
                );
                assert_eq!(h.expected, vec![(200, 200)]);
                assert_eq!(h.tls, None);
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(
            (c.check.fall, c.check.timeout),
            (1, Duration::from_millis(300))
        );
    }

    #[test]
    fn mistakes_are_refused_with_the_reason() {
        for (yaml, want) in [
            (
                "addresses: [198.51.100.50/24]\nvirtualServers:\n- {address: 198.51.100.51, port: 80}\n",
                "not one of spec.addresses",
            ),
            (
                &format!("{BASE}  realServers: [{{address: 2001:db8::1}}]\n"),
                "other address family",
            ),
            (
                &format!("{BASE}  realServers: [{{address: 198.51.100.50}}]\n"),
                "VirtualIP's own addresses",
            ),
            (
                &format!("{BASE}  realServers: [{{address: 169.254.169.254}}]\n"),
                "link-local",
            ),
            (
                &format!("{BASE}  realServers: [{{address: 127.0.0.1, port: 9650}}]\n"),
                "loopback",
            ),
            (
                "addresses: [2001:db8:1::50/64]\nvirtualServers:\n- address: 2001:db8:1::50\n  port: 80\n  realServers: [{address: fe80::1}]\n",
                "link-local",
            ),
            (
                "addresses: [2001:db8:1::50/64]\nvirtualServers:\n- address: 2001:db8:1::50\n  port: 80\n  realServers: [{address: \"::1\"}]\n",
                "loopback",
            ),
            (
                &format!("{BASE}  persistenceTimeout: 0s\n"),
                "persistenceTimeout: \"0s\" is out of range: use 1s to",
            ),
            (
                "addresses: [2001:db8:1::50/64]\nvirtualServers:\n- address: 2001:db8:1::50\n  port: 80\n  persistenceTimeout: 5m\n",
                "use scheduler SourceHash",
            ),
            (
                &format!("{BASE}  realServers: [{{address: 0.0.0.0}}]\n"),
                "unspecified",
            ),
            (
                &format!("{BASE}  realServers: [{{address: 224.0.0.1}}]\n"),
                "multicast",
            ),
            (
                &format!("{BASE}  sorryServer: {{address: 127.0.0.1}}\n"),
                "sorry server 127.0.0.1 is a loopback address",
            ),
            (
                &format!(
                    "{BASE}  realServers: [{{address: 198.51.100.21}}, {{address: 198.51.100.21}}]\n"
                ),
                "listed twice",
            ),
            (
                &format!("{BASE}  realServers: [{{address: 198.51.100.21, weight: 1001}}]\n"),
                "weight 1001 is out of range",
            ),
            (
                &format!("{BASE}  check: {{}}\n"),
                "exactly one of http, tcp or exec (0 set)",
            ),
            (
                &format!("{BASE}  check: {{connectTimeout: 10s, delayLoop: 1s, tcp: {{}}}}\n"),
                "check.connectTimeout",
            ),
            (
                &format!("{BASE}  check: {{exec: {{command: [true]}}}}\n"),
                "absolute path",
            ),
            (
                &format!(
                    "{BASE}  forwarding: DirectRouting\n  realServers: [{{address: 198.51.100.21}}]\n"
                ),
                "direct routing needs a check",
            ),
            (
                &format!(
                    "{BASE}  forwarding: DirectRouting\n  check: {{tcp: {{}}}}\n  realServers: [{{address: 198.51.100.21, port: 8080}}]\n"
                ),
                "direct routing cannot change the port: use 80",
            ),
            (
                &format!("{BASE}- address: 198.51.100.50\n  port: 80\n"),
                "198.51.100.50:80/TCP is listed twice",
            ),
        ] {
            let (field, why) = vss(yaml).unwrap_err();
            assert_eq!(field, FIELD);
            assert!(why.contains(want), "{want}: {why}");
        }
    }
}
