//! `kube-vrrp agent`: run VRRP on this node, from the Kubernetes API (cluster mode) or from
//! a file of VirtualIP documents (`--standalone --config FILE`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use super::daemon::{LogArgs, finish, init_logging, parse_duration, runtime};

// No doc comment: the help is the `Agent` variant's, in main.rs.
#[derive(clap::Args)]
pub(crate) struct AgentArgs {
    /// Read VirtualIP documents from --config instead of the Kubernetes API.
    #[arg(long, requires = "config")]
    standalone: bool,
    /// File of VirtualIP YAML documents (kube-vrrp.io/v1alpha1). SIGHUP reloads it.
    #[arg(long, requires = "standalone")]
    config: Option<PathBuf>,
    /// This node's name (selects its priority / its configuration).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// Serve /status (JSON), /metrics (Prometheus), /healthz (alive: the engine answers)
    /// and /readyz (ready: every VirtualIP this node should run runs) here. Loopback by
    /// default: the status names every address and peer.
    #[arg(long, default_value = "127.0.0.1:9650")]
    listen: SocketAddr,
    /// Also serve /metrics, /healthz and /readyz (not /status) here, e.g. 198.51.100.11:9652
    /// (the node's address) for a scraper on the network. A bare IPv6 address is taken too
    /// (2001:db8::11:9652: the last colon starts the port), as the chart passes the node's
    /// address from the downward API.
    #[arg(long, value_parser = parse_listen)]
    metrics_listen: Option<SocketAddr>,
    /// Cluster mode: renew this node's registration this often; the controller stops
    /// believing a node's reports once a renewal is late by more than 2 s (one period plus
    /// 2 s).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    heartbeat: std::time::Duration,
    /// While another agent holds this node (a predecessor handing over after SIGTERM: at most
    /// three advertisement intervals), wait this long for it before giving up.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    lock_wait: std::time::Duration,
    /// Cluster mode: programs `exec` health checks and notify hooks may run (exact
    /// paths; repeat or comma-separate). A VirtualIP can be written by anyone allowed to
    /// create one, and its commands run on every node: none runs unless listed here.
    /// Standalone mode runs what its file says.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    allow_exec: Vec<PathBuf>,
    /// Run `exec` checks and notify hooks as UID[:GID]. Default in cluster mode
    /// 65534:65534 (nobody); standalone: the agent's own user. "root" or 0 keeps root.
    #[arg(long)]
    exec_user: Option<String>,
    /// Cluster mode: the directory (on the node, mounted read-only) `file` checks and
    /// `caFile`s must be in.
    #[arg(long)]
    check_files: Option<PathBuf>,
    /// Virtual servers: share connection tracking with the other directors over this
    /// interface (conntrackd, multicast 225.0.0.50:3780), so NAT and full-NAT connections
    /// keep their real server when another director takes over. Direct routing needs none.
    #[arg(long, value_name = "INTERFACE")]
    sync_connections: Option<String>,
    /// Virtual servers: real servers (and sorry servers) must be in these networks
    /// (CIDR, repeat or comma-separate, e.g. 198.51.100.0/24,2001:db8:1::/64); any other is
    /// not used and its status says why. Default: any, but loopback, link-local, multicast
    /// and unspecified addresses are always refused, and this node's own addresses unless a
    /// virtual server sets allowNodeAddresses.
    #[arg(long, value_delimiter = ',', num_args = 1.., value_name = "CIDR")]
    real_server_networks: Vec<crate::director::Network>,
    /// Run without the warden. By default the agent runs as the child of a small warden
    /// process that, if the agent dies, sends priority-0 advertisements for its masters and
    /// removes its addresses at once; without it a dead agent's addresses stay until their
    /// lifetimes end (minutes).
    #[arg(long)]
    no_warden: bool,
    #[command(flatten)]
    log: LogArgs,
}

pub(crate) fn run(args: AgentArgs) -> ExitCode {
    let AgentArgs {
        standalone,
        config,
        node_name,
        listen,
        metrics_listen,
        heartbeat,
        lock_wait,
        allow_exec,
        exec_user,
        check_files,
        sync_connections,
        real_server_networks,
        no_warden,
        log,
    } = args;
    // Before anything else opens a descriptor or starts a thread.
    let will = crate::agent::warden::inherited_will();
    if will.is_some() {
        // SAFETY: no other thread runs yet (logging starts below), and what this process
        // starts (checks, hooks) must not believe it runs under our warden.
        unsafe { std::env::remove_var(crate::agent::will::WILL_FD_ENV) };
    }
    init_logging(&log);
    if will.is_none() && !no_warden {
        let code = runtime().block_on(crate::agent::warden::run(lock_wait));
        crate::logging::flush();
        return ExitCode::from(code);
    }
    // `--standalone` and `--config` require each other (clap refuses one without the other):
    // the flag names the mode, the file is where its VirtualIPs come from.
    let cluster = !standalone;
    let run_as = match exec_user.as_deref().map(parse_user) {
        None if cluster => Some((65534, 65534)),
        None => None,
        Some(Ok(u)) => u,
        Some(Err(e)) => {
            eprintln!("kube-vrrp: --exec-user: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = crate::agent::Options {
        policy: crate::checks::Policy {
            cluster,
            allow_exec,
            run_as,
            files_dir: check_files,
        },
        config,
        node: node_name,
        listen: Some(listen),
        metrics_listen,
        heartbeat,
        lock_wait,
        sync_connections,
        real_server_networks,
        will,
    };
    finish(runtime().block_on(crate::agent::run(opts)))
}

/// "UID[:GID]" or "root"; root (0) means: do not change user.
fn parse_user(s: &str) -> Result<Option<(u32, u32)>, String> {
    if s == "root" {
        return Ok(None);
    }
    let (u, g) = s.split_once(':').unwrap_or((s, s));
    let num = |t: &str| {
        t.parse::<u32>()
            .map_err(|_| format!("{s:?}: use UID[:GID] with numbers, or root"))
    };
    let (u, g) = (num(u)?, num(g)?);
    Ok((u != 0 || g != 0).then_some((u, g)))
}

/// `IP:PORT`, `[IPv6]:PORT`, or a bare IPv6 address and its port after the last colon.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = text.parse() {
        return Ok(a);
    }
    let bad =
        || format!("{text:?} is not ADDRESS:PORT (e.g. 198.51.100.11:9652, [2001:db8::11]:9652)");
    let (ip, port) = text.rsplit_once(':').ok_or_else(bad)?;
    Ok(SocketAddr::new(
        ip.parse().map_err(|_| bad())?,
        port.parse().map_err(|_| bad())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_user_is_uid_gid_or_root() {
        assert_eq!(parse_user("root"), Ok(None));
        assert_eq!(parse_user("0"), Ok(None));
        assert_eq!(parse_user("0:0"), Ok(None));
        assert_eq!(parse_user("65534"), Ok(Some((65534, 65534))));
        assert_eq!(parse_user("1000:100"), Ok(Some((1000, 100))));
        assert!(parse_user("nobody").unwrap_err().contains("UID[:GID]"));
        assert!(parse_user("1000:").is_err());
    }

    #[test]
    fn a_listen_address_may_be_a_bare_ipv6_address_and_port() {
        let p = |t: &str| super::parse_listen(t).map(|a| a.to_string());
        assert_eq!(p("198.51.100.11:9652").unwrap(), "198.51.100.11:9652");
        assert_eq!(p("[2001:db8::11]:9652").unwrap(), "[2001:db8::11]:9652");
        assert_eq!(p("2001:db8::11:9652").unwrap(), "[2001:db8::11]:9652");
        assert!(p("node1:9652").unwrap_err().contains("is not ADDRESS:PORT"));
    }
}
