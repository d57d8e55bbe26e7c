//! What the two long-running commands (`agent`, `controller`) share: log options and set-up,
//! the async runtime, and turning their end into an exit status.

use std::io::Write as _;
use std::process::ExitCode;

/// How the agent and the controller log.
#[derive(clap::Args)]
pub(crate) struct LogArgs {
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

/// Reads a duration option ("10s", "15s") with the one duration grammar.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::units::parse_duration(s)
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub(crate) fn finish<E: std::fmt::Display>(result: Result<(), E>) -> ExitCode {
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once, through the log (its format, its non-blocking writer).
            tracing::error!(error = %e, "stopped");
            ExitCode::FAILURE
        }
    };
    crate::logging::flush();
    code
}

pub(crate) fn init_logging(args: &LogArgs) {
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
        .with_writer(crate::logging::NonBlocking::start());
    if args.log_json || args.log_format == "json" {
        builder.json().init();
    } else {
        builder.event_format(crate::logging::Logfmt).init();
    }
}
