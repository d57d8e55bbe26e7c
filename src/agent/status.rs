//! What the agent reports: a JSON `/status` per instance and Prometheus `/metrics`, served
//! over a deliberately tiny HTTP/1.1 responder (GET only, one request per connection).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;
use tokio::net::TcpListener;

use crate::telemetry::{Exposition, Kind, Labels, labels, none};
use crate::vrrp::{Counters, State};

/// One instance as reported.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InstanceStatus {
    pub name: String,
    pub family: String,
    pub interface: String,
    /// The address this instance's advertisements come from.
    pub source: Option<IpAddr>,
    /// Where they go: the multicast group (224.0.0.18, ff02::12), or each unicast peer.
    pub advertised_to: Vec<IpAddr>,
    pub virtual_router_id: u8,
    pub version: u8,
    pub state: State,
    pub priority: u8,
    pub effective_priority: u8,
    pub addresses: Vec<String>,
    /// The current master: this node's primary address when Master.
    pub master: Option<IpAddr>,
    pub master_priority: Option<u8>,
    pub last_transition: Option<TransitionStatus>,
    /// Another VRRP router heard on this virtual router ID (last 10 s).
    pub conflict: Option<String>,
    /// What moves the priority or forces FAULT: the interface, an address conflict, checks.
    pub trackers: Vec<TrackerStatus>,
    /// Virtual addresses someone else removed and the agent put back.
    pub addresses_restored: u64,
    pub counters: Counters,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TrackerStatus {
    pub name: String,
    pub weight: i16,
    pub failing: bool,
    /// What it adds to the priority now (negative: subtracts).
    pub contribution: i32,
    /// It puts the instance in FAULT now.
    pub fault: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TransitionStatus {
    pub from: State,
    pub to: State,
    /// Unix time, seconds.
    pub time: f64,
    pub reason: String,
}

/// Node-wide counters: packets no instance could take, send and netlink errors, engine
/// timing, notify results.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GlobalCounters {
    /// Valid VRRP packets for a VRID we do not run (another router on the segment).
    pub unknown_vrid: u64,
    /// Undecodable packets whose VRID we could not attribute, by error kind.
    pub malformed: BTreeMap<String, u64>,
    /// Advertisements and announcements the kernel refused.
    pub send_errors: u64,
    /// Data plane netlink requests (address binds and releases, standby links) that failed.
    pub netlink_errors: u64,
    /// The latest a protocol timer has fired after it was due, in microseconds: how well
    /// "VRRP timing never waits" holds on this node.
    pub max_timer_lateness_us: u64,
    /// The longest the engine spent on one event (a packet, a command, a timer round), µs.
    pub max_engine_busy_us: u64,
    /// Notify commands that exited 0, and that failed or timed out.
    pub notify_ok: u64,
    pub notify_failed: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AgentStatus {
    pub node: String,
    pub instances: BTreeMap<String, InstanceStatus>,
    /// Instances (or VirtualIPs) that cannot run here, and why.
    pub errors: BTreeMap<String, String>,
    pub global: GlobalCounters,
    /// The last configuration load error, if the running configuration is an older one.
    pub config_error: Option<String>,
    /// Health checks, tracked interfaces and the node's condition, per VirtualIP (the latest
    /// result of each).
    pub checks: BTreeMap<String, Vec<crate::api::CheckStatus>>,
    /// Virtual servers: their real servers' health and weights (every node checks; only the
    /// master receives the traffic).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub virtual_servers: Vec<crate::api::VirtualServerStatus>,
    /// Their connections, packets, bytes and rates (`kube-vrrp status`), sampled every 2 s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_server_stats: Vec<crate::director::stats::ServiceStats>,
    /// How long each real server's checks took (a histogram).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check_latency: Vec<crate::director::health::CheckLatency>,
}

/// A request for a status snapshot, answered by the agent's event loop.
pub(crate) type StatusRequest = tokio::sync::oneshot::Sender<AgentStatus>;

fn state_label(s: State) -> &'static str {
    match s {
        State::Initialize => "initialize",
        State::Backup => "backup",
        State::Master => "master",
        State::Fault => "fault",
    }
}

/// Prometheus text exposition of the status: the instances' families, the checks', the
/// node's, in that order.
pub(crate) fn render_metrics(s: &AgentStatus) -> String {
    exposition(s).finish()
}

fn exposition(s: &AgentStatus) -> Exposition {
    let mut out = Exposition::new();
    crate::telemetry::build_info(&mut out);
    instance_metrics(&mut out, s);
    check_metrics(&mut out, s);
    virtual_server_metrics(&mut out, s);
    node_metrics(&mut out, s);
    out
}

/// The `vrrp_instance` and `vrid` labels of an instance's samples (not `instance`:
/// Prometheus gives every target that label of its own).
fn instance_labels(i: &InstanceStatus) -> Labels {
    labels(&[
        ("vrrp_instance", &format!("{}/{}", i.name, i.family)),
        ("vrid", &i.virtual_router_id.to_string()),
    ])
}

/// The `virtual_ip` and `check` labels of a check's samples.
fn check_labels(vip: &str, c: &crate::api::CheckStatus) -> Labels {
    labels(&[("virtual_ip", vip), ("check", &c.name)])
}

/// Per instance: state, priority, the RFC counters, addresses put back.
fn instance_metrics(out: &mut Exposition, s: &AgentStatus) {
    let inst = instance_labels;
    out.metric(
        "kube_vrrp_instance_state",
        Kind::Gauge,
        "1 for the state the instance is in.",
        s.instances.values().flat_map(|i| {
            [
                State::Initialize,
                State::Backup,
                State::Master,
                State::Fault,
            ]
            .into_iter()
            .map(move |st| {
                (
                    inst(i).and(labels(&[("state", state_label(st))])),
                    u64::from(i.state == st),
                )
            })
        }),
    );
    out.metric(
        "kube_vrrp_effective_priority",
        Kind::Gauge,
        "Priority advertised now.",
        s.instances
            .values()
            .map(|i| (inst(i), u64::from(i.effective_priority))),
    );
    type Counter = (&'static str, &'static str, fn(&Counters) -> u64);
    let counters: [Counter; 13] = [
        ("master_transitions_total", "Transitions to Master.", |c| {
            c.master_transitions
        }),
        (
            "adverts_received_total",
            "Valid advertisements received.",
            |c| c.adverts_received,
        ),
        ("adverts_sent_total", "Advertisements sent.", |c| {
            c.adverts_sent
        }),
        (
            "priority_zero_received_total",
            "Priority-0 advertisements received.",
            |c| c.priority_zero_received,
        ),
        (
            "priority_zero_sent_total",
            "Priority-0 advertisements sent.",
            |c| c.priority_zero_sent,
        ),
        (
            "ttl_errors_total",
            "Packets dropped for TTL/hop limit other than 255.",
            |c| c.ip_ttl_errors,
        ),
        (
            "checksum_errors_total",
            "Packets dropped for a bad checksum.",
            |c| c.checksum_errors,
        ),
        (
            "version_errors_total",
            "Packets dropped for another VRRP version.",
            |c| c.version_errors,
        ),
        (
            "advert_interval_errors_total",
            "Packets dropped for another interval (v2).",
            |c| c.advert_interval_errors,
        ),
        (
            "auth_errors_total",
            "Packets dropped for authentication.",
            |c| c.auth_failures + c.auth_type_mismatch + c.invalid_auth_type,
        ),
        (
            "length_errors_total",
            "Packets dropped for a bad length.",
            |c| c.packet_length_errors,
        ),
        (
            "address_list_errors_total",
            "Advertisements with another address list.",
            |c| c.address_list_errors,
        ),
        (
            "lower_priority_masters_total",
            "Advertisements from another master with a lower priority heard while master (a split brain).",
            |c| c.lower_priority_masters,
        ),
    ];
    for (name, help, get) in counters {
        out.metric(
            &format!("kube_vrrp_{name}"),
            Kind::Counter,
            help,
            s.instances.values().map(|i| (inst(i), get(&i.counters))),
        );
    }
    out.metric(
        "kube_vrrp_instance_conflict",
        Kind::Gauge,
        "1 while another router on the virtual router ID is reported (status conflict): another password, address list or interval, or another master (split brain).",
        s.instances
            .values()
            .map(|i| (inst(i), u64::from(i.conflict.is_some()))),
    );
    out.metric(
        "kube_vrrp_addresses_restored_total",
        Kind::Counter,
        "Virtual addresses removed by someone else and put back.",
        s.instances
            .values()
            .map(|i| (inst(i), i.addresses_restored)),
    );
}

/// Per health check (and tracked interface): healthy, fault, and what it adds to the priority.
fn check_metrics(out: &mut Exposition, s: &AgentStatus) {
    let check = check_labels;
    out.metric(
        "kube_vrrp_check_healthy",
        Kind::Gauge,
        "1 while a health check (or tracked interface) passes, after fall / rise.",
        s.checks
            .iter()
            .flat_map(|(v, cs)| cs.iter().map(move |c| (check(v, c), u64::from(c.healthy)))),
    );
    out.metric(
        "kube_vrrp_check_fault",
        Kind::Gauge,
        "1 while a failing weight-0 check holds its VirtualIP in FAULT.",
        s.checks
            .iter()
            .flat_map(|(v, cs)| cs.iter().map(move |c| (check(v, c), u64::from(c.fault)))),
    );
    // Signed, so a family of its own.
    out.metric(
        "kube_vrrp_check_contribution",
        Kind::Gauge,
        "What a check adds to the priority now (negative: subtracts).",
        s.checks
            .iter()
            .flat_map(|(v, cs)| cs.iter().map(move |c| (check(v, c), c.contribution))),
    );
}

/// Per real server: health, weight in force, transitions.
fn virtual_server_metrics(out: &mut Exposition, s: &AgentStatus) {
    let reals = || {
        s.virtual_servers.iter().flat_map(|v| {
            v.real_servers.iter().map(move |r| {
                (
                    labels(&[
                        ("virtual_ip", &v.virtual_ip),
                        ("virtual_server", &v.name),
                        ("real_server", &r.address),
                    ]),
                    r,
                )
            })
        })
    };
    out.metric(
        "kube_vrrp_real_server_up",
        Kind::Gauge,
        "1 while a real server passes its check (or is unchecked).",
        reals().map(|(l, r)| (l, u64::from(r.healthy))),
    );
    out.metric(
        "kube_vrrp_real_server_weight",
        Kind::Gauge,
        "The weight in force of a real server (absent while taken out).",
        reals().filter_map(|(l, r)| r.weight.map(|w| (l, u64::from(w)))),
    );
    out.metric(
        "kube_vrrp_real_server_transitions_total",
        Kind::Counter,
        "How often a real server went down or came back.",
        reals().map(|(l, r)| (l, r.transitions)),
    );
    // The VirtualIPs this node is master of: where a virtual server carries new connections.
    let master: std::collections::BTreeSet<&str> = s
        .instances
        .values()
        .filter(|i| i.state == State::Master)
        .map(|i| i.name.as_str())
        .collect();
    let vs_labels = |v: &crate::api::VirtualServerStatus| {
        labels(&[("virtual_ip", &v.virtual_ip), ("virtual_server", &v.name)])
    };
    out.metric(
        "kube_vrrp_virtual_server_serving",
        Kind::Gauge,
        "1 on the node that carries a virtual server's new connections: master of its VirtualIP, rules in force.",
        s.virtual_servers.iter().map(|v| {
            (
                vs_labels(v),
                u64::from(v.programmed && master.contains(v.virtual_ip.as_str())),
            )
        }),
    );
    out.metric(
        "kube_vrrp_virtual_server_sorry_server",
        Kind::Gauge,
        "1 while a virtual server's new connections go to its sorry server (no real server up).",
        s.virtual_servers.iter().map(|v| {
            (
                vs_labels(v),
                u64::from(v.serving == crate::director::Serving::Sorry.as_str()),
            )
        }),
    );
    // Connections, packets and bytes per real server (NAT and full NAT), from the last sample.
    // Direct routing's frames pass no counter: its servers have none to show.
    let sampled = || {
        s.virtual_server_stats
            .iter()
            .filter(|v| v.forwarding != "Route")
            .flat_map(|v| {
                v.real_servers.iter().map(move |r| {
                    (
                        [
                            ("virtual_ip", v.virtual_ip.as_str()),
                            ("virtual_server", v.name.as_str()),
                            ("real_server", r.address.as_str()),
                        ],
                        r,
                    )
                })
            })
    };
    let with = |base: [(&str, &str); 3], k: &str, v: &str| {
        let mut l = base.to_vec();
        l.push((k, v));
        labels(&l)
    };
    out.metric(
        "kube_vrrp_real_server_connections",
        Kind::Gauge,
        "A real server's tracked connections: active (TCP established) and inactive (other TCP states, UDP), as ipvsadm's ActiveConn and InActConn.",
        sampled().flat_map(|(l, r)| {
            r.connections.into_iter().flat_map(move |c| {
                [
                    (with(l, "state", "active"), c.active),
                    (with(l, "state", "inactive"), c.inactive),
                ]
            })
        }),
    );
    out.metric(
        "kube_vrrp_real_server_connections_total",
        Kind::Counter,
        "Connections the rules sent to a real server (ipvsadm --stats Conns).",
        sampled().map(|(l, r)| (labels(&l), r.totals.conns)),
    );
    out.metric(
        "kube_vrrp_real_server_packets_total",
        Kind::Counter,
        "Packets to (in) and from (out) a real server through the director (ipvsadm --stats InPkts, OutPkts).",
        sampled().flat_map(|(l, r)| {
            [
                (with(l, "direction", "in"), r.totals.in_packets),
                (with(l, "direction", "out"), r.totals.out_packets),
            ]
        }),
    );
    out.metric(
        "kube_vrrp_real_server_bytes_total",
        Kind::Counter,
        "Bytes to (in) and from (out) a real server through the director (ipvsadm --stats InBytes, OutBytes).",
        sampled().flat_map(|(l, r)| {
            [
                (with(l, "direction", "in"), r.totals.in_bytes),
                (with(l, "direction", "out"), r.totals.out_bytes),
            ]
        }),
    );
    out.histogram(
        "kube_vrrp_real_server_check_duration_seconds",
        "How long a real server's checks took (a refused or timed-out attempt included).",
        s.check_latency.iter().map(|c| {
            (
                labels(&[
                    ("virtual_ip", &c.virtual_ip),
                    ("virtual_server", &c.virtual_server),
                    ("real_server", &c.real_server),
                ]),
                c.latency.cumulative(),
                c.latency.sum_seconds,
                c.latency.count,
            )
        }),
    );
    out.metric(
        "kube_vrrp_virtual_server_programmed",
        Kind::Gauge,
        "1 while a virtual server's rules are in force on this node (backups too: ready to take over).",
        s.virtual_servers.iter().map(|v| {
            (
                labels(&[("virtual_ip", &v.virtual_ip), ("virtual_server", &v.name)]),
                u64::from(v.programmed),
            )
        }),
    );
}

/// The node's: notify hooks, errors, packets no instance took, engine timing, send errors.
fn node_metrics(out: &mut Exposition, s: &AgentStatus) {
    out.metric(
        "kube_vrrp_notify_total",
        Kind::Counter,
        "Notify commands run, by result.",
        [
            (labels(&[("result", "ok")]), s.global.notify_ok),
            (labels(&[("result", "failed")]), s.global.notify_failed),
        ],
    );
    out.metric(
        "kube_vrrp_agent_ready",
        Kind::Gauge,
        "1 while every VirtualIP this node should run runs (what /readyz answers).",
        std::iter::once((none(), u64::from(s.errors.is_empty()))),
    );
    out.metric(
        "kube_vrrp_instance_errors",
        Kind::Gauge,
        "Instances or VirtualIPs that cannot run on this node.",
        std::iter::once((none(), s.errors.len() as u64)),
    );
    out.metric(
        "kube_vrrp_unknown_vrid_total",
        Kind::Counter,
        "Valid VRRP packets for a virtual router this node does not run.",
        std::iter::once((none(), s.global.unknown_vrid)),
    );
    out.metric(
        "kube_vrrp_malformed_packets_total",
        Kind::Counter,
        "Undecodable VRRP packets not attributable to an instance.",
        s.global
            .malformed
            .iter()
            .map(|(k, v)| (labels(&[("kind", k)]), *v)),
    );
    // Base units: seconds, as Prometheus names them.
    let seconds = |us: u64| us as f64 / 1e6;
    out.metric(
        "kube_vrrp_max_timer_lateness_seconds",
        Kind::Gauge,
        "The latest a protocol timer fired after it was due.",
        std::iter::once((none(), seconds(s.global.max_timer_lateness_us))),
    );
    out.metric(
        "kube_vrrp_max_engine_busy_seconds",
        Kind::Gauge,
        "The longest the VRRP engine spent on one event.",
        std::iter::once((none(), seconds(s.global.max_engine_busy_us))),
    );
    out.metric(
        "kube_vrrp_send_errors_total",
        Kind::Counter,
        "Advertisements or announcements the kernel refused.",
        std::iter::once((none(), s.global.send_errors)),
    );
}

/// Whether the agent is ready: nothing it should run fails to start. The reasons, unless
/// `brief` (a listener on the network gets the count only).
pub(crate) fn readiness(s: &AgentStatus, brief: bool) -> crate::http::Response {
    if s.errors.is_empty() {
        return ("200 OK", "text/plain", "ready\n".to_string());
    }
    let mut body = format!(
        "not ready: {} of what this node should run cannot start\n",
        s.errors.len()
    );
    if !brief {
        for (k, e) in &s.errors {
            body.push_str(&format!("{k}: {e}\n"));
        }
    }
    ("503 Service Unavailable", "text/plain", body)
}

/// Serves `/status` (JSON), `/metrics` (Prometheus), `/healthz` (liveness) and `/readyz`
/// (readiness) until the task is dropped; with `metrics_only`, all but `/status` (for a
/// listener on the network).
pub(crate) async fn serve(
    listener: TcpListener,
    agent: tokio::sync::mpsc::Sender<StatusRequest>,
    metrics_only: bool,
) {
    crate::http::serve(listener, move |path| {
        let agent = agent.clone();
        async move {
            let snapshot = || async {
                let (tx, rx) = tokio::sync::oneshot::channel();
                agent.send(tx).await.ok()?;
                tokio::time::timeout(std::time::Duration::from_secs(2), rx)
                    .await
                    .ok()?
                    .ok()
            };
            let unavailable = (
                "503 Service Unavailable",
                "text/plain",
                "agent busy or stopping\n".to_string(),
            );
            match path.as_str() {
                "/status" if !metrics_only => match snapshot().await {
                    Some(s) => (
                        "200 OK",
                        "application/json",
                        serde_json::to_string_pretty(&s).unwrap_or_default(),
                    ),
                    None => unavailable,
                },
                "/metrics" => match snapshot().await {
                    Some(s) => ("200 OK", crate::http::PROMETHEUS, render_metrics(&s)),
                    None => unavailable,
                },
                // Liveness: the event loop and the VRRP engine answer.
                "/healthz" => match snapshot().await {
                    Some(_) => ("200 OK", "text/plain", "ok\n".to_string()),
                    None => unavailable,
                },
                // Readiness: every instance this node should run runs (or keeps its last good
                // configuration, which is not an error here).
                "/readyz" => match snapshot().await {
                    Some(s) => readiness(&s, metrics_only),
                    None => unavailable,
                },
                _ if metrics_only => crate::http::not_found("try /metrics"),
                _ => crate::http::not_found("try /status or /metrics"),
            }
        }
    })
    .await
}

#[cfg(test)]
mod dashboard_tests {
    /// Every metric the Grafana dashboard queries is one the agent exports.
    #[test]
    fn the_dashboard_queries_only_exported_metrics() {
        // Every family, also those without samples yet (which the page leaves out).
        let exported = super::exposition(&super::AgentStatus::default()).names();
        let dashboard = include_str!("../../charts/kube-vrrp/dashboards/kube-vrrp.json");
        let v: serde_json::Value = serde_json::from_str(dashboard).unwrap();
        let mut seen = 0;
        for p in v["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().unwrap() {
                let expr = t["expr"].as_str().unwrap();
                for name in expr
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.starts_with("kube_vrrp_"))
                {
                    seen += 1;
                    assert!(
                        exported.iter().any(|e| e == name),
                        "the dashboard queries {name}, which the agent does not export"
                    );
                }
            }
        }
        assert!(seen >= 10, "{seen}");
    }

    /// Every metric the chart's alerts use is one an agent (or, kube_vrrp_virtualips, the
    /// controller) exports.
    #[test]
    fn the_alerts_use_only_exported_metrics() {
        let exported = super::exposition(&super::AgentStatus::default()).names();
        let rules = include_str!("../../charts/kube-vrrp/rules/kube-vrrp.rules.yaml");
        let used: std::collections::BTreeSet<&str> = rules
            .lines()
            .filter(|l| l.trim_start().starts_with("expr:") || l.starts_with("          "))
            .flat_map(|l| l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
            .filter(|w| w.starts_with("kube_vrrp_"))
            .collect();
        assert!(used.len() >= 7, "{used:?}");
        for name in used {
            assert!(
                name == "kube_vrrp_virtualips" || exported.iter().any(|e| e == name),
                "an alert uses {name}, which the agent does not export"
            );
        }
    }
}
