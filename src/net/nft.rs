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
}

/// The script that replaces our table with these rules (or removes it, when there are none).
pub fn script(services: &[Programmed<'_>]) -> String {
    let mut s = format!("add table inet {TABLE}\ndelete table inet {TABLE}\n");
    if services.is_empty() {
        return s;
    }
    let mut dnat = String::new();
    let mut snat = String::new();
    for p in services {
        let Some(to) = target_expr(p) else { continue };
        let (fam, l4) = match_of(p.vs);
        let _ = writeln!(
            dnat,
            "\t\t{fam} daddr {} {l4} dport {} dnat {fam} to {to}",
            p.vs.address, p.vs.port
        );
        if p.vs.forwarding == Forwarding::FullNat {
            let _ = writeln!(
                snat,
                "\t\tmeta l4proto {l4} ct original {fam} daddr {} ct original proto-dst {} masquerade",
                p.vs.address, p.vs.port
            );
        }
    }
    let _ = writeln!(s, "table inet {TABLE} {{");
    // prerouting: clients; output: the director itself (a hairpin).
    // (`dstnat` names -100 only for prerouting.)
    for (chain, priority) in [("prerouting", "dstnat"), ("output", "-100")] {
        let _ = writeln!(
            s,
            "\tchain {chain} {{\n\t\ttype nat hook {chain} priority {priority}; policy accept;\n{dnat}\t}}"
        );
    }
    let _ = writeln!(
        s,
        "\tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n{snat}\t}}"
    );
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
            "add table inet kube_vrrp\ndelete table inet kube_vrrp\n"
        );
    }

    #[test]
    fn the_rules_say_what_the_model_decided() {
        let a = vs("198.51.100.50", Forwarding::Nat);
        let b = vs("2001:db8:1::50", Forwarding::FullNat);
        let c = vs("198.51.100.51", Forwarding::Nat);
        let s = script(&[
            Programmed {
                vs: &a,
                targets: Targets::Counter(vec![
                    (0, 0, "198.51.100.21:8080".parse().unwrap()),
                    (1, 3, "198.51.100.22:8080".parse().unwrap()),
                ]),
            },
            Programmed {
                vs: &b,
                targets: Targets::One("[2001:db8:1::21]:80".parse().unwrap()),
            },
            Programmed {
                vs: &c,
                targets: Targets::None,
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
        assert!(!s.contains("198.51.100.51"), "nowhere: no rule\n{s}");
        // The same rules for clients and for the director itself.
        assert_eq!(s.matches("dnat ip to numgen").count(), 2, "{s}");
    }
}
