//! The command line: parsed here and dispatched to one file per subcommand, which does what
//! it says once its options are parsed (`main.rs` only calls [`main`]). `daemon` holds what
//! the long-running `agent` and `controller` share.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub(crate) mod agent;
pub(crate) mod check;
pub(crate) mod controller;
pub(crate) mod crd;
pub(crate) mod daemon;
pub(crate) mod import;
pub(crate) mod manifest;
pub(crate) mod simulate;
pub(crate) mod status;

#[derive(Parser)]
#[command(
    name = "kube-vrrp",
    version,
    about = "keepalived's VRRP as a Kubernetes-native virtual IP operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Turn keepalived.conf files (one per node) into VirtualIP YAML on stdout. Instances with
    /// the same virtual router ID merge into one VirtualIP with per-node priorities. What
    /// cannot be carried over is a warning on stderr with file and line; exit status 1 on
    /// errors (an address that is not one, a track_script naming no script).
    ImportKeepalived {
        /// Node names, in file order (default: router_id, else the file name).
        #[arg(long = "node")]
        nodes: Vec<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a manifest: `static-pod` (the agent for a control-plane address, no API access).
    Manifest {
        #[command(subcommand)]
        kind: manifest::ManifestKind,
    },
    /// Print the VirtualIP CustomResourceDefinition (YAML), generated from the Rust types.
    Crd {
        /// Print the field reference (Markdown, docs/reference.md) instead.
        #[arg(long)]
        reference: bool,
    },
    /// Validate VirtualIP files (keepalived -t): standalone agent files, or with --cluster
    /// YAML for `kubectl apply`. Prints every problem with file, document, field and a hint;
    /// exit status 0 when all are valid, 1 otherwise.
    Check {
        /// VirtualIP YAML for a cluster: the virtual router ID may be left to the controller,
        /// Secrets may be named, other kinds are skipped.
        #[arg(long)]
        cluster: bool,
        /// With --cluster: the programs the chart's agents allow (agent.allowExec; repeat or
        /// comma-separate). Default none, as the chart's: an exec check or notify hook is a
        /// problem.
        #[arg(long, requires = "cluster", value_delimiter = ',', num_args = 1..)]
        allow_exec: Vec<PathBuf>,
        /// With --cluster: the directory the chart's agents read check files from
        /// (agent.checkFiles).
        #[arg(long, requires = "cluster", default_value = crate::check::CHART_CHECK_FILES)]
        check_files: PathBuf,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run VRRP on this node: in a cluster, this node's configuration comes from the
    /// Kubernetes API (KUBECONFIG or in-cluster) and its state goes to each VirtualIP's status;
    /// with --standalone, the VirtualIPs come from a YAML file and no cluster is needed.
    Agent(agent::AgentArgs),
    /// Watch VirtualIPs and Nodes, resolve each node's configuration, publish it and
    /// summarise the agents' reports into each VirtualIP's status. Run two replicas: one leads
    /// (a Lease), the other stands by.
    Controller(controller::ControllerArgs),
    /// Show this node's virtual servers as `ipvsadm -Ln` does (`--stats`, `--rate`, `-c`), in
    /// text or JSON: scheduler, real servers with weight, health, active and inactive
    /// connections, packets, bytes and rates. Asks the agent running here.
    Status(status::StatusArgs),
    /// Run VRRP scenarios on virtual time (several routers on a simulated wire, the real
    /// protocol core and codec) and print every transition as JSON lines.
    Simulate {
        /// Scenario files (JSON); the embedded failover scenario when none is given.
        scenarios: Vec<PathBuf>,
    },
}

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    match Cli::parse().command {
        Command::ImportKeepalived { nodes, files } => import::run(&files, &nodes),
        Command::Manifest { kind } => manifest::run(kind),
        Command::Check {
            cluster,
            allow_exec,
            check_files,
            files,
        } => check::run(&files, cluster, allow_exec, check_files),
        Command::Crd { reference } => crd::run(reference),
        Command::Simulate { scenarios } => simulate::run(&scenarios),
        Command::Agent(args) => agent::run(args),
        Command::Status(args) => status::run(args),
        Command::Controller(args) => controller::run(args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn standalone_and_config_go_together() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["kube-vrrp", "agent", "--node-name", "n1"], args].concat())
        };
        assert!(parse(&["--standalone", "--config", "/etc/vips.yaml"]).is_ok());
        assert!(parse(&["--standalone"]).is_err());
        assert!(parse(&["--config", "/etc/vips.yaml"]).is_err());
        assert!(parse(&[]).is_ok());
    }
}
