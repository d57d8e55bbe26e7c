//! Renders the director's rule set ([`crate::director::RuleSet`]) as nftables scripts; it
//! decides nothing. Two tables of our own (`inet kube_vrrp`: NAT; `netdev kube_vrrp`: direct
//! routing's frames), never touching anyone else's (kube-proxy, firewalld, Cilium).
//!
//! Every lookup table is a named map and the rules only refer to it, so a real server that
//! goes down, comes back or changes weight is a few map elements ([`changes`]): the rules,
//! the round-robin counters they hold, the flows direct routing remembers and every other
//! virtual server stay as they are. A new configuration ([`full`]) flushes and re-adds the
//! rules but keeps the maps of the virtual servers that remain, flows included. Established
//! NAT connections keep their real server in conntrack, direct-routing flows in a set of
//! flows per real server with a timeout, updated from the packet path.
//!
//! Here: the names and expressions both halves use, and running `nft`; `render.rs`: the
//! rules; `edit.rs`: the elements, and the scripts that put a rule set in force.
//!
//! Rules match the virtual server's address: only the master receives its traffic, so every
//! node programs the same rules ahead and a takeover carries the service in VRRP time.
//! Direct routing forwards only while this node holds the address (the `held` sets), so a
//! frame another director forwarded here is never forwarded again.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use std::collections::{BTreeMap, BTreeSet};

use crate::api::Protocol;
use crate::director::stats::{Counted, Path};
use crate::director::{Pick, Routed, RuleSet, Rules, SLOTS};

/// Our tables: families `inet` and `netdev`, this name.
pub const TABLE: &str = "kube_vrrp";

/// The hash seed: the same on every director, so they hash a flow alike.
pub(super) const SEED: &str = "0x6b757665";

/// How long one `nft` run may take.
const NFT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The script that removes both tables (a predecessor's included).
pub fn remove() -> String {
    format!(
        "add table inet {TABLE}\ndelete table inet {TABLE}\nadd table netdev {TABLE}\ndelete table netdev {TABLE}\n"
    )
}

/// `ip`/`ip6` and `tcp`/`udp` of a virtual server.
pub(super) fn match_of(r: &Rules) -> (&'static str, &'static str) {
    let fam = if r.key.addr.is_ipv4() { "ip" } else { "ip6" };
    let l4 = match r.protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    };
    (fam, l4)
}

/// A virtual server's name in our tables: `vs_198_51_100_50_80_tcp`.
pub(super) fn name(r: &Rules) -> String {
    let ip: String = r
        .key
        .addr
        .ip()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("vs_{ip}_{}_{}", r.key.addr.port(), match_of(r).1)
}

pub(super) fn dev_name(dev: &str) -> String {
    dev.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// `address . port` as a map value.
pub(super) fn concat(a: &SocketAddr) -> String {
    format!("{} . {}", a.ip(), a.port())
}

/// How a slot is chosen.
pub(super) fn slot_expr(r: &Rules) -> String {
    let (fam, l4) = match_of(r);
    match r.pick {
        Pick::Counter => format!("numgen inc mod {SLOTS}"),
        Pick::Source => format!("jhash {fam} saddr mod {SLOTS} seed {SEED}"),
        Pick::Flow => format!("jhash {fam} saddr . {l4} sport mod {SLOTS} seed {SEED}"),
    }
}

pub(super) fn routed(r: &Rules) -> Option<&Routed> {
    r.routed.as_ref()
}

/// The named counters of every counted server, each path once (a real server that two
/// virtual servers on one address and protocol share is counted for the first), and the
/// key it has in the stats maps: ((path, what) → counter name), (family, map, key, name).
pub fn counter_names(rs: &RuleSet) -> (BTreeMap<(Path, Counted), String>, Vec<StatsElement>) {
    let mut names = BTreeMap::new();
    let mut elements = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &rs.services {
        let (_, l4) = match_of(r);
        let vip = r.key.addr.ip();
        for real in &r.counted {
            if real.is_ipv4() != vip.is_ipv4() || !seen.insert((vip, l4, *real)) {
                continue;
            }
            let path = Path {
                service: r.key,
                real: *real,
            };
            let base = format!(
                "{}_{}_{}",
                name(r),
                dev_name(&real.ip().to_string()),
                real.port()
            );
            let fam = if vip.is_ipv4() { 4 } else { 6 };
            for (what, suffix) in [
                (Counted::Conns, "new"),
                (Counted::In, "in"),
                (Counted::Out, "out"),
            ] {
                let counter = format!("{base}_{suffix}");
                names.insert((path, what), counter.clone());
                elements.push(StatsElement {
                    map: format!("stats{fam}_{suffix}"),
                    key: format!("{vip} . {l4} . {} . {}", real.ip(), real.port()),
                    counter,
                });
            }
        }
    }
    (names, elements)
}

/// One element of a stats map: a path's key → its counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsElement {
    pub map: String,
    pub key: String,
    pub counter: String,
}

mod edit;
mod render;

pub use edit::{changes, full, keys_to, purges};
pub use render::structure;

/// The `nft` program.
pub fn nft_program() -> Option<PathBuf> {
    super::program("nft")
}

/// Runs `nft -f -` with `script`: applied whole, or an error in words.
pub async fn apply(nft: &std::path::Path, script: &str) -> Result<(), String> {
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

/// `nft -j list map FAMILY kube_vrrp MAP`: its JSON, or an error in words.
pub async fn list_map(nft: &std::path::Path, family: &str, map: &str) -> Result<String, String> {
    list(nft, &["-j", "list", "map", family, TABLE, map]).await
}

/// `nft -j list counters table inet kube_vrrp`: its JSON, or an error in words.
pub async fn list_counters(nft: &std::path::Path) -> Result<String, String> {
    list(nft, &["-j", "list", "counters", "table", "inet", TABLE]).await
}

async fn list(nft: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let out = tokio::time::timeout(
        NFT_TIMEOUT,
        tokio::process::Command::new(nft)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("nft did not finish in {NFT_TIMEOUT:?}"))?
    .map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or("no message")
            .to_string())
    }
}
