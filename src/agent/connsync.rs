//! Connection tracking shared between directors (`--sync-connections INTERFACE`), so that NAT
//! and full-NAT connections survive a takeover: conntrackd (conntrack-tools, netfilter's own
//! component for exactly this, as keepalived's `lvs_sync_daemon` is IPVS's) in FTFW mode over
//! multicast on INTERFACE, with its external cache disabled: every director's kernel holds
//! the others' entries, NAT bindings included, before it takes over, so no commit has to run
//! at the takeover and VRRP waits on nothing. Direct routing needs none of it: every
//! director computes the same table ([`crate::director::table`]).
//!
//! [`config`] is pure; the task writes it, runs conntrackd as a child that dies with the
//! agent, and starts it again if it ends.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{info, warn};

/// The multicast group and port the directors share entries on (conntrackd's defaults).
pub(crate) const GROUP: Ipv4Addr = Ipv4Addr::new(225, 0, 0, 50);
pub(crate) const PORT: u16 = 3780;

/// conntrackd's configuration: FTFW over multicast on `interface` (whose IPv4 address is
/// `local`), entries injected straight into the kernel's table, TCP and UDP only, and the
/// node's own connections (`ignore`: its host addresses) left out: only what it forwards is
/// worth sharing. Files under `dir`.
pub(crate) fn config(interface: &str, local: Ipv4Addr, ignore: &[IpAddr], dir: &Path) -> String {
    let mut addrs = String::new();
    for a in ignore {
        let kind = if a.is_ipv4() { "IPv4" } else { "IPv6" };
        let _ = writeln!(addrs, "\t\t\t{kind}_address {a}");
    }
    let d = dir.display();
    format!(
        "Sync {{
\tMode FTFW {{
\t\tDisableExternalCache On
\t}}
\tMulticast {{
\t\tIPv4_address {GROUP}
\t\tGroup {PORT}
\t\tIPv4_interface {local}
\t\tInterface {interface}
\t\tSndSocketBuffer 1249280
\t\tRcvSocketBuffer 1249280
\t\tChecksum on
\t}}
}}
General {{
\tHashSize 32768
\tHashLimit 131072
\tLogFile {d}/conntrackd.log
\tLockFile {d}/conntrackd.lock
\tUNIX {{
\t\tPath {d}/conntrackd.ctl
\t}}
\tNetlinkBufferSize 2097152
\tNetlinkBufferSizeMaxGrowth 8388608
\tFilter From Userspace {{
\t\tProtocol Accept {{
\t\t\tTCP
\t\t\tUDP
\t\t}}
\t\tAddress Ignore {{
{addrs}\t\t}}
\t}}
}}
"
    )
}

/// Runs conntrackd until the agent stops (dropping the handle kills it).
pub(crate) struct ConnSync {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConnSync {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnSync {
    /// Fails when conntrackd is not installed or the interface has no IPv4 address.
    pub(crate) async fn start(interface: String, dir: PathBuf) -> Result<ConnSync, String> {
        let program = crate::net::program("conntrackd").ok_or(
            "--sync-connections needs conntrackd (conntrack-tools): it is not installed on this node",
        )?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("--sync-connections: cannot create {}: {e}", dir.display()))?;
        let nl = crate::net::netlink::Netlink::connect().map_err(|e| e.to_string())?;
        let link = nl
            .link_by_name(&interface)
            .await
            .map_err(|e| format!("--sync-connections {interface}: {e}"))?;
        let addrs = nl.addresses(None).await.map_err(|e| e.to_string())?;
        let local = addrs
            .iter()
            .filter(|a| a.index == link.index && !a.is_ours())
            .find_map(|a| match a.address {
                IpAddr::V4(v) => Some(v),
                IpAddr::V6(_) => None,
            })
            .ok_or(format!(
                "--sync-connections {interface}: the interface has no IPv4 address of the node's own to share connections from"
            ))?;
        // The node's own addresses (not the VirtualIPs': those are the connections to share).
        let mut ignore: Vec<IpAddr> = vec![
            Ipv4Addr::LOCALHOST.into(),
            std::net::Ipv6Addr::LOCALHOST.into(),
        ];
        ignore.extend(addrs.iter().filter(|a| !a.is_ours()).map(|a| a.address));
        ignore.sort();
        ignore.dedup();
        let file = dir.join("conntrackd.conf");
        std::fs::write(&file, config(&interface, local, &ignore, &dir))
            .map_err(|e| format!("--sync-connections: cannot write {}: {e}", file.display()))?;
        info!(%interface, %local, group = %GROUP, port = PORT, "sharing connection tracking with the other directors (conntrackd)");
        let task = tokio::spawn(supervise(program, file, dir));
        Ok(ConnSync { task })
    }
}

async fn supervise(program: PathBuf, file: PathBuf, dir: PathBuf) {
    loop {
        // A lock a killed conntrackd left would stop the next one.
        let _ = std::fs::remove_file(dir.join("conntrackd.lock"));
        let _ = std::fs::remove_file(dir.join("conntrackd.ctl"));
        let mut cmd = tokio::process::Command::new(&program);
        cmd.arg("-C")
            .arg(&file)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: prctl only, between fork and exec: conntrackd ends when the agent does,
        // even killed with SIGKILL.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(child) => match child.wait_with_output().await {
                Ok(out) => {
                    let err = String::from_utf8_lossy(&out.stderr);
                    warn!(status = %out.status, error = %err.lines().last().unwrap_or(""), "conntrackd ended: starting it again");
                }
                Err(e) => warn!(error = %e, "conntrackd: cannot wait for it"),
            },
            Err(e) => warn!(error = %e, program = %program.display(), "cannot run conntrackd"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_shares_forwarded_connections_only_and_injects_them() {
        let c = config(
            "eth0",
            Ipv4Addr::new(198, 51, 100, 11),
            &[
                "127.0.0.1".parse().unwrap(),
                "198.51.100.11".parse().unwrap(),
            ],
            Path::new("/run/kube-vrrp"),
        );
        for want in [
            "DisableExternalCache On",
            "IPv4_address 225.0.0.50",
            "Group 3780",
            "IPv4_interface 198.51.100.11",
            "Interface eth0",
            "LockFile /run/kube-vrrp/conntrackd.lock",
            "Path /run/kube-vrrp/conntrackd.ctl",
            "\t\t\tIPv4_address 127.0.0.1\n\t\t\tIPv4_address 198.51.100.11\n\t\t}",
        ] {
            assert!(c.contains(want), "{want}\n{c}");
        }
        assert_eq!(c.matches('{').count(), c.matches('}').count(), "{c}");
    }
}
