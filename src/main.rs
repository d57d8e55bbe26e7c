use std::io::Write as _;
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
        kind: ManifestKind,
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
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run VRRP on this node: in a cluster, this node's configuration comes from the
    /// Kubernetes API (KUBECONFIG or in-cluster) and its state goes to each VirtualIP's status;
    /// with --standalone, the VirtualIPs come from a YAML file and no cluster is needed.
    Agent {
        /// Read VirtualIP documents from --config instead of the Kubernetes API.
        #[arg(long, requires = "config")]
        standalone: bool,
        /// File of VirtualIP YAML documents (kube-vrrp.io/v1alpha1). SIGHUP reloads it.
        #[arg(long, requires = "standalone")]
        config: Option<PathBuf>,
        /// This node's name (selects its priority / its configuration).
        #[arg(long, env = "NODE_NAME")]
        node_name: String,
        /// Serve /status (JSON), /metrics (Prometheus) and /healthz here. Loopback by
        /// default: the status names every address and peer.
        #[arg(long, default_value = "127.0.0.1:9650")]
        listen: SocketAddr,
        /// Also serve /metrics and /healthz (not /status) here, e.g. 0.0.0.0:9652 for a
        /// scraper on the network.
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
        /// Cluster mode: renew this node's registration this often; the controller stops
        /// believing a node's reports after three periods of silence.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        heartbeat: std::time::Duration,
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
        #[command(flatten)]
        log: LogArgs,
    },
    /// Watch VirtualIPs and Nodes, resolve each node's configuration, publish it and
    /// summarise the agents' reports into each VirtualIP's status. Run two replicas: one leads
    /// (a Lease), the other stands by.
    Controller {
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
    },
    /// Run VRRP scenarios on virtual time (several routers on a simulated wire, the real
    /// protocol core and codec) and print every transition as JSON lines.
    Simulate {
        /// Scenario files (JSON); the embedded failover scenario when none is given.
        scenarios: Vec<PathBuf>,
    },
}

/// How the agent and the controller log.
#[derive(clap::Args)]
struct LogArgs {
    /// error, warn, info, debug or trace, or a filter such as kube_vrrp=debug,kube=warn.
    /// Default: RUST_LOG, else info.
    #[arg(long)]
    log_level: Option<String>,
    /// text (logfmt: time=... level=... msg="..." key=value) or json (one object per line).
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    /// The same as --log-format json.
    #[arg(long, hide = true)]
    log_json: bool,
}

#[derive(Subcommand)]
enum ManifestKind {
    /// Everything the Helm chart installs with its defaults (CRDs, namespace kube-vrrp-system,
    /// RBAC, the controller Deployment, the agent DaemonSet), for kubectl apply without Helm.
    Daemonset {
        /// The image your nodes pull (see README: In a cluster).
        #[arg(long)]
        image: String,
    },
    /// A static pod running the agent standalone for a highly available kube-apiserver
    /// address (kubeadm --control-plane-endpoint): put it in /etc/kubernetes/manifests.
    StaticPod {
        /// The VirtualIP file on the node (absolute path); it is validated, and checked for an
        /// HTTPS /readyz check that lets the first node take the address.
        #[arg(long)]
        config: PathBuf,
        /// The image your nodes pull (see README: In a cluster).
        #[arg(long, default_value = "kube-vrrp:0.1.0")]
        image: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::ImportKeepalived { nodes, files } => {
            let i = kube_vrrp::keepalived::import(&files, &nodes);
            for (kind, list) in [
                ("error", &i.errors),
                ("warning", &i.warnings),
                ("note", &i.notes),
            ] {
                for m in list {
                    eprintln!("{}: {kind}: {}", m.at, m.text);
                }
            }
            if !i.errors.is_empty() {
                eprintln!("{} error(s): nothing printed", i.errors.len());
                return ExitCode::from(1);
            }
            print!("{}", i.yaml());
            eprintln!(
                "{} VirtualIP(s), {} warning(s) (not carried over), {} note(s)",
                i.documents.len(),
                i.warnings.len(),
                i.notes.len()
            );
            ExitCode::SUCCESS
        }
        Command::Manifest {
            kind: ManifestKind::Daemonset { image },
        } => {
            print!("{}", kube_vrrp::manifest::daemonset(&image));
            ExitCode::SUCCESS
        }
        Command::Manifest {
            kind: ManifestKind::StaticPod { config, image },
        } => {
            let config = std::path::absolute(&config).unwrap_or(config);
            match kube_vrrp::agent::source::load(&config) {
                Ok(vips) => {
                    for v in &vips {
                        if let Some(p) = kube_vrrp::manifest::readyz_problem(v) {
                            eprintln!("kube-vrrp: warning: {p}");
                        }
                    }
                    print!("{}", kube_vrrp::manifest::static_pod(&config, &image));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("kube-vrrp: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Check { cluster, files } => {
            let o = kube_vrrp::check::run(&files, cluster);
            print!("{}", o.text);
            if o.errors == 0 {
                println!("{} VirtualIP(s) valid", o.objects);
                if o.pools > 0 {
                    println!("{} VirtualIPPool(s) valid", o.pools);
                }
                ExitCode::SUCCESS
            } else {
                println!("{} problem(s)", o.errors);
                ExitCode::from(1)
            }
        }
        Command::Crd { reference } => {
            if reference {
                print!("{}", kube_vrrp::api::reference());
            } else {
                print!("{}", kube_vrrp::api::crd_yaml());
            }
            ExitCode::SUCCESS
        }
        Command::Simulate { scenarios } => simulate(&scenarios),
        Command::Agent {
            standalone: _,
            config,
            node_name,
            listen,
            metrics_listen,
            heartbeat,
            allow_exec,
            exec_user,
            check_files,
            log,
        } => {
            init_logging(&log);
            let run_as = match exec_user.as_deref().map(parse_user) {
                None if config.is_none() => Some((65534, 65534)),
                None => None,
                Some(Ok(u)) => u,
                Some(Err(e)) => {
                    eprintln!("kube-vrrp: --exec-user: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = kube_vrrp::agent::Options {
                policy: kube_vrrp::health::Policy {
                    cluster: config.is_none(),
                    allow_exec,
                    run_as,
                    files_dir: check_files,
                },
                config,
                node: node_name,
                listen: Some(listen),
                metrics_listen,
                heartbeat,
            };
            finish(runtime().block_on(kube_vrrp::agent::run(opts)))
        }
        Command::Controller {
            listen,
            namespace,
            lease_name,
            identity,
            lease_duration,
            serve_classless_services,
            log,
        } => {
            init_logging(&log);
            let identity = identity.unwrap_or_else(|| {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                format!("{}-{}", host.trim(), std::process::id())
            });
            let opts = kube_vrrp::controller::Options {
                listen,
                namespace,
                lease_name,
                identity,
                lease_duration,
                classless: serve_classless_services,
            };
            finish(runtime().block_on(kube_vrrp::controller::run(opts)))
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn finish<E: std::fmt::Display>(result: Result<(), E>) -> ExitCode {
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once, through the log (its format, its non-blocking writer).
            tracing::error!(error = %e, "stopped");
            ExitCode::FAILURE
        }
    };
    kube_vrrp::logging::flush();
    code
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    kube_vrrp::vrrp::config::parse_duration(s)
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

fn init_logging(args: &LogArgs) {
    let filter = match &args.log_level {
        Some(level) => tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|e| {
            let _ = writeln!(
                std::io::stderr(),
                "kube-vrrp: --log-level {level:?}: {e}; using info"
            );
            tracing_subscriber::EnvFilter::new("info")
        }),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    // Logs never block the agent (a full pipe, a slow terminal) and never panic (a closed one).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .log_internal_errors(false)
        .with_writer(kube_vrrp::logging::NonBlocking::start());
    if args.log_json || args.log_format == "json" {
        builder.json().init();
    } else {
        builder.event_format(kube_vrrp::logging::Logfmt).init();
    }
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
