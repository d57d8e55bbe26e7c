//! `virtual_server` blocks → virtual servers of the VirtualIP holding their address: the
//! scheduler (`lb_algo`), forwarding (`lb_kind`), `persistence_timeout`, `sorry_server`,
//! `inhibit_on_failure`, and each `real_server` with its `weight` and its check (`HTTP_GET`,
//! `SSL_GET`, `TCP_CHECK`, `MISC_CHECK` with `delay_loop`, `connect_timeout`, `retry` /
//! `nb_get_retry`, `delay_before_retry`, `connect_port`). What nftables cannot do, or we do
//! not carry yet, is a warning with its line; nothing is dropped silently.

use crate::api::{
    ExecCheckSpec, Forwarding, Protocol, RealServerCheckSpec, RealServerHttpCheck, RealServerSpec,
    RealServerTcpCheck, Scheduler, Scheme, SorryServerSpec, VirtualServerSpec,
};

use super::parser::Stmt;
use super::report::{Place, Report};
use super::scripts::command_argv;
use super::values::{duration, number, seconds};
use crate::model::tracking::{MAX_INTERVAL, MIN_INTERVAL, MIN_TIMEOUT};
use std::time::Duration;

/// keepalived's `delay_loop` when none is written (and ours).
const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(5);
/// The most retries a check may have.
const MAX_RETRY: u32 = 10;

/// A virtual server read from a file, with where it was.
pub(crate) struct Imported {
    pub(crate) spec: VirtualServerSpec,
    pub(crate) at: Place,
}

/// One `virtual_server`; `None` (a warning) when it cannot be carried at all.
pub(crate) fn virtual_server(s: &Stmt, report: &mut Report) -> Option<Imported> {
    let (Some(address), Some(port)) = (s.arg(1), s.arg(2)) else {
        report.warning(
            &s.at,
            "virtual_server without an address and a port is not carried over",
        );
        return None;
    };
    if matches!(address, "fwmark" | "group") {
        report.warning(
            &s.at,
            format!("virtual_server {address} {port} is not carried over: kube-vrrp's virtual servers are an address and a port"),
        );
        return None;
    }
    let Ok(port) = port.parse::<u16>() else {
        report.warning(
            &s.at,
            format!("virtual_server {address} {port}: the port is not a number: not carried over"),
        );
        return None;
    };
    let mut spec = VirtualServerSpec {
        address: address.to_string(),
        port,
        protocol: None,
        scheduler: None,
        forwarding: None,
        real_servers: Vec::new(),
        real_server_nodes: None,
        check: None,
        sorry_server: None,
        inhibit_on_failure: false,
        persistence_timeout: None,
        allow_node_addresses: false,
    };
    // keepalived's delay_loop applies to every real server's check, wherever it is written.
    let delay_loop = s
        .children()
        .iter()
        .rfind(|c| c.key() == "delay_loop")
        .and_then(|c| duration(c, MIN_INTERVAL, MAX_INTERVAL, report));
    let mut persistence = false;
    for c in s.children() {
        match c.key() {
            "delay_loop" => {}
            "lb_algo" | "lvs_sched" => spec.scheduler = scheduler(c, report)?,
            "lb_kind" | "lvs_method" => spec.forwarding = forwarding(c, report),
            "protocol" => match c.arg(1) {
                Some("TCP") => spec.protocol = Some(Protocol::Tcp),
                Some("UDP") => spec.protocol = Some(Protocol::Udp),
                other => {
                    report.warning(&c.at, format!("protocol {}: only TCP and UDP are carried: virtual server not carried over", other.unwrap_or_default()));
                    return None;
                }
            },
            "persistence_timeout" => persistence = c.arg(1).is_some(),
            "sorry_server" => {
                spec.sorry_server = c.arg(1).map(|a| SorryServerSpec {
                    address: a.to_string(),
                    port: c.arg(2).and_then(|p| port_of(c, p, report)),
                })
            }
            "inhibit_on_failure" => spec.inhibit_on_failure = true,
            "real_server" => {
                if let Some(r) = real_server(c, delay_loop, report) {
                    spec.real_servers.push(r);
                }
            }
            other => report.warning(&c.at, format!("virtual_server {other} is not carried over")),
        }
    }
    if persistence {
        let c = s
            .children()
            .iter()
            .find(|c| c.key() == "persistence_timeout")
            .expect("seen");
        let text = c.arg(1).unwrap_or_default();
        match seconds(text) {
            Some(t) if address.contains(':') => report.note(
                &c.at,
                format!(
                    "persistence_timeout {text}: an IPv6 client's real server cannot be recorded by nftables: carried as scheduler SourceHash (one client, one real server while the set of servers stands; no timeout, {t} dropped)"
                ),
            ),
            Some(t) if text.parse::<f64>().is_ok_and(|v| v >= 1.0) => {
                spec.persistence_timeout = Some(t.into())
            }
            _ => report.warning(
                &c.at,
                format!("persistence_timeout {text}: not a number of seconds of at least 1: not carried over"),
            ),
        }
        if address.contains(':') && spec.persistence_timeout.is_none() && seconds(text).is_some() {
            spec.scheduler = Some(Scheduler::SourceHash);
        }
    }
    if spec.forwarding == Some(Forwarding::DirectRouting)
        && spec.real_servers.iter().any(|r| r.check.is_none())
    {
        let at = s
            .children()
            .iter()
            .find(|c| matches!(c.key(), "lb_kind" | "lvs_method"))
            .map(|c| c.at.clone())
            .unwrap_or(s.at.clone());
        report.warning(
            &at,
            "lb_kind DR with a real server that has no check: direct routing learns each real server's MAC from its check: imported as FullNAT",
        );
        spec.forwarding = Some(Forwarding::FullNat);
    }
    Some(Imported {
        spec,
        at: s.at.clone(),
    })
}

/// `lb_algo`: `Err` refuses the virtual server (a scheduler that cannot be built is never
/// silently replaced by another).
fn scheduler(c: &Stmt, report: &mut Report) -> Option<Option<Scheduler>> {
    let algo = c.arg(1).unwrap_or_default();
    match algo {
        "rr" => Some(Some(Scheduler::RoundRobin)),
        "wrr" => Some(Some(Scheduler::WeightedRoundRobin)),
        "sh" => Some(Some(Scheduler::SourceHash)),
        "lc" | "wlc" | "lblc" | "lblcr" | "sed" | "nq" | "ovf" | "fo" | "mh" | "dh" => {
            report.warning(
                &c.at,
                format!(
                    "lb_algo {algo}: not available: it chooses by each real server's connection count, which nftables does not keep; virtual server not carried over: write lb_algo wrr (weights kept), rr or sh and import again"
                ),
            );
            None
        }
        other => {
            report.warning(
                &c.at,
                format!("lb_algo {other} is unknown: virtual server not carried over: write rr, wrr or sh"),
            );
            None
        }
    }
}

fn forwarding(c: &Stmt, report: &mut Report) -> Option<Forwarding> {
    match c.arg(1).unwrap_or_default() {
        "NAT" => Some(Forwarding::Nat),
        "DR" => Some(Forwarding::DirectRouting),
        "TUN" => {
            report.warning(
                &c.at,
                "lb_kind TUN: tunnels are not carried: imported as FullNAT (the real servers need no VIP and see the director's address instead of the client's)",
            );
            Some(Forwarding::FullNat)
        }
        other => {
            report.warning(&c.at, format!("lb_kind {other} is unknown: NAT used"));
            None
        }
    }
}

/// One `real_server ADDR PORT { ... }`.
fn real_server(
    s: &Stmt,
    delay_loop: Option<Duration>,
    report: &mut Report,
) -> Option<RealServerSpec> {
    let Some(address) = s.arg(1) else {
        report.warning(&s.at, "real_server without an address is not carried over");
        return None;
    };
    let mut r = RealServerSpec {
        address: address.to_string(),
        port: s.arg(2).and_then(|p| port_of(s, p, report)),
        weight: None,
        check: None,
        inhibit_on_failure: None,
    };
    for c in s.children() {
        match c.key() {
            "weight" => r.weight = number(c, report),
            "inhibit_on_failure" => r.inhibit_on_failure = Some(true),
            "HTTP_GET" | "SSL_GET" | "TCP_CHECK" | "MISC_CHECK" => {
                if r.check.is_some() {
                    report.warning(
                        &c.at,
                        format!(
                            "{}: one check per real server is carried: the first is kept",
                            c.key()
                        ),
                    );
                    continue;
                }
                r.check = Some(check(c, delay_loop, report));
            }
            other => report.warning(&c.at, format!("real_server {other} is not carried over")),
        }
    }
    Some(r)
}

/// A check block with the virtual server's `delay_loop`.
fn check(c: &Stmt, delay_loop: Option<Duration>, report: &mut Report) -> RealServerCheckSpec {
    let mut out = RealServerCheckSpec {
        delay_loop: delay_loop.map(|d| crate::units::format_duration(d).into()),
        connect_timeout: None,
        retry: None,
        delay_before_retry: None,
        port: None,
        http: None,
        tcp: None,
        exec: None,
    };
    match c.key() {
        "HTTP_GET" | "SSL_GET" => {
            out.http = Some(RealServerHttpCheck {
                scheme: (c.key() == "SSL_GET").then_some(Scheme::Https),
                path: None,
                host_header: None,
                expected_status: Vec::new(),
                digest: None,
            })
        }
        "TCP_CHECK" => out.tcp = Some(RealServerTcpCheck {}),
        _ => {}
    }
    let mut urls = 0;
    for o in c.children() {
        match o.key() {
            "connect_timeout" | "misc_timeout" => {
                // At most the interval: a check ends before the next one starts.
                let interval = delay_loop.unwrap_or(DEFAULT_DELAY_LOOP);
                out.connect_timeout = duration(o, MIN_TIMEOUT, interval, report)
                    .map(|d| crate::units::format_duration(d).into())
            }
            "retry" | "nb_get_retry" => {
                out.retry = number(o, report).map(|n: u32| {
                    if n > MAX_RETRY {
                        report.note(
                            &o.at,
                            format!(
                                "{} {n}: carried as {MAX_RETRY}, the most a check may retry",
                                o.key()
                            ),
                        );
                    }
                    n.min(MAX_RETRY)
                })
            }
            "delay_before_retry" => {
                out.delay_before_retry = duration(o, MIN_TIMEOUT, MAX_INTERVAL, report)
                    .map(|d| crate::units::format_duration(d).into())
            }
            "connect_port" => out.port = o.arg(1).and_then(|p| port_of(o, p, report)),
            "virtualhost" => {
                if let Some(h) = out.http.as_mut() {
                    h.host_header = o.arg(1).map(String::from);
                }
            }
            "url" => {
                urls += 1;
                if urls > 1 {
                    report.warning(
                        &o.at,
                        "url: one URL per check is carried: the first is kept",
                    );
                    continue;
                }
                if let Some(h) = out.http.as_mut() {
                    url(o, h, report);
                }
            }
            "misc_path" => {
                let argv = command_argv(&o.rest(), &o.at, report);
                out.exec = Some(ExecCheckSpec {
                    command: argv.words,
                });
            }
            other => report.warning(&o.at, format!("{} {other} is not carried over", c.key())),
        }
    }
    // keepalived passes 2xx only when no status_code is given; ours passes 3xx too unless
    // told: written out, the check keeps its meaning.
    if let Some(h) = out.http.as_mut()
        && h.expected_status.is_empty()
    {
        h.expected_status.push(KEEPALIVED_STATUS.into());
    }
    out
}

/// The status codes keepalived's `HTTP_GET` / `SSL_GET` pass on without `status_code`.
const KEEPALIVED_STATUS: &str = "200-299";

/// A port (1 to 65535), or a warning with its line.
fn port_of(c: &Stmt, text: &str, report: &mut Report) -> Option<u16> {
    let p = text.parse::<u16>().ok().filter(|p| *p > 0);
    if p.is_none() {
        report.warning(
            &c.at,
            format!(
                "{} port {text:?}: not a port (1 to 65535): not carried over",
                c.key()
            ),
        );
    }
    p
}

fn url(u: &Stmt, h: &mut RealServerHttpCheck, report: &mut Report) {
    for o in u.children() {
        match o.key() {
            "path" => h.path = o.arg(1).map(String::from),
            "status_code" => {
                for code in &o.words[1..] {
                    match crate::model::tracking::parse_status(std::slice::from_ref(code)) {
                        Ok(_) => h.expected_status.push(code.clone()),
                        Err(e) => {
                            report.warning(&o.at, format!("status_code {e}: not carried over"))
                        }
                    }
                }
            }
            "digest" => h.digest = o.arg(1).map(String::from),
            other => report.warning(&o.at, format!("url {other} is not carried over")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::parser::tests::parse_text;

    fn import(text: &str) -> (Option<VirtualServerSpec>, Report) {
        let (stmts, mut report) = parse_text("k.conf", text);
        let v = virtual_server(&stmts[0], &mut report).map(|i| i.spec);
        (v, report)
    }

    fn said(r: &Report) -> Vec<String> {
        r.warnings
            .iter()
            .chain(&r.notes)
            .map(|m| format!("{}: {}", m.at, m.text))
            .collect()
    }

    #[test]
    fn an_http_get_without_status_code_keeps_keepalived_s_2xx() {
        let (v, _) = import(
            "virtual_server 198.51.100.50 80 {\n  real_server 198.51.100.21 80 {\n    HTTP_GET {\n      url {\n        path /\n      }\n    }\n  }\n}\n",
        );
        let h = v.unwrap().real_servers[0]
            .check
            .clone()
            .unwrap()
            .http
            .unwrap();
        assert_eq!(h.expected_status, vec!["200-299".to_string()]);
    }

    #[test]
    fn a_classic_nat_director_is_carried_whole() {
        let (v, r) = import(
            "virtual_server 198.51.100.50 80 {\n  delay_loop 6\n  lb_algo wrr\n  lb_kind NAT\n  protocol TCP\n  sorry_server 198.51.100.99 8080\n\
             real_server 198.51.100.21 80 {\n    weight 3\n    HTTP_GET {\n      url {\n        path /healthz\n        status_code 200\n      }\n      connect_timeout 3\n      nb_get_retry 2\n      delay_before_retry 1\n    }\n  }\n\
             real_server 198.51.100.22 8080 {\n    TCP_CHECK {\n      connect_port 8080\n      connect_timeout 2\n    }\n  }\n}\n",
        );
        assert!(said(&r).is_empty(), "{:?}", said(&r));
        let v = v.unwrap();
        assert_eq!((v.address.as_str(), v.port), ("198.51.100.50", 80));
        assert_eq!(
            (v.scheduler, v.forwarding, v.protocol),
            (
                Some(Scheduler::WeightedRoundRobin),
                Some(Forwarding::Nat),
                Some(Protocol::Tcp)
            )
        );
        assert_eq!(v.sorry_server.as_ref().unwrap().port, Some(8080));
        let a = &v.real_servers[0];
        assert_eq!((a.weight, a.port), (Some(3), Some(80)));
        let c = a.check.as_ref().unwrap();
        assert_eq!(c.delay_loop.as_deref(), Some("6s"));
        assert_eq!(c.connect_timeout.as_deref(), Some("3s"));
        assert_eq!(
            (c.retry, c.delay_before_retry.as_deref()),
            (Some(2), Some("1s"))
        );
        let h = c.http.as_ref().unwrap();
        assert_eq!(
            (h.path.as_deref(), h.expected_status.clone()),
            (Some("/healthz"), vec!["200".to_string()])
        );
        let b = v.real_servers[1].check.as_ref().unwrap();
        assert_eq!((b.tcp.is_some(), b.port), (true, Some(8080)));
    }

    #[test]
    fn a_least_connection_scheduler_is_refused_never_replaced() {
        for algo in ["lc", "wlc", "sed"] {
            let (v, r) = import(&format!(
                "virtual_server 198.51.100.50 80 {{\n  lb_algo {algo}\n  real_server 198.51.100.21 80 {{\n  }}\n}}\n"
            ));
            assert!(v.is_none(), "{algo}: {v:?}");
            let s = said(&r);
            assert!(
                s.iter().any(|m| m
                    .starts_with(&format!("k.conf:2: lb_algo {algo}: not available"))
                    && m.contains("write lb_algo wrr")),
                "{s:#?}"
            );
        }
        // IPv6: persistence becomes a source hash, said so.
        let (v, r) = import(
            "virtual_server 2001:db8:1::50 80 {\n  persistence_timeout 60\n  real_server 2001:db8:1::21 80 {\n  }\n}\n",
        );
        let v = v.unwrap();
        assert_eq!(
            (v.scheduler, v.persistence_timeout),
            (Some(Scheduler::SourceHash), None)
        );
        assert!(
            said(&r)
                .iter()
                .any(|m| m.starts_with("k.conf:2: persistence_timeout 60: an IPv6"))
        );
    }

    #[test]
    fn a_value_that_cannot_be_read_is_a_warning_with_its_line_never_a_silent_default() {
        let (v, r) = import(
            "virtual_server 198.51.100.50 80 {\n  real_server 198.51.100.21 x {\n    weight heavy\n    TCP_CHECK {\n      \
             connect_port 0\n      retry many\n      delay_before_retry soon\n    }\n  }\n  delay_loop 1e999\n}\n",
        );
        let v = v.unwrap();
        let s = said(&r);
        for want in [
            "k.conf:2: real_server port \"x\": not a port",
            "k.conf:3: weight \"heavy\": not a whole number in range",
            "k.conf:5: connect_port port \"0\": not a port",
            "k.conf:6: retry \"many\": not a whole number in range",
            "k.conf:7: delay_before_retry \"soon\": not a number of seconds",
            "k.conf:10: delay_loop \"1e999\": not a number of seconds",
        ] {
            assert!(s.iter().any(|m| m.starts_with(want)), "{want}\n{s:#?}");
        }
        let rs = &v.real_servers[0];
        assert_eq!((rs.port, rs.weight), (None, None));
    }

    #[test]
    fn what_cannot_be_carried_is_said_with_its_line() {
        let (v, r) = import(
            "virtual_server 198.51.100.50 443 {\n  lb_algo wrr\n  lb_kind TUN\n  persistence_timeout 300\n  ha_suspend\n\
             real_server 198.51.100.21 443 {\n    inhibit_on_failure\n    SSL_GET {\n      url {\n        path /\n        digest b1946ac92492d2347c6235b4d2611184\n      }\n    }\n  }\n}\n",
        );
        let v = v.unwrap();
        let s = said(&r);
        for want in [
            "k.conf:3: lb_kind TUN: tunnels are not carried: imported as FullNAT",
            "k.conf:5: virtual_server ha_suspend is not carried over",
        ] {
            assert!(s.iter().any(|m| m.starts_with(want)), "{want}\n{s:#?}");
        }
        assert_eq!(
            (v.scheduler, v.forwarding, v.inhibit_on_failure),
            (
                Some(Scheduler::WeightedRoundRobin),
                Some(Forwarding::FullNat),
                false
            )
        );
        // keepalived's inhibit_on_failure is per real server, and so is ours.
        assert_eq!(v.real_servers[0].inhibit_on_failure, Some(true));
        assert_eq!(v.persistence_timeout.as_deref(), Some("300s"));
        assert!(
            !s.iter().any(|m| m.contains("persistence_timeout")),
            "{s:#?}"
        );
        assert_eq!(
            v.real_servers[0]
                .check
                .as_ref()
                .unwrap()
                .http
                .as_ref()
                .unwrap()
                .scheme,
            Some(Scheme::Https)
        );
        let http = v.real_servers[0].check.as_ref().unwrap().http.as_ref();
        assert_eq!(
            http.unwrap().digest.as_deref(),
            Some("b1946ac92492d2347c6235b4d2611184"),
            "digest carried"
        );
        assert!(!s.iter().any(|m| m.contains("digest")), "{s:#?}");
        // Direct routing learns MACs from the checks: without one, full NAT.
        let (v, r) = import(
            "virtual_server 198.51.100.50 80 {\n  lb_kind DR\n  real_server 198.51.100.21 80 {\n  }\n}\n",
        );
        assert_eq!(v.unwrap().forwarding, Some(Forwarding::FullNat));
        assert!(
            said(&r)[0].starts_with("k.conf:2: lb_kind DR with a real server that has no check"),
            "{:?}",
            said(&r)
        );
        let (v, _) = import(
            "virtual_server 198.51.100.50 80 {\n  lb_kind DR\n  real_server 198.51.100.21 80 {\n    TCP_CHECK {\n    }\n  }\n}\n",
        );
        assert_eq!(v.unwrap().forwarding, Some(Forwarding::DirectRouting));
        let (v, r) = import("virtual_server fwmark 1 {\n}\n");
        assert!(v.is_none());
        assert!(
            said(&r)[0].contains("virtual_server fwmark 1 is not carried over"),
            "{:?}",
            said(&r)
        );
    }
}
