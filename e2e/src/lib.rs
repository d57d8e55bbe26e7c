//! What the lab tests and the benchmarks share, one room per concern: [`lab`] (the
//! namespaces, nodes and the processes in them), [`wire`] (raw VRRP, probes, capture),
//! [`traffic`] (client connections), [`tools`] (the binaries around the tests), [`standin`]
//! (the API stand-in from Rust), [`stats`] (the benchmarks' figures). The names are
//! re-exported here, so a test writes `kube_vrrp_e2e::Lab`.

pub mod lab;
pub mod standin;
pub mod stats;
pub mod tools;
pub mod traffic;
pub mod wire;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use lab::{Lab, Node, require_root};
pub use tools::{
    Impl, Versus, check_file, kube_vrrp_binary, promtool_check, random_u64, standalone_agent_argv,
};
pub use traffic::{NeighbourRoom, ask, keep_alive, until_all_answer};
pub use wire::{Capture, Outage, Prober, Seen, send_vrrp};

/// Where agents started with `listen` serve /status and /metrics, inside their namespace.
pub const AGENT_STATUS: &str = "127.0.0.1:9650";

/// Runs a command, panicking with its output when it fails.
pub fn sh(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", args[0]))
}

/// Polls `f` every 10 ms until it holds or `timeout` passes; returns the time it took.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
