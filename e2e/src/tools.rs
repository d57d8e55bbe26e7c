//! The programs around the tests: the kube-vrrp binary and its `check`, promtool, the
//! benchmarks' shared options and the implementations they compare.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::AGENT_STATUS;

/// The options of every benchmark that runs kube-vrrp against keepalived in trials.
#[derive(clap::Args)]
pub struct Versus {
    /// Trials per case and implementation.
    #[arg(long, default_value_t = 5)]
    pub trials: usize,
    /// kube-vrrp or keepalived only.
    #[arg(long)]
    pub only: Option<String>,
}

/// `promtool check metrics` (Prometheus' own linter: base units, names, types, help) on an
/// exposition; its complaints when it has any.
pub fn promtool_check(metrics: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run promtool (bash .ci/deps installs it): {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `kube-vrrp check [--cluster] FILE` before a demo runs it: its findings when it fails.
pub fn check_file(path: &Path, cluster: bool) -> Result<(), String> {
    let mut cmd = Command::new(kube_vrrp_binary());
    cmd.arg("check");
    if cluster {
        cmd.arg("--cluster");
    }
    let out = cmd
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run kube-vrrp check: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{} does not pass kube-vrrp check{}:\n{}",
        path.display(),
        if cluster { " --cluster" } else { "" },
        String::from_utf8_lossy(&out.stdout).trim_end()
    ))
}

/// `BIN agent --standalone --config CONFIG --node-name NODE --listen AGENT_STATUS`, for a
/// test that starts an agent its own way (another log, a user, a flag).
pub fn standalone_agent_argv<'a>(bin: &'a str, config: &'a str, node: &'a str) -> Vec<&'a str> {
    vec![
        bin,
        "agent",
        "--standalone",
        "--config",
        config,
        "--node-name",
        node,
        "--listen",
        AGENT_STATUS,
    ]
}

/// The kube-vrrp binary built next to the running executable (`cargo build` puts them in the
/// same target directory).
pub fn kube_vrrp_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("target dir");
    for candidate in [dir.join("kube-vrrp"), dir.join("../kube-vrrp")] {
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "kube-vrrp binary not found next to {}: run `cargo build --workspace` first",
        exe.display()
    );
}

/// The implementations the benchmarks compare in one lab.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Impl {
    KubeVrrp,
    Keepalived,
}

impl Impl {
    pub fn name(self) -> &'static str {
        match self {
            Impl::KubeVrrp => "kube-vrrp",
            Impl::Keepalived => "keepalived",
        }
    }
}

/// A random number from the kernel's pool: benchmark phases that must not correlate with any
/// clock-driven timer of the implementations measured.
pub fn random_u64() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom");
    u64::from_le_bytes(b)
}
