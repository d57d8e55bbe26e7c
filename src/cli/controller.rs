//! `kube-vrrp controller`: watch VirtualIPs, Services and Nodes, publish each node's
//! configuration and summarise the agents' reports (one leader among the replicas).

use std::net::SocketAddr;
use std::process::ExitCode;

use super::daemon::{LogArgs, finish, init_logging, parse_duration, runtime};

// No doc comment: the help is the `Controller` variant's, in main.rs.
#[derive(clap::Args)]
pub(crate) struct ControllerArgs {
    /// Serve /metrics (Prometheus) and /healthz here, e.g. 0.0.0.0:9651.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "kube-vrrp-controller")]
    lease_name: String,
    /// This replica's identity in the Lease. Default: POD_NAME, or host name and process id.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Lease duration: a standby takes over this long after the leader stopped renewing.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    lease_duration: std::time::Duration,
    /// Serve `type: LoadBalancer` Services that name no `spec.loadBalancerClass` (those
    /// naming kube-vrrp.io/vrrp are always served): true or false.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    serve_classless_services: bool,
    #[command(flatten)]
    log: LogArgs,
}

pub(crate) fn run(args: ControllerArgs) -> ExitCode {
    let ControllerArgs {
        listen,
        namespace,
        lease_name,
        identity,
        lease_duration,
        serve_classless_services,
        log,
    } = args;
    init_logging(&log);
    let identity = identity.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let opts = crate::controller::Options {
        listen,
        namespace,
        lease_name,
        identity,
        lease_duration,
        classless: serve_classless_services,
    };
    finish(runtime().block_on(crate::controller::run(opts)))
}
