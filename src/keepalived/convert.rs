//! One file's statements → its node's instances. `global_defs` gives the node name and VRRP
//! version, `vrrp_script` / `vrrp_track_file` the checks (read before any instance, as
//! keepalived does), and each `vrrp_instance` becomes a VirtualIP spec with this node's
//! priority, in stages: options, addresses, tracking, then what an instance must have.
//! Whatever is not carried over is a warning; a value that cannot be is an error.

use std::collections::BTreeMap;

use crate::api::{
    AuthenticationSpec, GarpSpec, HealthCheckSpec, NotifySpec, TrackInterfaceSpec, VirtualIpSpec,
};
use crate::vrrp::VirtualAddress;

use super::parser::Stmt;
use super::report::{Place, Report};
use super::scripts::{Script, command_argv, vrrp_script, vrrp_track_file};
use super::values::seconds;

/// keepalived's priority when an instance names none.
const DEFAULT_PRIORITY: u8 = 100;

pub(crate) use super::sync::Instance;

/// What a file defines before its instances.
struct Definitions {
    /// `router_id`, when no node name was given.
    node: Option<String>,
    /// `global_defs vrrp_version`.
    version: Option<u8>,
    /// `vrrp_script` and `vrrp_track_file` by name.
    scripts: BTreeMap<String, Script>,
}

/// A file's instances, on `node` (given, else its `router_id`, else `default_node`).
pub(crate) fn file(
    stmts: &[Stmt],
    node: Option<String>,
    default_node: impl FnOnce() -> String,
    report: &mut Report,
) -> Vec<Instance> {
    let defs = definitions(stmts, node, report);
    let node = defs.node.unwrap_or_else(default_node);
    note_untracked_scripts(stmts, &defs.scripts, report);
    let mut instances = Vec::new();
    let mut servers = Vec::new();
    let mut groups = Vec::new();
    for s in stmts {
        match s.key() {
            "global_defs" | "vrrp_script" | "vrrp_track_file" => {}
            "vrrp_instance" => {
                instances.extend(instance(s, &node, defs.version, &defs.scripts, report))
            }
            "virtual_server" => servers.extend(super::lvs::virtual_server(s, report)),
            "virtual_server_group" => report.warning(
                &s.at,
                "virtual_server_group is not carried over: list each virtual server on its own",
            ),
            "vrrp_sync_group" => groups.push(s),
            other => report.warning(&s.at, format!("{other} is not carried over")),
        }
    }
    for g in groups {
        super::sync::sync_group(g, &mut instances, report);
    }
    attach_servers(&mut instances, servers, report);
    instances
}

/// Each virtual server goes to the instance holding its address.
fn attach_servers(
    instances: &mut [Instance],
    servers: Vec<super::lvs::Imported>,
    report: &mut Report,
) {
    for v in servers {
        let holds = |i: &&mut Instance| {
            i.spec
                .addresses
                .iter()
                .chain(i.spec.excluded_addresses.iter())
                .any(|a| a.split('/').next() == Some(v.spec.address.as_str()))
        };
        match instances.iter_mut().find(|i| holds(i)) {
            Some(i) => i.spec.virtual_servers.push(v.spec),
            None => report.warning(
                &v.at,
                format!(
                    "virtual_server {} {}: no vrrp_instance of this file holds {}: not carried over (a virtual server runs on a VirtualIP's address)",
                    v.spec.address, v.spec.port, v.spec.address
                ),
            ),
        }
    }
}

/// Globals and scripts, in file order (keepalived reads the whole file before it starts
/// instances).
fn definitions(stmts: &[Stmt], node: Option<String>, report: &mut Report) -> Definitions {
    let mut defs = Definitions {
        node,
        version: None,
        scripts: BTreeMap::new(),
    };
    for s in stmts {
        let script = match s.key() {
            "global_defs" => {
                global_defs(s, &mut defs, report);
                continue;
            }
            "vrrp_script" => vrrp_script(s, report),
            "vrrp_track_file" => vrrp_track_file(s, report),
            _ => continue,
        };
        if let Some(sc) = script {
            defs.scripts
                .insert(s.arg(1).unwrap_or_default().to_string(), sc);
        }
    }
    defs
}

/// `global_defs`: the node name from `router_id` (when none was given), the VRRP version.
fn global_defs(s: &Stmt, defs: &mut Definitions, report: &mut Report) {
    for g in s.children() {
        match g.key() {
            "router_id" => {
                if defs.node.is_none() {
                    defs.node = g.arg(1).map(String::from);
                    report.note(
                        &g.at,
                        format!(
                            "node name {} from router_id: pass --node NAME per file to use your Kubernetes node names",
                            g.arg(1).unwrap_or_default()
                        ),
                    );
                }
            }
            "vrrp_version" => defs.version = g.arg(1).and_then(|v| v.parse().ok()),
            "script_user" | "enable_script_security" => report.note(
                &g.at,
                format!(
                    "{}: commands run as --exec-user on each agent (cluster mode: nobody by default)",
                    g.key()
                ),
            ),
            other => report.warning(&g.at, format!("global_defs {other} is not carried over")),
        }
    }
}

/// A script no instance tracks is not imported, as keepalived does not run it: a note.
fn note_untracked_scripts(stmts: &[Stmt], scripts: &BTreeMap<String, Script>, report: &mut Report) {
    let tracked: Vec<&str> = stmts
        .iter()
        .filter(|s| s.key() == "vrrp_instance")
        .flat_map(|s| s.children())
        .filter(|c| matches!(c.key(), "track_script" | "track_file"))
        .flat_map(|c| c.children())
        .map(|t| t.key())
        .collect();
    for (name, sc) in scripts {
        if !tracked.contains(&name.as_str()) {
            report.note(
                &sc.at,
                format!(
                    "{name} is defined but no instance tracks it: not imported (keepalived does not run it either)"
                ),
            );
        }
    }
}

/// An instance while its options are read.
struct Draft {
    spec: VirtualIpSpec,
    priority: u8,
    vrid: Option<u8>,
    notify: NotifySpec,
    garp: GarpSpec,
    /// `advert_int` as written, and where: bounded once the version is known.
    advert: Option<(String, Place)>,
}

/// A `vrrp_instance` on `node`; `None` (an error) without a router ID or addresses.
fn instance(
    s: &Stmt,
    node: &str,
    version: Option<u8>,
    scripts: &BTreeMap<String, Script>,
    report: &mut Report,
) -> Option<Instance> {
    let name = s.arg(1).unwrap_or("VI").to_string();
    let mut draft = Draft {
        spec: empty_spec(),
        priority: DEFAULT_PRIORITY,
        vrid: None,
        notify: NotifySpec::default(),
        garp: GarpSpec::default(),
        advert: None,
    };
    draft.spec.version = version.unwrap_or(2);
    // The interface first: address options refer to it.
    draft.spec.interface = s
        .children()
        .iter()
        .find(|c| c.key() == "interface")
        .and_then(|c| c.arg(1))
        .map(String::from);
    for c in s.children() {
        option(c, &mut draft, scripts, report);
    }
    finish(draft, name, node, &s.at, report)
}

fn empty_spec() -> VirtualIpSpec {
    yaml_serde::from_str("addresses: []").expect("an empty spec")
}

/// One statement of a `vrrp_instance` into the draft.
fn option(c: &Stmt, draft: &mut Draft, scripts: &BTreeMap<String, Script>, report: &mut Report) {
    let spec = &mut draft.spec;
    match c.key() {
        "interface" => {}
        "state" => report.note(
            &c.at,
            format!(
                "state {}: kube-vrrp starts every node as backup; the priority decides",
                c.arg(1).unwrap_or_default()
            ),
        ),
        "virtual_router_id" => {
            if let Some(v) = one_to_255(c, report) {
                draft.vrid = Some(v);
            }
        }
        "priority" => {
            if let Some(p) = one_to_255(c, report) {
                draft.priority = p;
            }
        }
        "advert_int" => {
            draft.advert = Some((c.arg(1).unwrap_or_default().to_string(), c.at.clone()))
        }
        "nopreempt" => spec.preempt = false,
        "preempt" => spec.preempt = true,
        "preempt_delay" => spec.preempt_delay = c.arg(1).and_then(seconds).map(Into::into),
        "use_vmac" => spec.virtual_mac = true,
        "accept" => spec.accept_mode = true,
        "no_accept" => spec.accept_mode = false,
        "authentication" => {
            if let Some(a) = authentication(c, report) {
                spec.authentication = Some(a);
            }
        }
        "virtual_ipaddress" => {
            let a = addresses(c, spec.interface.as_deref(), report);
            spec.addresses.extend(a);
        }
        "virtual_ipaddress_excluded" => {
            let a = addresses(c, spec.interface.as_deref(), report);
            std::sync::Arc::make_mut(&mut spec.excluded_addresses).extend(a);
        }
        "unicast_peer" => unicast_peers(c, &mut spec.unicast_peers, report),
        "unicast_src_ip" => report.note(
            &c.at,
            "unicast_src_ip: the agent sends from the interface's primary address",
        ),
        "track_interface" => spec.track_interfaces.extend(track_interfaces(c)),
        "track_script" | "track_file" => track_scripts(c, scripts, &mut spec.health_checks, report),
        "notify_master" => draft.notify.master = command_argv(&c.rest(), &c.at, report).words,
        "notify_backup" => draft.notify.backup = command_argv(&c.rest(), &c.at, report).words,
        "notify_fault" => draft.notify.fault = command_argv(&c.rest(), &c.at, report).words,
        "notify_stop" => draft.notify.stop = command_argv(&c.rest(), &c.at, report).words,
        "notify" => draft.notify.any = command_argv(&c.rest(), &c.at, report).words,
        "garp_master_delay" => draft.garp.master_delay = c.arg(1).and_then(seconds),
        "garp_master_repeat" => draft.garp.master_repeat = c.arg(1).and_then(|v| v.parse().ok()),
        "garp_master_refresh" => draft.garp.master_refresh = c.arg(1).and_then(seconds),
        "version" | "vrrp_version" => {
            spec.version = c
                .arg(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(spec.version)
        }
        other => report.warning(&c.at, format!("vrrp_instance {other} is not carried over")),
    }
}

/// `KEY N` with N from 1 to 255 (a router ID, a priority); else an error.
/// `advert_int` in what the version carries: VRRPv2 whole seconds from 1 to 255 (keepalived
/// rounds a fraction too), VRRPv3 centiseconds from 10 ms to 40.95 s; another value is
/// carried as the nearest, with a warning; no number, a warning and the default.
fn advert_interval(text: &str, version: u8, at: &Place, report: &mut Report) -> Option<String> {
    let Some(v) = text
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
    else {
        report.warning(
            at,
            format!("advert_int {text:?}: not a number of seconds: the default (1s) is used"),
        );
        return None;
    };
    let (carried, ms) = if version == 2 {
        let s = v.round().clamp(1.0, 255.0);
        (s != v, s as u64 * 1000)
    } else {
        let cs = (v * 100.0).round().clamp(1.0, 4095.0);
        (cs / 100.0 != v, cs as u64 * 10)
    };
    let d = crate::units::format_duration(std::time::Duration::from_millis(ms));
    if carried {
        report.warning(
            at,
            format!("advert_int {text}: VRRPv{version} carries {d}, the nearest it can"),
        );
    }
    Some(d)
}

fn one_to_255(c: &Stmt, report: &mut Report) -> Option<u8> {
    let v = c
        .arg(1)
        .and_then(|v| v.parse::<u8>().ok())
        .filter(|v| *v > 0);
    if v.is_none() {
        report.error(
            &c.at,
            format!("{} {}: use 1 to 255", c.key(), c.arg(1).unwrap_or_default()),
        );
    }
    v
}

/// `authentication { auth_type PASS auth_pass ... }`: the password (8 characters at most, as
/// in the packet), when there is one.
fn authentication(c: &Stmt, report: &mut Report) -> Option<AuthenticationSpec> {
    let mut pass = None;
    for a in c.children() {
        match (a.key(), a.arg(1)) {
            ("auth_type", Some("PASS")) => {}
            ("auth_type", Some(t)) => {
                report.warning(&a.at, format!("auth_type {t} is not supported (PASS only)"))
            }
            ("auth_pass", p) => pass = p.map(|p| p.chars().take(8).collect::<String>()),
            (k, _) => report.warning(&a.at, format!("authentication {k} is not carried over")),
        }
    }
    let password = pass?;
    report.note(
        &c.at,
        "auth_pass: in a cluster, move the password to a Secret (passwordSecretRef)",
    );
    Some(AuthenticationSpec {
        password: Some(password),
        password_secret_ref: None,
    })
}

/// `virtual_ipaddress { ADDR[/LEN] [dev IF] [...] }`: the addresses; a bad one is an error.
fn addresses(block: &Stmt, interface: Option<&str>, report: &mut Report) -> Vec<String> {
    block
        .children()
        .iter()
        .filter_map(|a| {
            let address = address(a, report)?;
            Some(match address_options(a, interface, report) {
                Some(dev) => format!("{address} dev {dev}"),
                None => address,
            })
        })
        .collect()
}

/// One address line's address, as written when it has a prefix, else with keepalived's.
fn address(a: &Stmt, report: &mut Report) -> Option<String> {
    let text = a.key();
    match text.parse::<VirtualAddress>() {
        Ok(_) if text.contains('/') => Some(text.to_string()),
        Ok(v) => {
            report.note(
                &a.at,
                format!(
                    "{text} has no prefix: /{} as keepalived assumes",
                    v.prefix_len
                ),
            );
            Some(v.to_string())
        }
        Err(e) => {
            report.error(&a.at, format!("{text}: not an address: {e}"));
            None
        }
    }
}

/// One address line's options after the address: a `dev` other than the instance's
/// interface is carried (the address is bound there; VRRP stays on the instance's), the
/// others are not.
fn address_options(a: &Stmt, interface: Option<&str>, report: &mut Report) -> Option<String> {
    let text = a.key();
    let mut i = 1;
    let mut out = None;
    while let Some(opt) = a.arg(i) {
        match opt {
            "dev" => {
                let dev = a.arg(i + 1).unwrap_or_default();
                match crate::model::address::split_interface(&format!("{text} dev {dev}")) {
                    Ok((_, Some(d))) if Some(d) != interface => {
                        report.note(
                            &a.at,
                            format!(
                                "{text} dev {dev}: bound on {dev}, VRRP stays on {} (the interface is tracked)",
                                interface.unwrap_or("the instance's interface")
                            ),
                        );
                        out = Some(d.to_string());
                    }
                    Ok(_) => {}
                    Err(e) => report.warning(
                        &a.at,
                        format!("{e}: the dev is not carried over (the address is bound on the instance's interface)"),
                    ),
                }
                i += 2;
            }
            "label" | "scope" | "brd" | "broadcast" => {
                report.warning(
                    &a.at,
                    format!(
                        "{text} {opt} {} is not carried over",
                        a.arg(i + 1).unwrap_or_default()
                    ),
                );
                i += 2;
            }
            other => {
                report.warning(&a.at, format!("{text} {other} is not carried over"));
                i += 1;
            }
        }
    }
    out
}

/// `unicast_peer { ADDR ... }` into `peers`; what is no address is an error.
fn unicast_peers(c: &Stmt, peers: &mut Vec<String>, report: &mut Report) {
    for p in c.children() {
        match p.key().parse::<std::net::IpAddr>() {
            Ok(ip) => peers.push(ip.to_string()),
            Err(_) => report.error(&p.at, format!("{}: not an address", p.key())),
        }
    }
}

/// `track_interface { IF [weight W] ... }`.
fn track_interfaces(c: &Stmt) -> Vec<TrackInterfaceSpec> {
    c.children()
        .iter()
        .map(|t| TrackInterfaceSpec {
            name: t.key().to_string(),
            weight: weight(t).and_then(|w| w.parse().ok()).unwrap_or(0),
        })
        .collect()
}

/// `NAME weight W`: W's text.
fn weight(t: &Stmt) -> Option<&str> {
    (t.arg(1) == Some("weight")).then(|| t.arg(2)).flatten()
}

/// `track_script` / `track_file { NAME [weight W] ... }` into `checks` (each once); a name no
/// script defines is an error.
fn track_scripts(
    c: &Stmt,
    scripts: &BTreeMap<String, Script>,
    checks: &mut Vec<HealthCheckSpec>,
    report: &mut Report,
) {
    for t in c.children() {
        let Some(sc) = scripts.get(t.key()) else {
            report.error(
                &t.at,
                format!(
                    "{} names {}, which is not defined (vrrp_script / vrrp_track_file)",
                    c.key(),
                    t.key()
                ),
            );
            continue;
        };
        let mut check = sc.check.clone();
        if let Some(w) = weight(t) {
            check.weight = w.parse().unwrap_or(check.weight);
        }
        if !checks.iter().any(|h| h.name == check.name) {
            checks.push(check);
        }
    }
}

/// The instance, once it has what it must: a router ID and addresses (IPv6 ones need
/// VRRPv3).
fn finish(
    draft: Draft,
    name: String,
    node: &str,
    at: &Place,
    report: &mut Report,
) -> Option<Instance> {
    let Draft {
        mut spec,
        priority,
        vrid,
        notify,
        garp,
        advert,
    } = draft;
    let Some(vrid) = vrid else {
        report.error(at, format!("vrrp_instance {name} has no virtual_router_id"));
        return None;
    };
    if spec.addresses.is_empty() {
        report.error(at, format!("vrrp_instance {name} has no virtual_ipaddress"));
        return None;
    }
    // An excluded address is bound with the instance's family: one of a family nothing is
    // advertised in (keepalived's usual way to add IPv6 to an IPv4 instance) needs an
    // instance of its own family, so it is advertised.
    let advertised = |v6: bool| spec.addresses.iter().any(|a| a.contains(':') == v6);
    let (kept, moved): (Vec<String>, Vec<String>) = spec
        .excluded_addresses
        .iter()
        .cloned()
        .partition(|a| advertised(a.contains(':')));
    if !moved.is_empty() {
        report.warning(
            at,
            format!(
                "virtual_ipaddress_excluded {}: no address of that family is advertised: carried in addresses (a VRRP instance of that family advertises them)",
                moved.join(", ")
            ),
        );
        spec.addresses.extend(moved);
        spec.excluded_addresses = kept.into();
    }
    if spec.addresses.iter().any(|a| a.contains(':')) && spec.version == 2 {
        report.note(at, "IPv6 addresses need VRRPv3: version 3");
        spec.version = 3;
    }
    if let Some((text, at)) = advert {
        spec.advert_interval = advert_interval(&text, spec.version, &at, report).map(Into::into);
    }
    if notify != NotifySpec::default() {
        spec.notify = Some(notify);
    }
    if garp != GarpSpec::default() {
        spec.garp = Some(garp);
    }
    spec.virtual_router_id = Some(vrid);
    Some(Instance {
        name,
        node: node.to_string(),
        priority,
        spec,
        at: at.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::parser::tests::parse_text;
    use crate::keepalived::report::tests::lines;

    /// A file's instances on node n1 (no `--node`: `router_id` may name it).
    fn convert(text: &str, node: Option<&str>) -> (Vec<Instance>, Report) {
        let (stmts, mut report) = parse_text("k.conf", text);
        let out = file(
            &stmts,
            node.map(String::from),
            || "from-file".into(),
            &mut report,
        );
        (out, report)
    }

    const MINIMAL: &str = "vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    virtual_ipaddress {
        192.0.2.10/24
    }
}
";

    #[test]
    fn a_minimal_vrrp_instance() {
        let (i, r) = convert(MINIMAL, Some("n1"));
        assert!(r.errors.is_empty() && r.warnings.is_empty(), "{r:?}");
        assert_eq!(
            lines(&r.notes),
            ["k.conf:2: state MASTER: kube-vrrp starts every node as backup; the priority decides"]
        );
        assert_eq!(i.len(), 1);
        let i = &i[0];
        assert_eq!(
            (i.name.as_str(), i.node.as_str(), i.priority),
            ("VI_1", "n1", 150)
        );
        assert_eq!(i.at.line, 1);
        let s = &i.spec;
        assert_eq!(s.addresses, ["192.0.2.10/24"]);
        assert_eq!(s.interface.as_deref(), Some("eth0"));
        assert_eq!(s.virtual_router_id, Some(51));
        assert_eq!(s.version, 2);
        assert_eq!(s.advert_interval.as_deref(), Some("1s"));
        assert!(s.preempt);
        assert!(s.notify.is_none() && s.garp.is_none() && s.authentication.is_none());
        assert!(s.priorities.is_empty(), "merge sets them");
    }

    #[test]
    fn the_node_is_given_else_the_router_id_else_the_default() {
        let with_router_id = format!("global_defs {{\n router_id LB1\n}}\n{MINIMAL}");
        let (i, r) = convert(&with_router_id, Some("n1"));
        assert_eq!(i[0].node, "n1");
        assert!(r.notes.iter().all(|n| !n.text.contains("router_id")));
        let (i, r) = convert(&with_router_id, None);
        assert_eq!(i[0].node, "LB1");
        assert_eq!(
            lines(&r.notes)[0],
            "k.conf:2: node name LB1 from router_id: pass --node NAME per file to use your Kubernetes node names"
        );
        let (i, _) = convert(MINIMAL, None);
        assert_eq!(i[0].node, "from-file");
    }

    #[test]
    fn global_vrrp_version_and_ipv6_addresses_set_the_version() {
        let (i, _) = convert(
            &format!("global_defs {{\n vrrp_version 3\n}}\n{MINIMAL}"),
            None,
        );
        assert_eq!(i[0].spec.version, 3);
        let v6 = MINIMAL.replace("192.0.2.10/24", "2001:db8::10/64");
        let (i, r) = convert(&v6, None);
        assert_eq!(i[0].spec.version, 3);
        assert_eq!(
            lines(&r.notes)[1],
            "k.conf:1: IPv6 addresses need VRRPv3: version 3"
        );
    }

    #[test]
    fn addresses_keep_their_prefix_or_get_keepalived_s() {
        let text = MINIMAL.replace(
            "192.0.2.10/24",
            "192.0.2.10/24 dev eth0\n 192.0.2.11\n 2001:db8::1\n 192.0.2.12/24 dev eth1 label eth1:0 brd + foo\n 192.0.2.300\n",
        );
        let (i, r) = convert(&text, Some("n1"));
        assert_eq!(
            i[0].spec.addresses,
            [
                "192.0.2.10/24",
                "192.0.2.11/32",
                "2001:db8::1/128",
                "192.0.2.12/24 dev eth1"
            ]
        );
        assert_eq!(
            lines(&r.errors),
            [
                "k.conf:12: 192.0.2.300: not an address: \"192.0.2.300\" is not an IP address (write ip/prefix, e.g. 192.0.2.10/24)"
            ]
        );
        assert_eq!(
            lines(&r.warnings),
            [
                "k.conf:11: 192.0.2.12/24 label eth1:0 is not carried over",
                "k.conf:11: 192.0.2.12/24 brd + is not carried over",
                "k.conf:11: 192.0.2.12/24 foo is not carried over",
            ]
        );
        assert_eq!(
            lines(&r.notes)[1..],
            [
                "k.conf:9: 192.0.2.11 has no prefix: /32 as keepalived assumes",
                "k.conf:10: 2001:db8::1 has no prefix: /128 as keepalived assumes",
                "k.conf:11: 192.0.2.12/24 dev eth1: bound on eth1, VRRP stays on eth0 (the interface is tracked)",
                "k.conf:1: IPv6 addresses need VRRPv3: version 3",
            ]
        );
    }

    #[test]
    fn an_instance_without_router_id_or_addresses_is_an_error() {
        let (i, r) = convert(
            "vrrp_instance A {\n virtual_ipaddress {\n 10.0.0.1/24\n }\n}\nvrrp_instance B {\n virtual_router_id 2\n}\nvrrp_instance C {\n virtual_router_id 0\n priority 256\n}\n",
            Some("n1"),
        );
        assert!(i.is_empty());
        assert_eq!(
            lines(&r.errors),
            [
                "k.conf:1: vrrp_instance A has no virtual_router_id",
                "k.conf:6: vrrp_instance B has no virtual_ipaddress",
                "k.conf:10: virtual_router_id 0: use 1 to 255",
                "k.conf:11: priority 256: use 1 to 255",
                "k.conf:9: vrrp_instance C has no virtual_router_id",
            ]
        );
    }

    #[test]
    fn tracked_scripts_interfaces_and_weights() {
        let text = "vrrp_script chk_a {\n script \"[ ! -f /m ]\"\n weight -10\n}
vrrp_script chk_unused {\n script \"[ ! -f /u ]\"\n}
vrrp_track_file tf {\n file /run/tf\n}
vrrp_instance VI_1 {
 virtual_router_id 1
 virtual_ipaddress {\n 10.0.0.1/24\n }
 track_interface {\n eth0 weight -20\n eth1\n }
 track_script {\n chk_a weight 30\n chk_a\n chk_missing\n }
 track_file {\n tf weight x\n }
}
";
        let (i, r) = convert(text, Some("n1"));
        assert_eq!(
            lines(&r.errors),
            [
                "k.conf:23: track_script names chk_missing, which is not defined (vrrp_script / vrrp_track_file)"
            ]
        );
        assert!(lines(&r.notes).contains(
            &"k.conf:5: chk_unused is defined but no instance tracks it: not imported (keepalived does not run it either)".to_string()
        ));
        let s = &i[0].spec;
        let ifs: Vec<_> = s
            .track_interfaces
            .iter()
            .map(|t| (t.name.as_str(), t.weight))
            .collect();
        assert_eq!(ifs, [("eth0", -20), ("eth1", 0)]);
        let checks: Vec<_> = s
            .health_checks
            .iter()
            .map(|h| (h.name.as_str(), h.weight))
            .collect();
        assert_eq!(
            checks,
            [("chk-a", 30), ("tf", 0)],
            "each once, the first weight"
        );
    }

    #[test]
    fn options_carried_over_and_not() {
        let text = "vrrp_instance VI_1 {
 interface eth0
 virtual_router_id 7
 nopreempt
 preempt_delay 2.5
 use_vmac
 accept
 authentication {\n auth_type AH\n auth_pass 0123456789\n other 1\n }
 virtual_ipaddress {\n 10.0.0.1/24\n }
 virtual_ipaddress_excluded {\n 10.0.0.2/24\n }
 unicast_src_ip 10.0.0.3
 unicast_peer {\n 10.0.0.4\n peer-name\n }
 notify_master /usr/bin/logger master
 notify \"/bin/echo $1 > /tmp/state\"
 garp_master_delay 5
 garp_master_repeat 3
 smtp_alert
 version 3
}
";
        let (i, r) = convert(text, Some("n1"));
        assert_eq!(lines(&r.errors), ["k.conf:22: peer-name: not an address"]);
        assert_eq!(
            lines(&r.warnings),
            [
                "k.conf:9: auth_type AH is not supported (PASS only)",
                "k.conf:11: authentication other is not carried over",
                "k.conf:28: vrrp_instance smtp_alert is not carried over",
            ]
        );
        assert_eq!(
            lines(&r.notes),
            [
                "k.conf:8: auth_pass: in a cluster, move the password to a Secret (passwordSecretRef)",
                "k.conf:19: unicast_src_ip: the agent sends from the interface's primary address",
            ]
        );
        let s = &i[0].spec;
        assert_eq!(s.addresses, ["10.0.0.1/24"]);
        // Bound with the others, not listed in the advertisements (keepalived's meaning).
        assert_eq!(*s.excluded_addresses, ["10.0.0.2/24"]);
        assert!(!s.preempt && s.virtual_mac && s.accept_mode);
        assert_eq!(s.preempt_delay.as_deref(), Some("2500ms"));
        assert_eq!(s.version, 3);
        assert_eq!(
            s.authentication.as_ref().unwrap().password.as_deref(),
            Some("01234567")
        );
        assert_eq!(s.unicast_peers, ["10.0.0.4"]);
        let notify = s.notify.as_ref().unwrap();
        assert_eq!(notify.master, ["/usr/bin/logger", "master"]);
        assert_eq!(notify.any, ["/bin/sh", "-c", "/bin/echo $1 > /tmp/state"]);
        let garp = s.garp.as_ref().unwrap();
        assert_eq!(
            (garp.master_delay.as_deref(), garp.master_repeat),
            (Some("5s"), Some(3))
        );
    }

    #[test]
    fn a_sync_group_is_one_virtualip_whose_members_addresses_keep_their_interfaces() {
        let text = "vrrp_sync_group VG {\n group {\n  FRONT BACK\n }\n}\n\
vrrp_instance FRONT {\n interface eth0\n virtual_router_id 51\n priority 150\n virtual_ipaddress {\n  198.51.100.50/24\n }\n}\n\
vrrp_instance BACK {\n interface eth1\n virtual_router_id 52\n priority 150\n track_interface {\n  eth2\n }\n virtual_ipaddress {\n  203.0.113.1/24\n }\n}\n";
        let (i, r) = convert(text, Some("n1"));
        assert_eq!(i.len(), 1, "{:?}", lines(&r.warnings));
        assert_eq!(i[0].name, "FRONT");
        assert_eq!(
            i[0].spec.addresses,
            ["198.51.100.50/24", "203.0.113.1/24 dev eth1"]
        );
        assert_eq!(i[0].spec.track_interfaces[0].name, "eth2");
        assert!(
            lines(&r.notes)
                .iter()
                .any(|n| n.starts_with("k.conf:1: vrrp_sync_group VG: BACK merged into FRONT: its addresses are bound on eth1")),
            "{:?}",
            lines(&r.notes)
        );
        // Another VRRP version: two VirtualIPs, and a warning.
        let v3 = text.replace(
            " virtual_router_id 52\n",
            " virtual_router_id 52\n version 3\n",
        );
        let (i, r) = convert(&v3, Some("n1"));
        assert_eq!(i.len(), 2);
        assert!(
            lines(&r.warnings)[0].contains("not merged"),
            "{:?}",
            lines(&r.warnings)
        );
    }

    #[test]
    fn top_level_blocks_not_carried_over_are_warnings() {
        let (i, r) = convert(
            "virtual_server 10.0.0.1 80 {\n}\nvrrp_sync_group VG {\n}\nstatic_routes {\n}\nvirtual_server_group G {\n}\n",
            Some("n1"),
        );
        assert!(i.is_empty());
        assert_eq!(
            lines(&r.warnings),
            [
                "k.conf:5: static_routes is not carried over",
                "k.conf:7: virtual_server_group is not carried over: list each virtual server on its own",
                "k.conf:3: vrrp_sync_group VG: none of its instances is in this file: not carried over",
                "k.conf:1: virtual_server 10.0.0.1 80: no vrrp_instance of this file holds 10.0.0.1: not carried over (a virtual server runs on a VirtualIP's address)",
            ]
        );
    }

    #[test]
    fn global_defs_not_carried_over_are_warnings_or_notes() {
        let (_, r) = convert(
            "global_defs {\n notification_email {\n a@b\n }\n script_user nobody\n}\n",
            Some("n1"),
        );
        assert_eq!(
            lines(&r.warnings),
            ["k.conf:2: global_defs notification_email is not carried over"]
        );
        assert_eq!(
            lines(&r.notes),
            [
                "k.conf:5: script_user: commands run as --exec-user on each agent (cluster mode: nobody by default)"
            ]
        );
    }
}
