use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kube_vrrp::vrrp::sim::Scenario;

/// The scenario `simulate` runs when given none: three routers elect, lose their master, fail
/// back, hand over gracefully and survive a partition.
const DEFAULT_SCENARIO: &str = include_str!("../e2e/scenarios/failover.json");

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
    /// Print the VirtualIP CustomResourceDefinition (YAML), generated from the Rust types.
    Crd,
    /// Run VRRP on this node. With --standalone, the VirtualIPs come from a YAML file and no
    /// cluster is needed.
    Agent {
        /// Read VirtualIP documents from --config instead of the Kubernetes API.
        #[arg(long, requires = "config")]
        standalone: bool,
        /// File of VirtualIP YAML documents (kube-vrrp.io/v1alpha1). SIGHUP reloads it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// This node's name (selects its priority).
        #[arg(long, env = "NODE_NAME")]
        node_name: String,
        /// Serve /status (JSON) and /metrics (Prometheus) here, e.g. 127.0.0.1:9650.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Log as JSON lines.
        #[arg(long)]
        log_json: bool,
    },
    /// Run VRRP scenarios on virtual time (several routers on a simulated wire, the real
    /// protocol core and codec) and print every transition as JSON lines.
    Simulate {
        /// Scenario files (JSON); the embedded failover scenario when none is given.
        scenarios: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", kube_vrrp::api::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Simulate { scenarios } => simulate(&scenarios),
        Command::Agent {
            standalone,
            config,
            node_name,
            listen,
            log_json,
        } => {
            init_logging(log_json);
            let Some(config) = config.filter(|_| standalone) else {
                eprintln!("error: only --standalone --config FILE is available in this version");
                return ExitCode::from(2);
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let opts = kube_vrrp::agent::StandaloneOptions {
                config,
                node: node_name,
                listen,
            };
            match runtime.block_on(kube_vrrp::agent::run_standalone(opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn simulate(paths: &[PathBuf]) -> ExitCode {
    let mut texts = Vec::new();
    if paths.is_empty() {
        texts.push((
            "embedded failover scenario".to_string(),
            DEFAULT_SCENARIO.to_string(),
        ));
    }
    for p in paths {
        match std::fs::read_to_string(p) {
            Ok(t) => texts.push((p.display().to_string(), t)),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let mut failed = 0;
    for (origin, text) in &texts {
        let report = match Scenario::from_json(text).and_then(|s| s.run()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {origin}: {e}");
                return ExitCode::FAILURE;
            }
        };
        for t in &report.transitions {
            println!(
                "{}",
                serde_json::json!({"scenario": report.name, "transition": t})
            );
        }
        for o in &report.observations {
            println!(
                "{}",
                serde_json::json!({"scenario": report.name, "check": o})
            );
        }
        println!(
            "{}",
            serde_json::json!({"scenario": report.name, "passed": report.passed,
                "checks": report.observations.len(), "transitions": report.transitions.len()})
        );
        if !report.passed {
            failed += 1;
        }
    }
    if failed > 0 {
        eprintln!("{failed} scenario(s) did not behave as expected");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
