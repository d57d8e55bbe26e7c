//! The virtual servers' nftables rules: one table of our own (`inet kube_vrrp`), replaced whole
//! in one transaction (`nft -f -`: add, delete, define, applied atomically or not at all), never
//! touching anyone else's tables (kube-proxy, firewalld, Cilium). Connections already made keep
//! their real server: NAT state lives in conntrack, not in the rules. [`script`] is pure;
//! [`apply`] runs `nft`.
//!
//! Rules match the virtual server's address: only the master receives its traffic, so every
//! node programs the same rules ahead and a takeover carries the service in VRRP time.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::api::{Forwarding, Protocol};
use crate::model::virtualserver::{HASH_BUCKETS, Targets, VirtualServer};

/// Our table: family `inet`, this name.
pub const TABLE: &str = "kube_vrrp";

/// How long one `nft` run may take.
const NFT_TIMEOUT: Duration = Duration::from_secs(10);

/// One virtual server and where its new connections go now.
pub struct Programmed<'a> {
    pub vs: &'a VirtualServer,
    pub targets: Targets,
    /// Direct routing: the interface the address is on, its MAC, and the real servers' MACs
    /// (targets without one are never given); none where the address does not run.
    pub link: Option<DrLink>,
}

/// What direct routing rewrites frames with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrLink {
    pub interface: String,
    pub mac: [u8; 6],
    /// The MAC the address answers with: only frames sent to it are ours to forward (a
    /// frame a switch floods also reaches the backups, which must not send it on too).
    pub answers: [u8; 6],
    pub macs: std::collections::BTreeMap<IpAddr, [u8; 6]>,
}

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The script that replaces our table with these rules (or removes it, when there are none).
pub fn script(services: &[Programmed<'_>]) -> String {
    let mut s = format!(
        "add table inet {TABLE}\ndelete table inet {TABLE}\nadd table netdev {TABLE}\ndelete table netdev {TABLE}\n"
    );
    if services.is_empty() {
        return s;
    }
    let routed: Vec<&Programmed<'_>> = services
        .iter()
        .filter(|p| p.vs.forwarding == Forwarding::DirectRouting)
        .collect();
    s.push_str(&direct_routing(&routed));
    let mut dnat = String::new();
    let mut local = String::new();
    let mut snat = String::new();
    for p in services {
        let dr = p.vs.forwarding == Forwarding::DirectRouting;
        if dr && p.link.is_none() {
            continue;
        }
        let Some(to) = target_expr(p) else { continue };
        let (fam, l4) = match_of(p.vs);
        let rule = format!(
            "\t\t{fam} daddr {} {l4} dport {} dnat {fam} to {to}\n",
            p.vs.address, p.vs.port
        );
        // Direct routing forwards frames before the IP stack sees them; the director's own
        // connections never cross that ingress, so they are NATed here instead.
        if !dr {
            dnat.push_str(&rule);
        }
        local.push_str(&rule);
        // Full NAT, and the director's own connections by direct routing (a real server
        // would answer the address it holds itself): every connection comes from the
        // director. NAT: only those of a real server that is a client of its own service (a
        // control-plane node reaching the API through the address), which would otherwise get
        // their reply from another real server, or their own packet back, as kube-proxy's
        // hairpin masquerade avoids.
        let from = match p.vs.forwarding {
            Forwarding::FullNat | Forwarding::DirectRouting => String::new(),
            Forwarding::Nat => {
                let reals: std::collections::BTreeSet<IpAddr> =
                    p.vs.reals.iter().map(|r| r.addr.ip()).collect();
                if reals.is_empty() {
                    continue;
                }
                let list: Vec<String> = reals.iter().map(IpAddr::to_string).collect();
                format!("{fam} saddr {{ {} }} ", list.join(", "))
            }
        };
        let _ = writeln!(
            snat,
            "\t\t{from}meta l4proto {l4} ct original {fam} daddr {} ct original proto-dst {} masquerade",
            p.vs.address, p.vs.port
        );
    }
    if local.is_empty() {
        return s;
    }
    let _ = writeln!(s, "table inet {TABLE} {{");
    // prerouting: clients; output: the director itself (a hairpin).
    // (`dstnat` names -100 only for prerouting.)
    for (chain, priority, rules) in [("prerouting", "dstnat", &dnat), ("output", "-100", &local)] {
        let _ = writeln!(
            s,
            "\tchain {chain} {{\n\t\ttype nat hook {chain} priority {priority}; policy accept;\n{rules}\t}}"
        );
    }
    let _ = writeln!(
        s,
        "\tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n{snat}\t}}"
    );
    s.push_str("}\n");
    s
}

/// Direct routing: a netdev table with an ingress chain per interface that rewrites the
/// frames for the address to a real server's MAC (and the source to the director's, so the
/// switch does not learn the client on the director's port) and sends them straight out.
fn direct_routing(services: &[&Programmed<'_>]) -> String {
    let mut chains: std::collections::BTreeMap<&str, String> = Default::default();
    for p in services {
        // Not running on this node (no interface): nothing to send frames out of.
        let Some(link) = p.link.as_ref() else {
            continue;
        };
        let (fam, l4) = match_of(p.vs);
        let lookup = |a: &SocketAddr| link.macs.get(&a.ip()).map(mac);
        let to = match &p.targets {
            Targets::None => continue,
            Targets::One(a) => match lookup(a) {
                Some(m) => m,
                None => continue,
            },
            Targets::Hash(buckets) => {
                let Some(items) = buckets
                    .iter()
                    .enumerate()
                    .map(|(i, a)| lookup(a).map(|m| format!("{i} : {m}")))
                    .collect::<Option<Vec<_>>>()
                else {
                    continue;
                };
                let key = if p.vs.scheduler == crate::api::Scheduler::SourceHash {
                    format!("{fam} saddr")
                } else {
                    format!("{fam} saddr . {l4} sport")
                };
                format!(
                    "jhash {key} mod {HASH_BUCKETS} seed 0x6b757665 map {{ {} }}",
                    items.join(", ")
                )
            }
            Targets::Counter(_) => continue,
        };
        let _ = writeln!(
            chains.entry(link.interface.as_str()).or_default(),
            "\t\tether daddr {} {fam} daddr {} {l4} dport {} ether saddr set {} ether daddr set {to} fwd to \"{}\"",
            mac(&link.answers),
            p.vs.address,
            p.vs.port,
            mac(&link.mac),
            link.interface
        );
    }
    if chains.is_empty() {
        return String::new();
    }
    let mut s = format!("table netdev {TABLE} {{\n");
    for (dev, rules) in chains {
        let name: String = dev
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let _ = writeln!(
            s,
            "\tchain in_{name} {{\n\t\ttype filter hook ingress device \"{dev}\" priority -300; policy accept;\n{rules}\t}}"
        );
    }
    s.push_str("}\n");
    s
}

/// `ip`/`ip6` and `tcp`/`udp` of a virtual server.
fn match_of(vs: &VirtualServer) -> (&'static str, &'static str) {
    let fam = if vs.address.is_ipv4() { "ip" } else { "ip6" };
    let l4 = match vs.protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    };
    (fam, l4)
}

/// `address . port` as a map value; a bare IPv6 address is fine there.
fn concat(a: &SocketAddr) -> String {
    format!("{} . {}", a.ip(), a.port())
}

/// `address:port` as a single target (`[v6]:port`).
fn single(a: &SocketAddr) -> String {
    match a.ip() {
        IpAddr::V4(_) => a.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]:{}", a.port()),
    }
}

/// The DNAT target; `None`: nowhere (no rule: the director's own stack answers).
fn target_expr(p: &Programmed<'_>) -> Option<String> {
    let fam = if p.vs.address.is_ipv4() { "ip" } else { "ip6" };
    Some(match &p.targets {
        Targets::None => return None,
        Targets::One(a) => single(a),
        Targets::Counter(slots) => {
            let total = slots.last().map(|(_, hi, _)| hi + 1).unwrap_or(1);
            let items: Vec<String> = slots
                .iter()
                .map(|(lo, hi, a)| {
                    if lo == hi {
                        format!("{lo} : {}", concat(a))
                    } else {
                        format!("{lo}-{hi} : {}", concat(a))
                    }
                })
                .collect();
            format!("numgen inc mod {total} map {{ {} }}", items.join(", "))
        }
        Targets::Hash(buckets) => {
            let items: Vec<String> = buckets
                .iter()
                .enumerate()
                .map(|(i, a)| format!("{i} : {}", concat(a)))
                .collect();
            format!(
                "jhash {fam} saddr mod {HASH_BUCKETS} seed 0x6b757665 map {{ {} }}",
                items.join(", ")
            )
        }
    })
}

/// The `nft` program: on PATH, or where distributions and our image put it.
pub fn nft_program() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join("nft"))
        .find(|p| p.is_file())
}

/// Runs `nft -f -` with `script`: applied whole, or an error in words.
pub async fn apply(nft: &Path, script: &str) -> Result<(), String> {
    let mut child = tokio::process::Command::new(nft)
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        // Piped, not null: a bare root filesystem may have no /dev/null.
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", nft.display()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let body = script.to_string();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(body.as_bytes()).await;
    });
    let out = tokio::time::timeout(NFT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("nft did not finish in {NFT_TIMEOUT:?}"))?
        .map_err(|e| format!("nft: {e}"))?;
    let _ = writer.await;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "nft refused the rules: {}",
            err.lines().next().unwrap_or("no message")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Scheduler;
    use crate::model::virtualserver::RealServer;

    fn vs(addr: &str, forwarding: Forwarding) -> VirtualServer {
        VirtualServer {
            address: addr.parse().unwrap(),
            port: 80,
            protocol: Protocol::Tcp,
            scheduler: Scheduler::RoundRobin,
            forwarding,
            reals: Vec::<RealServer>::new(),
            sorry: None,
            inhibit_on_failure: false,
        }
    }

    #[test]
    fn no_services_removes_the_table() {
        assert_eq!(
            script(&[]),
            "add table inet kube_vrrp\ndelete table inet kube_vrrp\nadd table netdev kube_vrrp\ndelete table netdev kube_vrrp\n"
        );
    }

    #[test]
    fn the_rules_say_what_the_model_decided() {
        let mut a = vs("198.51.100.50", Forwarding::Nat);
        a.reals = ["198.51.100.22:8080", "198.51.100.21:8080"]
            .map(|r| RealServer {
                addr: r.parse().unwrap(),
                weight: 1,
                check: None,
            })
            .into();
        let b = vs("2001:db8:1::50", Forwarding::FullNat);
        let c = vs("198.51.100.51", Forwarding::Nat);
        let s = script(&[
            Programmed {
                vs: &a,
                targets: Targets::Counter(vec![
                    (0, 0, "198.51.100.21:8080".parse().unwrap()),
                    (1, 3, "198.51.100.22:8080".parse().unwrap()),
                ]),
                link: None,
            },
            Programmed {
                vs: &b,
                targets: Targets::One("[2001:db8:1::21]:80".parse().unwrap()),
                link: None,
            },
            Programmed {
                vs: &c,
                targets: Targets::None,
                link: None,
            },
        ]);
        assert!(s.contains(
            "\t\tip daddr 198.51.100.50 tcp dport 80 dnat ip to numgen inc mod 4 map { 0 : 198.51.100.21 . 8080, 1-3 : 198.51.100.22 . 8080 }\n"
        ), "{s}");
        assert!(
            s.contains(
                "\t\tip6 daddr 2001:db8:1::50 tcp dport 80 dnat ip6 to [2001:db8:1::21]:80\n"
            ),
            "{s}"
        );
        assert!(s.contains(
            "\t\tmeta l4proto tcp ct original ip6 daddr 2001:db8:1::50 ct original proto-dst 80 masquerade\n"
        ), "{s}");
        // NAT: a real server reaching its own service is masqueraded (a hairpin).
        assert!(s.contains(
            "\t\tip saddr { 198.51.100.21, 198.51.100.22 } meta l4proto tcp ct original ip daddr 198.51.100.50 ct original proto-dst 80 masquerade\n"
        ), "{s}");
        assert_eq!(s.matches("masquerade").count(), 2, "{s}");
        assert!(!s.contains("198.51.100.51"), "nowhere: no rule\n{s}");
        // The same rules for clients and for the director itself.
        assert_eq!(s.matches("dnat ip to numgen").count(), 2, "{s}");
    }

    #[test]
    fn direct_routing_rewrites_both_macs_and_hashes_flows() {
        let mut v = vs("198.51.100.50", Forwarding::DirectRouting);
        let r1: SocketAddr = "198.51.100.21:80".parse().unwrap();
        let r2: SocketAddr = "198.51.100.22:80".parse().unwrap();
        let link = DrLink {
            interface: "eth0".into(),
            mac: [2, 0, 0, 0, 0, 1],
            answers: [2, 0, 0, 0, 0, 1],
            macs: [
                (r1.ip(), [2, 0, 0, 0, 0, 0x21]),
                (r2.ip(), [2, 0, 0, 0, 0, 0x22]),
            ]
            .into(),
        };
        let s = script(&[Programmed {
            vs: &v,
            targets: Targets::Hash(vec![r1, r2]),
            link: Some(link.clone()),
        }]);
        assert!(s.contains(
            "\tchain in_eth0 {\n\t\ttype filter hook ingress device \"eth0\" priority -300; policy accept;\n\t\tether daddr 02:00:00:00:00:01 ip daddr 198.51.100.50 tcp dport 80 ether saddr set 02:00:00:00:00:01 ether daddr set jhash ip saddr . tcp sport mod 64 seed 0x6b757665 map { 0 : 02:00:00:00:00:21, 1 : 02:00:00:00:00:22 } fwd to \"eth0\"\n"
        ), "{s}");
        // The director's own connections: NAT in its output chain only, from its address.
        let (head, inet) = s.split_once("table inet kube_vrrp {").expect("the hairpin");
        assert!(!head.contains("dnat"), "{s}");
        let (pre, rest) = inet.split_once("chain output").unwrap();
        assert!(!pre.contains("dnat"), "no DNAT of forwarded traffic: {s}");
        assert!(rest.contains(
            "\t\tip daddr 198.51.100.50 tcp dport 80 dnat ip to jhash ip saddr mod 64 seed 0x6b757665 map { 0 : 198.51.100.21 . 80, 1 : 198.51.100.22 . 80 }\n"
        ), "{s}");
        assert!(rest.contains(
            "\t\tmeta l4proto tcp ct original ip daddr 198.51.100.50 ct original proto-dst 80 masquerade\n"
        ), "{s}");
        v.scheduler = Scheduler::SourceHash;
        let s = script(&[Programmed {
            vs: &v,
            targets: Targets::Hash(vec![r1, r2]),
            link: Some(link.clone()),
        }]);
        assert!(s.contains("jhash ip saddr mod 64"), "{s}");
        // A real server whose MAC is unknown is never a target.
        let mut unknown = link;
        unknown.macs.clear();
        let s = script(&[Programmed {
            vs: &v,
            targets: Targets::One(r1),
            link: Some(unknown),
        }]);
        assert!(!s.contains("ether daddr set"), "{s}");
    }
}
