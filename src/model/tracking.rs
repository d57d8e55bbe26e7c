//! Health checks, tracked interfaces and notify hooks of a `VirtualIP` spec, validated: the
//! same rules for the standalone file, the agent in a cluster and the controller. Pure.

use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::field::{FieldError, bounded};
use crate::api::{
    FileMode, HealthCheckSpec, HttpCheckSpec, InitialState, NotifySpec, Scheme, VirtualIpSpec,
};
use crate::ids::TrackerName;

pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(100);
pub(crate) const MAX_INTERVAL: Duration = Duration::from_secs(3600);
pub(crate) const MIN_TIMEOUT: Duration = Duration::from_millis(10);
pub(crate) const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// One validated health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub fall: u32,
    pub rise: u32,
    pub weight: i16,
    /// keepalived `init_fail`: failing until it has passed `rise` times.
    pub initially_failing: bool,
    pub kind: CheckKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Http(HttpCheck),
    Tcp(SocketAddr),
    Exec(Vec<String>),
    File { path: PathBuf, mode: FileMode },
}

impl CheckKind {
    pub fn label(&self) -> &'static str {
        match self {
            CheckKind::Http(h) if h.tls.is_some() => "https",
            CheckKind::Http(_) => "http",
            CheckKind::Tcp(_) => "tcp",
            CheckKind::Exec(_) => "exec",
            CheckKind::File { .. } => "file",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub addr: SocketAddr,
    pub path: String,
    /// Host header and TLS server name.
    pub host: String,
    /// Inclusive ranges of passing status codes.
    pub expected: Vec<(u16, u16)>,
    pub tls: Option<Tls>,
    /// The MD5 the whole body must have (lowercase hex), read then up to 1 MiB.
    pub digest: Option<String>,
}

/// How an HTTPS server is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    Insecure,
    CaFile(PathBuf),
    /// PEM text (inline, or read from a Secret by the controller).
    CaPem(String),
    /// A Secret the controller has not resolved (never reaches an agent).
    CaSecret,
}

/// Commands run on transitions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notify {
    pub master: Vec<String>,
    pub backup: Vec<String>,
    pub fault: Vec<String>,
    pub stop: Vec<String>,
    pub any: Vec<String>,
    pub timeout: Duration,
}

impl Notify {
    /// Every program named, for the allowlist.
    pub fn programs(&self) -> impl Iterator<Item = &str> {
        [
            &self.master,
            &self.backup,
            &self.fault,
            &self.stop,
            &self.any,
        ]
        .into_iter()
        .filter_map(|argv| argv.first().map(String::as_str))
    }
}

/// What a VirtualIP asks each node to watch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tracking {
    pub checks: Vec<Check>,
    /// (interface, weight)
    pub interfaces: Vec<(String, i16)>,
    pub notify: Option<Notify>,
}

fn absolute(field: &'static str, what: &str, p: &str) -> Result<PathBuf, FieldError> {
    let path = Path::new(p);
    if !path.is_absolute() {
        return Err((field, format!("{what} {p:?} must be an absolute path")));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err((field, format!("{what} {p:?} must not contain \"..\"")));
    }
    Ok(path.to_path_buf())
}

fn argv(field: &'static str, argv: &[String]) -> Result<Vec<String>, FieldError> {
    let Some(program) = argv.first() else {
        return Err((
            field,
            "the command is empty: give the program's absolute path first".into(),
        ));
    };
    absolute(field, "the program", program)?;
    if argv.iter().any(|a| a.contains('\0')) {
        return Err((field, "arguments must not contain NUL".into()));
    }
    Ok(argv.to_vec())
}

/// A program and its arguments as exec checks take them, or what is wrong.
pub(crate) fn validate_argv(command: &[String]) -> Result<Vec<String>, String> {
    argv("command", command).map_err(|e| e.1)
}

fn host(field: &'static str, h: Option<&str>) -> Result<IpAddr, FieldError> {
    match h {
        None => Ok(IpAddr::from([127, 0, 0, 1])),
        Some(h) => h
            .trim_matches(|c| c == '[' || c == ']')
            .parse()
            .map_err(|_| {
                (
                    field,
                    format!(
                        "{h:?} is not an IP address (checks connect to an address, not a name)"
                    ),
                )
            }),
    }
}

/// The status codes an HTTP check passes on when none are given: 2xx and 3xx, as a
/// Kubernetes probe, HAProxy and NGINX count them. (keepalived's `HTTP_GET` takes 2xx only:
/// the importer writes that out, so a converted check keeps its meaning.)
pub(crate) const DEFAULT_STATUS: (u16, u16) = (200, 399);

/// What every HTTP check asks, a tracker's and a real server's alike: one set of rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpRequest {
    /// Starts with `/`, no spaces or line breaks; default `/`.
    pub path: String,
    /// The `Host` header, if given: a name, no spaces, line breaks or `/`.
    pub host_header: Option<String>,
    /// Inclusive ranges; default [`DEFAULT_STATUS`].
    pub expected: Vec<(u16, u16)>,
}

/// Validates an HTTP check's request fields; an error names the field (`path`,
/// `hostHeader`, `expectedStatus`) for the caller to place.
pub(crate) fn http_request(
    path: Option<&str>,
    host_header: Option<&str>,
    expected_status: &[String],
) -> Result<HttpRequest, (&'static str, String)> {
    let path = path.unwrap_or("/").to_string();
    if !path.starts_with('/') || path.contains(['\r', '\n', ' ']) {
        return Err((
            "path",
            format!("{path:?} must start with / and contain no spaces or line breaks"),
        ));
    }
    if let Some(v) = host_header
        && (v.is_empty() || v.contains(['\r', '\n', ' ', '/']))
    {
        return Err(("hostHeader", format!("{v:?} is not a host name")));
    }
    let expected = parse_status(expected_status).map_err(|e| ("expectedStatus", e))?;
    Ok(HttpRequest {
        path,
        host_header: host_header.map(String::from),
        expected,
    })
}

/// "200", "200-299" → inclusive ranges; none: [`DEFAULT_STATUS`].
pub(crate) fn parse_status(list: &[String]) -> Result<Vec<(u16, u16)>, String> {
    if list.is_empty() {
        return Ok(vec![DEFAULT_STATUS]);
    }
    list.iter()
        .map(|s| {
            let one = |t: &str| {
                t.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .ok_or_else(|| {
                        format!("{s:?}: status codes are 100 to 599, e.g. \"200\" or \"200-299\"")
                    })
            };
            match s.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (one(a)?, one(b)?);
                    if a > b {
                        return Err(format!("{s:?}: the range is backwards"));
                    }
                    Ok((a, b))
                }
                None => one(s).map(|c| (c, c)),
            }
        })
        .collect()
}

fn check(c: &HealthCheckSpec, standalone: bool) -> Result<Check, FieldError> {
    check_name(&c.name)?;
    let interval = match &c.interval {
        Some(t) => bounded("spec.healthChecks.interval", t, MIN_INTERVAL, MAX_INTERVAL)?,
        None => Duration::from_secs(1),
    };
    let timeout = match &c.timeout {
        Some(t) => bounded("spec.healthChecks.timeout", t, MIN_TIMEOUT, MAX_INTERVAL)?,
        None => interval,
    };
    let fall = c.fall.unwrap_or(1);
    let rise = c.rise.unwrap_or(1);
    for (field, v) in [
        ("spec.healthChecks.fall", fall),
        ("spec.healthChecks.rise", rise),
    ] {
        if !(1..=100).contains(&v) {
            return Err((field, format!("{v} is out of range: use 1 to 100")));
        }
    }
    if !(-253..=253).contains(&c.weight) {
        return Err((
            "spec.healthChecks.weight",
            format!("{} is out of range: use -253 to 253", c.weight),
        ));
    }
    let kind = check_kind(c, standalone)?;
    Ok(Check {
        name: c.name.clone(),
        interval,
        timeout,
        fall,
        rise,
        weight: c.weight,
        initially_failing: c.initial_state == Some(InitialState::Failing),
        kind,
    })
}

/// A check's name: a tracker name of 1 to 63 characters without `:`, `,`, `/` or spaces.
fn check_name(name: &str) -> Result<(), FieldError> {
    const F: &str = "spec.healthChecks";
    // Before the character rule, so `interface:eth0` is told why, not just "no ':'".
    TrackerName::check(name).map_err(|e| (F, e.to_string()))?;
    if name.is_empty() || name.len() > 63 || name.contains([':', ',', '/', ' ']) {
        return Err((
            F,
            format!("name {name:?}: 1 to 63 characters, no ':', ',', '/' or spaces"),
        ));
    }
    Ok(())
}

/// What the check does: exactly one of http, tcp, exec or file, validated.
fn check_kind(c: &HealthCheckSpec, standalone: bool) -> Result<CheckKind, FieldError> {
    const F: &str = "spec.healthChecks";
    let set: Vec<&str> = [
        (c.http.is_some(), "http"),
        (c.tcp.is_some(), "tcp"),
        (c.exec.is_some(), "exec"),
        (c.file.is_some(), "file"),
    ]
    .into_iter()
    .filter(|(s, _)| *s)
    .map(|(_, n)| n)
    .collect();
    if set.is_empty() {
        return Err((
            F,
            format!(
                "check {:?} needs one of http, tcp, exec or file: none is set",
                c.name
            ),
        ));
    }
    if set.len() > 1 {
        return Err((
            F,
            format!(
                "check {:?} has exactly one of http, tcp, exec or file: this one sets {}",
                c.name,
                set.join(" and ")
            ),
        ));
    }
    if let Some(h) = &c.http {
        http_check(h, standalone).map(CheckKind::Http)
    } else if let Some(t) = &c.tcp {
        let ip = host("spec.healthChecks.tcp.host", t.host.as_deref())?;
        if t.port == 0 {
            return Err(("spec.healthChecks.tcp.port", "use 1 to 65535".into()));
        }
        Ok(CheckKind::Tcp(SocketAddr::new(ip, t.port)))
    } else if let Some(e) = &c.exec {
        Ok(CheckKind::Exec(argv(
            "spec.healthChecks.exec.command",
            &e.command,
        )?))
    } else if let Some(f) = &c.file {
        Ok(CheckKind::File {
            path: absolute("spec.healthChecks.file.path", "the file", &f.path)?,
            mode: f.mode,
        })
    } else {
        unreachable!("one kind is set")
    }
}

/// The full name of an HTTP check's request field (static, as every field name of a
/// [`FieldError`]).
fn http_field(field: &str) -> &'static str {
    match field {
        "path" => "spec.healthChecks.http.path",
        "hostHeader" => "spec.healthChecks.http.hostHeader",
        _ => "spec.healthChecks.http.expectedStatus",
    }
}

/// An HTTP(S) check: address, path, expected status, TLS trust and `Host` header.
fn http_check(h: &HttpCheckSpec, standalone: bool) -> Result<HttpCheck, FieldError> {
    let ip = host("spec.healthChecks.http.host", h.host.as_deref())?;
    let HttpRequest {
        path,
        host_header,
        expected,
    } = http_request(
        h.path.as_deref(),
        h.host_header.as_deref(),
        &h.expected_status,
    )
    .map_err(|(field, e)| (http_field(field), e))?;
    let tls = http_tls(h, standalone)?;
    let host_header = host_header.unwrap_or_else(|| ip.to_string());
    if h.port == 0 {
        return Err(("spec.healthChecks.http.port", "use 1 to 65535".into()));
    }
    Ok(HttpCheck {
        addr: SocketAddr::new(ip, h.port),
        path,
        host: host_header,
        expected,
        tls,
        digest: None,
    })
}

/// How an HTTPS check trusts the server: exactly one of caFile, caSecretRef (cluster only),
/// caBundle or insecureSkipVerify; none of them for plain HTTP (`None`).
fn http_tls(h: &HttpCheckSpec, standalone: bool) -> Result<Option<Tls>, FieldError> {
    let https = h.scheme == Some(Scheme::Https);
    let tls_options = [
        h.ca_file.is_some(),
        h.ca_secret_ref.is_some(),
        h.ca_bundle.is_some(),
        h.insecure_skip_verify,
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if !https {
        if tls_options > 0 {
            return Err(("spec.healthChecks.http.scheme", "caFile, caSecretRef, caBundle and insecureSkipVerify are for HTTPS: set scheme HTTPS".into()));
        }
        return Ok(None);
    }
    if tls_options != 1 {
        return Err((
            "spec.healthChecks.http",
            "HTTPS needs exactly one of caFile, caSecretRef, caBundle or insecureSkipVerify: true"
                .into(),
        ));
    }
    Ok(Some(if h.insecure_skip_verify {
        Tls::Insecure
    } else if let Some(f) = &h.ca_file {
        Tls::CaFile(absolute("spec.healthChecks.http.caFile", "the CA file", f)?)
    } else if let Some(p) = &h.ca_bundle {
        if !p.contains("-----BEGIN CERTIFICATE-----") {
            return Err((
                "spec.healthChecks.http.caBundle",
                "not a PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        Tls::CaPem(p.clone())
    } else if standalone {
        return Err((
            "spec.healthChecks.http.caSecretRef",
            "Secrets exist only in a cluster: in standalone mode use caFile or caBundle".into(),
        ));
    } else {
        Tls::CaSecret
    }))
}

fn notify(n: &NotifySpec) -> Result<Notify, FieldError> {
    let hook = |field, v: &Vec<String>| {
        if v.is_empty() {
            Ok(Vec::new())
        } else {
            argv(field, v)
        }
    };
    Ok(Notify {
        master: hook("spec.notify.master", &n.master)?,
        backup: hook("spec.notify.backup", &n.backup)?,
        fault: hook("spec.notify.fault", &n.fault)?,
        stop: hook("spec.notify.stop", &n.stop)?,
        any: hook("spec.notify.any", &n.any)?,
        timeout: match &n.timeout {
            Some(t) => bounded("spec.notify.timeout", t, MIN_TIMEOUT, MAX_INTERVAL)?,
            None => DEFAULT_NOTIFY_TIMEOUT,
        },
    })
}

/// Validates the health part of a spec. `standalone`: Secrets cannot be named.
pub(crate) fn validate(spec: &VirtualIpSpec, standalone: bool) -> Result<Tracking, FieldError> {
    let mut checks: Vec<Check> = Vec::new();
    for c in &spec.health_checks {
        if checks.iter().any(|o| o.name == c.name) {
            return Err((
                "spec.healthChecks",
                format!("two checks are named {:?}: names must be unique", c.name),
            ));
        }
        checks.push(check(c, standalone)?);
    }
    let mut interfaces: Vec<(String, i16)> = Vec::new();
    for t in &spec.track_interfaces {
        if t.name.is_empty() || t.name.len() > 15 || t.name.contains(['/', ' ', ':']) {
            return Err((
                "spec.trackInterfaces",
                format!("{:?} is not an interface name", t.name),
            ));
        }
        if interfaces.iter().any(|(n, _)| *n == t.name) {
            return Err((
                "spec.trackInterfaces",
                format!("{:?} is listed twice", t.name),
            ));
        }
        if !(-253..=253).contains(&t.weight) {
            return Err((
                "spec.trackInterfaces.weight",
                format!("{} is out of range: use -253 to 253", t.weight),
            ));
        }
        interfaces.push((t.name.clone(), t.weight));
    }
    // An interface an address is bound on is tracked (weight 0, unless listed above): a
    // director whose back network is down cannot serve, so it hands over.
    for a in spec.addresses.iter().chain(spec.excluded_addresses.iter()) {
        if let Ok((_, Some(name))) = super::address::split_interface(a)
            && Some(name) != spec.interface.as_deref()
            && !interfaces.iter().any(|(n, _)| n == name)
        {
            interfaces.push((name.to_string(), 0));
        }
    }
    let notify = spec.notify.as_ref().map(notify).transpose()?;
    Ok(Tracking {
        checks,
        interfaces,
        notify: notify.filter(|n| n.programs().next().is_some()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> VirtualIpSpec {
        yaml_serde::from_str(&format!("addresses: [192.0.2.10/24]\n{yaml}")).unwrap()
    }

    #[test]
    fn defaults_follow_keepalived() {
        let h = validate(&spec("healthChecks: [{name: web, tcp: {port: 80}}]"), true).unwrap();
        let c = &h.checks[0];
        assert_eq!(
            (c.interval, c.timeout, c.fall, c.rise, c.weight),
            (Duration::from_secs(1), Duration::from_secs(1), 1, 1, 0)
        );
        assert!(!c.initially_failing);
        assert_eq!(c.kind, CheckKind::Tcp("127.0.0.1:80".parse().unwrap()));
    }

    #[test]
    fn exactly_one_kind_says_which() {
        let e = validate(&spec("healthChecks: [{name: web}]"), true).unwrap_err();
        assert!(e.1.contains("none is set"), "{e:?}");
        let e = validate(
            &spec("healthChecks: [{name: web, tcp: {port: 80}, file: {path: /x}}]"),
            true,
        )
        .unwrap_err();
        assert!(e.1.contains("tcp and file"), "{e:?}");
    }

    #[test]
    fn bad_values_are_named() {
        for (yaml, field) in [
            (
                "healthChecks: [{name: a, tcp: {port: 80}}, {name: a, tcp: {port: 81}}]",
                "spec.healthChecks",
            ),
            (
                "healthChecks: [{name: a, interval: 10ms, tcp: {port: 80}}]",
                "spec.healthChecks.interval",
            ),
            (
                "healthChecks: [{name: a, interval: 5, tcp: {port: 80}}]",
                "spec.healthChecks.interval",
            ),
            (
                "healthChecks: [{name: a, weight: 254, tcp: {port: 80}}]",
                "spec.healthChecks.weight",
            ),
            (
                "healthChecks: [{name: a, fall: 0, tcp: {port: 80}}]",
                "spec.healthChecks.fall",
            ),
            (
                "healthChecks: [{name: a, tcp: {host: localhost, port: 80}}]",
                "spec.healthChecks.tcp.host",
            ),
            (
                "healthChecks: [{name: a, exec: {command: [pgrep, nginx]}}]",
                "spec.healthChecks.exec.command",
            ),
            (
                "healthChecks: [{name: a, file: {path: ../etc/x}}]",
                "spec.healthChecks.file.path",
            ),
            (
                "healthChecks: [{name: a, http: {port: 443, scheme: HTTPS}}]",
                "spec.healthChecks.http",
            ),
            (
                "healthChecks: [{name: a, http: {port: 80, insecureSkipVerify: true}}]",
                "spec.healthChecks.http.scheme",
            ),
            (
                "healthChecks: [{name: a, http: {port: 80, expectedStatus: [\"700\"]}}]",
                "spec.healthChecks.http.expectedStatus",
            ),
            (
                "healthChecks: [{name: a, http: {port: 443, scheme: HTTPS, caSecretRef: {name: s, namespace: n, key: ca.crt}}}]",
                "spec.healthChecks.http.caSecretRef",
            ),
            (
                "trackInterfaces: [{name: eth1}, {name: eth1}]",
                "spec.trackInterfaces",
            ),
            ("notify: {master: [notify.sh]}", "spec.notify.master"),
        ] {
            let e = validate(&spec(yaml), true).unwrap_err();
            assert_eq!(e.0, field, "{yaml}: {e:?}");
        }
    }

    #[test]
    fn status_lists_and_ranges() {
        assert_eq!(parse_status(&[]).unwrap(), vec![(200, 399)]);
        // One rule set for every HTTP check: a tracker's and a real server's.
        let r = http_request(None, Some("web"), &[]).unwrap();
        assert_eq!((r.path.as_str(), r.expected), ("/", vec![DEFAULT_STATUS]));
        assert_eq!(http_request(Some("x"), None, &[]).unwrap_err().0, "path");
        assert_eq!(
            http_request(None, Some("a b"), &[]).unwrap_err().0,
            "hostHeader"
        );
        assert_eq!(
            http_request(None, None, &["600".into()]).unwrap_err().0,
            "expectedStatus"
        );
        assert_eq!(
            parse_status(&["200".into(), "301-302".into()]).unwrap(),
            vec![(200, 200), (301, 302)]
        );
        assert!(parse_status(&["302-301".into()]).is_err());
    }

    fn error_of(yaml: &str) -> FieldError {
        let spec: VirtualIpSpec =
            yaml_serde::from_str(&format!("addresses: [192.0.2.10/24]\n{yaml}")).unwrap();
        validate(&spec, true).unwrap_err()
    }

    #[test]
    fn a_check_cannot_take_a_name_the_agent_reports_itself() {
        for name in ["node", "notify", "interface:eth0"] {
            let (field, why) = error_of(&format!(
                "healthChecks: [{{name: \"{name}\", tcp: {{port: 80}}}}]"
            ));
            assert_eq!(field, "spec.healthChecks");
            assert!(why.contains("is reserved"), "{name}: {why}");
            assert!(why.contains(&format!("{name:?}")), "{name}: {why}");
        }
    }

    #[test]
    fn names_that_only_resemble_a_reserved_one_are_fine() {
        for name in ["nodes", "notify-hook", "interfaces", "address-conflicts"] {
            let spec: VirtualIpSpec = yaml_serde::from_str(&format!(
                "addresses: [192.0.2.10/24]\nhealthChecks: [{{name: {name}, tcp: {{port: 80}}}}]"
            ))
            .unwrap();
            assert!(validate(&spec, true).is_ok(), "{name}");
        }
    }

    fn http(yaml: &str) -> HttpCheckSpec {
        yaml_serde::from_str(yaml).unwrap()
    }

    #[test]
    fn a_check_name_is_a_tracker_name_without_separators() {
        assert_eq!(check_name("web-1"), Ok(()));
        for bad in ["", "a b", "a,b", "a/b", &"x".repeat(64)] {
            assert_eq!(
                check_name(bad).unwrap_err().0,
                "spec.healthChecks",
                "{bad:?}"
            );
        }
        let (_, why) = check_name("interface:eth0").unwrap_err();
        assert!(
            !why.contains("no ':'"),
            "told why, not the character rule: {why}"
        );
    }

    #[test]
    fn tls_trust_is_one_option_for_https_and_none_for_http() {
        let tls = |yaml: &str, standalone| http_tls(&http(yaml), standalone);
        assert_eq!(tls("port: 80", true), Ok(None));
        assert_eq!(
            tls("{port: 80, caFile: /ca.pem}", true).unwrap_err().0,
            "spec.healthChecks.http.scheme"
        );
        assert_eq!(
            tls("{port: 443, scheme: HTTPS}", true).unwrap_err().0,
            "spec.healthChecks.http"
        );
        assert_eq!(
            tls(
                "{port: 443, scheme: HTTPS, insecureSkipVerify: true, caFile: /ca.pem}",
                true
            )
            .unwrap_err()
            .0,
            "spec.healthChecks.http"
        );
        assert_eq!(
            tls("{port: 443, scheme: HTTPS, insecureSkipVerify: true}", true),
            Ok(Some(Tls::Insecure))
        );
        assert_eq!(
            tls("{port: 443, scheme: HTTPS, caFile: /ca.pem}", true),
            Ok(Some(Tls::CaFile("/ca.pem".into())))
        );
        assert_eq!(
            tls("{port: 443, scheme: HTTPS, caBundle: nonsense}", true)
                .unwrap_err()
                .0,
            "spec.healthChecks.http.caBundle"
        );
        let secret = "{port: 443, scheme: HTTPS, caSecretRef: {namespace: n, name: s, key: k}}";
        assert_eq!(tls(secret, false), Ok(Some(Tls::CaSecret)));
        assert_eq!(
            tls(secret, true).unwrap_err().0,
            "spec.healthChecks.http.caSecretRef"
        );
    }

    #[test]
    fn an_http_check_defaults_to_slash_on_localhost_and_checks_the_port_last() {
        let h = http_check(&http("port: 8080"), true).unwrap();
        assert_eq!(h.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!((h.path.as_str(), h.host.as_str()), ("/", "127.0.0.1"));
        let h = http_check(&http("{port: 80, hostHeader: example.org}"), true).unwrap();
        assert_eq!(h.host, "example.org");
        assert_eq!(
            http_check(&http("{port: 80, hostHeader: \"a b\"}"), true)
                .unwrap_err()
                .0,
            "spec.healthChecks.http.hostHeader"
        );
        assert_eq!(
            http_check(&http("port: 0"), true).unwrap_err().0,
            "spec.healthChecks.http.port"
        );
        assert_eq!(
            http_check(&http("{port: 0, path: x}"), true).unwrap_err().0,
            "spec.healthChecks.http.path",
            "the port is checked after the rest, as before"
        );
    }
}
