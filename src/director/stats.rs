//! What `ipvsadm -Ln --stats`, `--rate` and `-c` show, from what the kernel keeps (pure): the
//! connection tracking table's entries of our virtual servers (active and inactive connections
//! per real server, and the listing), the rule counters (connections, packets and bytes), and
//! rates from two samples.
//!
//! The kernel's words come in as text (`/proc/net/nf_conntrack`, `nft -j list counters`):
//! both are bounded and parsed off the event loop by the caller; a line that does not parse
//! is skipped, never trusted.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::Protocol;
use crate::model::virtualserver::ServiceKey;

/// One real server of one virtual server: what a count is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path {
    pub service: ServiceKey,
    pub real: SocketAddr,
}

/// Connections of one real server as IPVS counts them: established TCP is active; any other
/// TCP state, and UDP, inactive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Connections {
    pub active: u64,
    pub inactive: u64,
}

/// One tracked connection of a virtual server (`ipvsadm -Lnc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Connection {
    pub protocol: Protocol,
    /// Seconds until the kernel forgets it.
    pub expires: u64,
    /// The TCP state (`ESTABLISHED`, `TIME_WAIT`, ...); `UDP` for UDP.
    pub state: String,
    pub client: SocketAddr,
    /// The virtual server's address and port.
    pub virtual_server: SocketAddr,
    /// The real server it was sent to.
    pub real_server: SocketAddr,
}

/// At most this many lines of the tracking table are read (a million connections): beyond,
/// the counts say they are partial.
pub(crate) const MAX_LINES: usize = 1_000_000;

/// One line of `/proc/net/nf_conntrack`:
/// `ipv4 2 tcp 6 431999 ESTABLISHED src=C dst=V sport=P dport=Q src=R dst=C' sport=Q' dport=P' [ASSURED] ...`
/// (the first tuple the original direction, the second the reply's: its source is the real
/// server a translated connection went to).
pub(crate) fn parse_line(line: &str) -> Option<Connection> {
    let mut words = line.split_ascii_whitespace();
    let _family = words.next()?;
    let _family_number = words.next()?;
    let proto = words.next()?;
    let _proto_number = words.next()?;
    let expires: u64 = words.next()?.parse().ok()?;
    let rest: Vec<&str> = words.collect();
    let protocol: Protocol = proto.parse().ok()?;
    let (state, fields) = match protocol {
        Protocol::Tcp => (rest.first()?.to_string(), &rest[1..]),
        Protocol::Udp => ("UDP".to_string(), &rest[..]),
    };
    let mut src = Vec::new();
    let mut dst = Vec::new();
    let mut sport = Vec::new();
    let mut dport = Vec::new();
    for f in fields {
        let Some((k, v)) = f.split_once('=') else {
            continue;
        };
        match k {
            "src" => src.push(v.parse::<IpAddr>().ok()?),
            "dst" => dst.push(v.parse::<IpAddr>().ok()?),
            "sport" => sport.push(v.parse::<u16>().ok()?),
            "dport" => dport.push(v.parse::<u16>().ok()?),
            _ => {}
        }
    }
    if src.len() < 2 || dst.is_empty() || sport.len() < 2 || dport.is_empty() {
        return None;
    }
    Some(Connection {
        protocol,
        expires,
        state,
        client: SocketAddr::new(src[0], sport[0]),
        virtual_server: SocketAddr::new(dst[0], dport[0]),
        real_server: SocketAddr::new(src[1], sport[1]),
    })
}

impl Connection {
    /// The real server's path, when it belongs to one of `services`.
    pub(crate) fn path(&self, services: &[ServiceKey]) -> Option<Path> {
        let service = ServiceKey {
            addr: self.virtual_server,
            protocol: self.protocol,
        };
        // Not translated (the director itself answered, no real server): not ours to count.
        if !services.contains(&service) || self.real_server == self.virtual_server {
            return None;
        }
        Some(Path {
            service,
            real: self.real_server,
        })
    }

    fn active(&self) -> bool {
        self.state == "ESTABLISHED"
    }
}

/// The tracking table's connections to `services`, from its text, at most [`MAX_LINES`]
/// lines: (each one, whether the table was read whole).
pub(crate) fn connections(text: &str, services: &[ServiceKey]) -> (Vec<Connection>, bool) {
    let mut out = Vec::new();
    let mut whole = true;
    for (i, line) in text.lines().enumerate() {
        if i == MAX_LINES {
            whole = false;
            break;
        }
        if let Some(c) = parse_line(line)
            && c.path(services).is_some()
        {
            out.push(c);
        }
    }
    (out, whole)
}

/// Active and inactive connections per real server.
pub(crate) fn count(conns: &[Connection], services: &[ServiceKey]) -> BTreeMap<Path, Connections> {
    let mut out: BTreeMap<Path, Connections> = BTreeMap::new();
    for c in conns {
        let Some(p) = c.path(services) else { continue };
        let e = out.entry(p).or_default();
        if c.active() {
            e.active += 1;
        } else {
            e.inactive += 1;
        }
    }
    out
}

/// What the rules counted for one real server since they were first put in force: the
/// connections sent to it and the packets and bytes each way (`ipvsadm --stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Totals {
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl std::ops::AddAssign for Totals {
    fn add_assign(&mut self, o: Totals) {
        self.conns += o.conns;
        self.in_packets += o.in_packets;
        self.out_packets += o.out_packets;
        self.in_bytes += o.in_bytes;
        self.out_bytes += o.out_bytes;
    }
}

/// Per second over the last interval (`ipvsadm --rate`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rates {
    pub conns: f64,
    pub in_packets: f64,
    pub out_packets: f64,
    pub in_bytes: f64,
    pub out_bytes: f64,
}

/// Which of a real server's counters a named counter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Counted {
    /// New connections (their first packet).
    Conns,
    /// Client to real server.
    In,
    /// Real server to client.
    Out,
}

/// From `nft -j list counters`: name → (packets, bytes).
pub(crate) fn counters(json: &str) -> BTreeMap<String, (u64, u64)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return BTreeMap::new();
    };
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| {
            let c = o.get("counter")?;
            Some((
                c["name"].as_str()?.to_string(),
                (c["packets"].as_u64()?, c["bytes"].as_u64()?),
            ))
        })
        .collect()
}

/// The totals of each path, from the counters read and the name each path's counters have.
pub(crate) fn totals(
    read: &BTreeMap<String, (u64, u64)>,
    names: &BTreeMap<(Path, Counted), String>,
) -> BTreeMap<Path, Totals> {
    let mut out: BTreeMap<Path, Totals> = BTreeMap::new();
    for ((path, what), name) in names {
        let Some((packets, bytes)) = read.get(name) else {
            continue;
        };
        let t = out.entry(*path).or_default();
        match what {
            Counted::Conns => t.conns = *packets,
            Counted::In => (t.in_packets, t.in_bytes) = (*packets, *bytes),
            Counted::Out => (t.out_packets, t.out_bytes) = (*packets, *bytes),
        }
    }
    out
}

/// Rates from consecutive samples of the totals: each sample against the one before.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    last: Option<(Duration, BTreeMap<Path, Totals>)>,
}

impl Sampler {
    /// A sample taken at `now` (a monotonic time): the rates since the last one. A path new
    /// since then, or whose counters went back (the rules were replaced), has no rate yet.
    pub(crate) fn observe(
        &mut self,
        now: Duration,
        totals: &BTreeMap<Path, Totals>,
    ) -> BTreeMap<Path, Rates> {
        let mut out = BTreeMap::new();
        if let Some((then, before)) = &self.last {
            let dt = now.saturating_sub(*then).as_secs_f64();
            if dt > 0.0 {
                for (p, t) in totals {
                    let Some(b) = before.get(p) else { continue };
                    let d = |a: u64, b: u64| a.checked_sub(b).map(|x| x as f64 / dt);
                    let (Some(c), Some(ip), Some(op), Some(ib), Some(ob)) = (
                        d(t.conns, b.conns),
                        d(t.in_packets, b.in_packets),
                        d(t.out_packets, b.out_packets),
                        d(t.in_bytes, b.in_bytes),
                        d(t.out_bytes, b.out_bytes),
                    ) else {
                        continue;
                    };
                    out.insert(
                        *p,
                        Rates {
                            conns: c,
                            in_packets: ip,
                            out_packets: op,
                            in_bytes: ib,
                            out_bytes: ob,
                        },
                    );
                }
            }
        }
        self.last = Some((now, totals.clone()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ServiceKey {
        s.parse().unwrap()
    }

    // As Linux 6.x writes /proc/net/nf_conntrack (one line each).
    const TABLE: &str = "\
ipv4     2 tcp      6 431999 ESTABLISHED src=198.51.100.100 dst=198.51.100.61 sport=40000 dport=80 src=198.51.100.13 dst=198.51.100.61 sport=8080 dport=40000 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 431998 ESTABLISHED src=198.51.100.100 dst=198.51.100.61 sport=40001 dport=80 src=198.51.100.13 dst=198.51.100.100 sport=80 dport=40001 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 117 TIME_WAIT src=198.51.100.100 dst=198.51.100.61 sport=40002 dport=80 src=198.51.100.13 dst=198.51.100.100 sport=80 dport=40002 [ASSURED] mark=0 zone=0 use=2
ipv4     2 udp      17 29 src=198.51.100.100 dst=198.51.100.61 sport=5000 dport=53 src=198.51.100.14 dst=198.51.100.100 sport=5353 dport=5000 mark=0 zone=0 use=2
ipv4     2 tcp      6 431999 ESTABLISHED src=198.51.100.100 dst=198.51.100.99 sport=40003 dport=22 src=198.51.100.99 dst=198.51.100.100 sport=22 dport=40003 [ASSURED] mark=0 zone=0 use=2
ipv6     10 tcp      6 431999 ESTABLISHED src=2001:db8::100 dst=2001:db8::61 sport=40004 dport=80 src=2001:db8::13 dst=2001:db8::100 sport=80 dport=40004 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 431999 ESTABLISHED src=garbage
ipv4     2 icmp     1 29 src=198.51.100.100 dst=198.51.100.61 type=8 code=0 id=1 src=198.51.100.61 dst=198.51.100.100 type=0 code=0 id=1 mark=0 use=1
";

    #[test]
    fn the_tracking_table_counts_active_and_inactive_per_real_server() {
        let services = [
            key("198.51.100.61:80/TCP"),
            key("198.51.100.61:53/UDP"),
            key("[2001:db8::61]:80/TCP"),
        ];
        let (conns, whole) = connections(TABLE, &services);
        assert!(whole);
        // The SSH connection to another address, the broken line and ICMP are not ours.
        assert_eq!(conns.len(), 5, "{conns:#?}");
        assert_eq!(
            conns[0],
            Connection {
                protocol: Protocol::Tcp,
                expires: 431999,
                state: "ESTABLISHED".into(),
                client: "198.51.100.100:40000".parse().unwrap(),
                virtual_server: "198.51.100.61:80".parse().unwrap(),
                real_server: "198.51.100.13:8080".parse().unwrap(),
            }
        );
        let c = count(&conns, &services);
        let at = |s: ServiceKey, r: &str| {
            c.get(&Path {
                service: s,
                real: r.parse().unwrap(),
            })
            .copied()
        };
        let c80 = |active, inactive| Some(Connections { active, inactive });
        assert_eq!(at(services[0], "198.51.100.13:8080"), c80(1, 0));
        assert_eq!(at(services[0], "198.51.100.13:80"), c80(1, 1));
        assert_eq!(at(services[1], "198.51.100.14:5353"), c80(0, 1));
        assert_eq!(at(services[2], "[2001:db8::13]:80"), c80(1, 0));
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn a_table_longer_than_the_bound_is_said_partial() {
        let line = TABLE.lines().next().unwrap();
        let text = format!("{line}\n").repeat(MAX_LINES + 3);
        let (conns, whole) = connections(&text, &[key("198.51.100.61:80/TCP")]);
        assert!(!whole);
        assert_eq!(conns.len(), MAX_LINES);
    }

    #[test]
    fn counters_give_totals_and_two_samples_give_rates() {
        // As nft 1.0.6 lists named counters.
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"counter": {"family": "inet", "name": "a_new", "table": "kube_vrrp", "handle": 2, "packets": 3, "bytes": 180}}, {"counter": {"family": "inet", "name": "a_in", "table": "kube_vrrp", "handle": 3, "packets": 30, "bytes": 2000}}, {"counter": {"family": "inet", "name": "a_out", "table": "kube_vrrp", "handle": 4, "packets": 20, "bytes": 9000}}]}"#;
        let read = counters(json);
        assert_eq!(read.len(), 3);
        assert!(counters("not json").is_empty());
        let p = Path {
            service: key("198.51.100.61:80/TCP"),
            real: "198.51.100.13:80".parse().unwrap(),
        };
        let names: BTreeMap<(Path, Counted), String> = [
            ((p, Counted::Conns), "a_new".to_string()),
            ((p, Counted::In), "a_in".to_string()),
            ((p, Counted::Out), "a_out".to_string()),
        ]
        .into();
        let t = totals(&read, &names);
        let first = Totals {
            conns: 3,
            in_packets: 30,
            out_packets: 20,
            in_bytes: 2000,
            out_bytes: 9000,
        };
        assert_eq!(t[&p], first);
        let mut s = Sampler::default();
        assert!(
            s.observe(Duration::from_secs(10), &t).is_empty(),
            "one sample: no rate"
        );
        let mut later = t.clone();
        later.insert(
            p,
            Totals {
                conns: 7,
                in_packets: 50,
                out_packets: 40,
                in_bytes: 4000,
                out_bytes: 13000,
            },
        );
        let r = s.observe(Duration::from_secs(12), &later);
        assert_eq!(
            r[&p],
            Rates {
                conns: 2.0,
                in_packets: 10.0,
                out_packets: 10.0,
                in_bytes: 1000.0,
                out_bytes: 2000.0
            }
        );
        // The rules replaced (counters back to 0): no rate rather than a negative one.
        let r = s.observe(Duration::from_secs(14), &t);
        assert!(r.is_empty());
    }
}

/// One real server's figures as `kube-vrrp status` shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RealStats {
    /// `address:port`.
    pub address: String,
    /// None: the tracking table could not be read (see the service's `note`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<Connections>,
    pub totals: Totals,
    /// None until two samples were taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rates: Option<Rates>,
}

/// One virtual server's figures: its real servers' and their sums.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServiceStats {
    /// `address:port/PROTOCOL`, as in the virtual servers' status.
    pub name: String,
    pub virtual_ip: String,
    /// `ipvsadm`'s words: rr, wrr, sh.
    pub scheduler: String,
    /// `ipvsadm`'s words: Masq (NAT), FullNat, Route (direct routing).
    pub forwarding: String,
    /// Persistence in seconds (`ipvsadm`'s `persistent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<Connections>,
    pub totals: Totals,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rates: Option<Rates>,
    pub real_servers: Vec<RealStats>,
    /// What the figures lack, in words (direct routing's frames pass no counter; a tracking
    /// table that could not be read, or only in part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Sums one service's real servers.
pub(crate) fn sum(reals: &[RealStats]) -> (Option<Connections>, Totals, Option<Rates>) {
    let mut c = Connections::default();
    let mut t = Totals::default();
    let mut r = Rates::default();
    let (mut all_c, mut all_r) = (true, true);
    for x in reals {
        match x.connections {
            Some(k) => {
                c.active += k.active;
                c.inactive += k.inactive;
            }
            None => all_c = false,
        }
        t += x.totals;
        match x.rates {
            Some(k) => {
                r.conns += k.conns;
                r.in_packets += k.in_packets;
                r.out_packets += k.out_packets;
                r.in_bytes += k.in_bytes;
                r.out_bytes += k.out_bytes;
            }
            None => all_r = false,
        }
    }
    (
        all_c.then_some(c),
        t,
        (all_r && !reals.is_empty()).then_some(r),
    )
}
