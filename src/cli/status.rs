//! `kube-vrrp status`: the virtual servers of the agent on this node as `ipvsadm -Ln` shows
//! them (`--stats`, `--rate`, `--connections` as `-Lnc`), in text or JSON. It asks the agent's
//! /status (loopback) and, for the connection listing, reads this node's tracking table.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::api::VirtualServerStatus;
use crate::director::stats::{self, Connection, ServiceStats};
use crate::model::virtualserver::ServiceKey;
use serde::Serialize;

/// What to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum View {
    /// Virtual servers, real servers, weights, health, active and inactive connections.
    List,
    /// Connections, packets and bytes since the rules were put in force.
    Stats,
    /// Per second, over the agent's last 2 s sample.
    Rate,
    /// Every tracked connection to a virtual server.
    Connections,
}

#[derive(clap::Args)]
pub(crate) struct StatusArgs {
    /// The agent's /status address (its --listen).
    #[arg(long, default_value = "127.0.0.1:9650")]
    address: SocketAddr,
    /// ipvsadm's --stats.
    #[arg(long, conflicts_with_all = ["rate", "connections"])]
    stats: bool,
    /// ipvsadm's --rate.
    #[arg(long, conflicts_with = "connections")]
    rate: bool,
    /// ipvsadm's -c: the connections.
    #[arg(long, short = 'c')]
    connections: bool,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// At most this much of /status is read.
const MAX_STATUS: u64 = 64 << 20;

/// One virtual server: the agent's status and figures together.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Service {
    #[serde(flatten)]
    stats: ServiceStats,
    /// Master of its VirtualIP with the rules in force: it carries the new connections.
    serving: bool,
    up: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    health: Vec<Health>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    address: String,
    /// The weight in force; none: taken out.
    weight: Option<u32>,
    /// up, down or drained.
    state: &'static str,
}

pub(crate) fn run(a: StatusArgs) -> ExitCode {
    let view = match (a.stats, a.rate, a.connections) {
        (true, _, _) => View::Stats,
        (_, true, _) => View::Rate,
        (_, _, true) => View::Connections,
        _ => View::List,
    };
    let status = match fetch(a.address) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (node, services) = match services(&status) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: the agent's /status: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = if view == View::Connections {
        let keys: Vec<ServiceKey> = services.iter().filter_map(|s| key(&s.stats.name)).collect();
        let conns = match std::fs::File::open("/proc/net/nf_conntrack") {
            Ok(f) => {
                let mut text = String::new();
                if let Err(e) = f.take(MAX_STATUS).read_to_string(&mut text) {
                    eprintln!("error: /proc/net/nf_conntrack: {e}");
                    return ExitCode::FAILURE;
                }
                if text.len() as u64 >= MAX_STATUS {
                    // A line cut in the middle is not listed.
                    text.truncate(text.rfind('\n').unwrap_or(0));
                    eprintln!(
                        "warning: the first {} MiB of the tracking table only",
                        MAX_STATUS >> 20
                    );
                }
                stats::connections(&text, &keys).0
            }
            Err(e) => {
                eprintln!(
                    "error: /proc/net/nf_conntrack: {e} (the kernel needs CONFIG_NF_CONNTRACK_PROCFS)"
                );
                return ExitCode::FAILURE;
            }
        };
        if a.json {
            serde_json::to_string_pretty(&conns).expect("serializable") + "\n"
        } else {
            connections_text(&conns)
        }
    } else if a.json {
        serde_json::to_string_pretty(&serde_json::json!({"node": node, "virtualServers": services}))
            .expect("serializable")
            + "\n"
    } else {
        text(&node, &services, view)
    };
    let _ = std::io::stdout().write_all(out.as_bytes());
    ExitCode::SUCCESS
}

/// GET /status from the agent.
fn fetch(address: SocketAddr) -> Result<serde_json::Value, String> {
    let why = |e: std::io::Error| {
        format!(
            "cannot ask the agent at {address}: {e} (is it running here, with --listen {address}?)"
        )
    };
    let mut s = TcpStream::connect_timeout(&address, Duration::from_secs(3)).map_err(why)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(why)?;
    s.write_all(b"GET /status HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(why)?;
    let mut body = Vec::new();
    s.take(MAX_STATUS).read_to_end(&mut body).map_err(why)?;
    let text = String::from_utf8_lossy(&body);
    let (head, json) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{address} answered no HTTP"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!(
            "{address}: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    serde_json::from_str(json).map_err(|e| format!("{address}: /status is not JSON: {e}"))
}

fn key(name: &str) -> Option<ServiceKey> {
    name.parse().ok()
}

/// The node and its virtual servers from the agent's /status.
fn services(status: &serde_json::Value) -> Result<(String, Vec<Service>), String> {
    let node = status["node"].as_str().unwrap_or_default().to_string();
    let list: Vec<VirtualServerStatus> =
        serde_json::from_value(status["virtualServers"].clone()).unwrap_or_default();
    let figures: Vec<ServiceStats> = serde_json::from_value(status["virtualServerStats"].clone())
        .map_err(|e| e.to_string())
        .or_else(|e| {
            if status["virtualServerStats"].is_null() {
                Ok(Vec::new())
            } else {
                Err(e)
            }
        })?;
    // Instances by key (`name/ipv4`, `name/ipv6`): a dual-stack VirtualIP may be master in
    // one family only, and a virtual server is carried by its address's family.
    let masters: Vec<&str> = status["instances"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, i)| i["state"] == "Master")
        .map(|(k, _)| k.as_str())
        .collect();
    let instance_of = |v: &VirtualServerStatus| {
        let v4 = key(&v.name).is_none_or(|k| k.addr.is_ipv4());
        format!("{}/{}", v.virtual_ip, if v4 { "ipv4" } else { "ipv6" })
    };
    let out = list
        .into_iter()
        .map(|v| {
            let stats = figures
                .iter()
                .find(|f| f.name == v.name && f.virtual_ip == v.virtual_ip)
                .cloned()
                .unwrap_or_else(|| ServiceStats {
                    name: v.name.clone(),
                    virtual_ip: v.virtual_ip.clone(),
                    note: Some("no sample yet".into()),
                    ..Default::default()
                });
            Service {
                serving: v.programmed && masters.contains(&instance_of(&v).as_str()),
                up: v.up.clone(),
                error: v.error.clone(),
                health: v
                    .real_servers
                    .iter()
                    .map(|r| Health {
                        address: r.address.clone(),
                        weight: r.weight,
                        state: if r.drained {
                            "drained"
                        } else if r.healthy {
                            "up"
                        } else {
                            "down"
                        },
                    })
                    .collect(),
                stats,
            }
        })
        .collect();
    Ok((node, out))
}

/// ipvsadm's layout: a virtual server's line, then one `  -> ` line per real server.
fn text(node: &str, services: &[Service], view: View) -> String {
    let mut s = format!("kube-vrrp virtual servers on {node}\n");
    let head = match view {
        View::Stats => format!(
            "{:<34}{:>10}{:>10}{:>10}{:>12}{:>12}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        ),
        View::Rate => format!(
            "{:<34}{:>10}{:>10}{:>10}{:>12}{:>12}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        ),
        _ => format!(
            "Prot LocalAddress:Port Scheduler Flags\n  -> {:<28}{:<9}{:<7}{:<11}{:<10}{}\n",
            "RemoteAddress:Port", "Forward", "Weight", "ActiveConn", "InActConn", "Health"
        ),
    };
    s.push_str(&head);
    for v in services {
        let st = &v.stats;
        let (addr, proto) = st.name.rsplit_once('/').unwrap_or((&st.name, ""));
        let first = format!("{proto:<4} {addr}");
        match view {
            View::Stats => {
                s.push_str(&totals_line(&first, &st.totals));
                for r in &st.real_servers {
                    s.push_str(&totals_line(&format!("  -> {}", r.address), &r.totals));
                }
            }
            View::Rate => {
                s.push_str(&rates_line(&first, st.rates.as_ref()));
                for r in &st.real_servers {
                    s.push_str(&rates_line(
                        &format!("  -> {}", r.address),
                        r.rates.as_ref(),
                    ));
                }
            }
            _ => {
                let mut flags = Vec::new();
                if let Some(p) = st.persistent {
                    flags.push(format!("persistent {p}"));
                }
                flags.push(if v.serving { "serving" } else { "standby" }.to_string());
                s.push_str(&format!(
                    "{first} {} {} ({}, up {})\n",
                    st.scheduler,
                    flags.join(" "),
                    st.virtual_ip,
                    v.up
                ));
                for h in &v.health {
                    let c = st
                        .real_servers
                        .iter()
                        .find(|r| r.address == h.address)
                        .and_then(|r| r.connections);
                    let (act, inact) = match c {
                        Some(c) => (c.active.to_string(), c.inactive.to_string()),
                        None => ("-".into(), "-".into()),
                    };
                    let weight = h.weight.map_or("-".to_string(), |w| w.to_string());
                    s.push_str(&format!(
                        "  -> {:<28}{:<9}{:<7}{:<11}{:<10}{}\n",
                        h.address, st.forwarding, weight, act, inact, h.state
                    ));
                }
            }
        }
        if let Some(e) = &v.error {
            s.push_str(&format!("  ! {e}\n"));
        }
        if let Some(n) = &st.note {
            s.push_str(&format!("  # {n}\n"));
        }
    }
    s
}

fn totals_line(first: &str, t: &stats::Totals) -> String {
    format!(
        "{first:<34}{:>10}{:>10}{:>10}{:>12}{:>12}\n",
        t.conns, t.in_packets, t.out_packets, t.in_bytes, t.out_bytes
    )
}

fn rates_line(first: &str, r: Option<&stats::Rates>) -> String {
    match r {
        Some(r) => format!(
            "{first:<34}{:>10.1}{:>10.1}{:>10.1}{:>12.0}{:>12.0}\n",
            r.conns, r.in_packets, r.out_packets, r.in_bytes, r.out_bytes
        ),
        None => format!("{first:<34}{:>10}\n", "(no rate yet)"),
    }
}

/// ipvsadm -Lnc's layout.
fn connections_text(conns: &[Connection]) -> String {
    let mut s = format!(
        "{:<4}{:<8}{:<13}{:<23}{:<23}{}\n",
        "pro", "expire", "state", "source", "virtual", "destination"
    );
    for c in conns {
        s.push_str(&format!(
            "{:<4}{:<8}{:<13}{:<22} {:<22} {}\n",
            c.protocol,
            format!("{:02}:{:02}", c.expires / 60, c.expires % 60),
            c.state,
            c.client.to_string(),
            c.virtual_server.to_string(),
            c.real_server
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_status_reads_as_ipvsadm_would_show_it() {
        let status = serde_json::json!({
            "node": "n1",
            "instances": {"lb/ipv4": {"name": "lb", "state": "Master"}, "lb/ipv6": {"name": "lb", "state": "Backup"}},
            "virtualServers": [{"virtualIp": "lb", "name": "198.51.100.61:80/TCP", "up": "1/2 (1 drained)",
                "serving": "real servers", "programmed": true, "realServers": [
                {"address": "198.51.100.13:80", "healthy": true, "weight": 1, "transitions": 0},
                {"address": "198.51.100.13:8080", "healthy": true, "weight": 0, "drained": true, "transitions": 0}]}],
            "virtualServerStats": [{"name": "198.51.100.61:80/TCP", "virtualIp": "lb", "scheduler": "rr",
                "forwarding": "FullNat", "connections": {"active": 5, "inactive": 1},
                "totals": {"conns": 6, "inPackets": 60, "outPackets": 40, "inBytes": 4000, "outBytes": 9000},
                "realServers": [
                {"address": "198.51.100.13:80", "connections": {"active": 2, "inactive": 1},
                 "totals": {"conns": 3, "inPackets": 30, "outPackets": 20, "inBytes": 2000, "outBytes": 4500},
                 "rates": {"conns": 1.0, "inPackets": 10.0, "outPackets": 5.0, "inBytes": 800.0, "outBytes": 400.0}},
                {"address": "198.51.100.13:8080", "connections": {"active": 3, "inactive": 0},
                 "totals": {"conns": 3, "inPackets": 30, "outPackets": 20, "inBytes": 2000, "outBytes": 4500}}]}]
        });
        let (node, services) = services(&status).unwrap();
        assert!(services[0].serving);
        let list = text(&node, &services, View::List);
        assert!(
            list.contains("TCP  198.51.100.61:80 rr serving (lb, up 1/2 (1 drained))"),
            "{list}"
        );
        assert!(
            list.contains(
                "  -> 198.51.100.13:80            FullNat  1      2          1         up"
            ),
            "{list}"
        );
        assert!(
            list.contains(
                "198.51.100.13:8080          FullNat  0      3          0         drained"
            ),
            "{list}"
        );
        let st = text(&node, &services, View::Stats);
        assert!(
            st.contains("TCP  198.51.100.61:80                      6        60        40        4000        9000"),
            "{st}"
        );
        let rate = text(&node, &services, View::Rate);
        assert!(rate.contains("(no rate yet)"), "{rate}");
        assert!(rate.contains("  -> 198.51.100.13:80                    1.0      10.0       5.0         800         400"), "{rate}");
        // A backup: standby.
        let mut backup = status.clone();
        backup["instances"]["lb/ipv4"]["state"] = "Backup".into();
        let (_, s) = super::services(&backup).unwrap();
        assert!(text("n2", &s, View::List).contains("rr standby"));
    }
}
