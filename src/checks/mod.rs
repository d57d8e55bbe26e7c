//! Health checks: one checker per kind behind [`Checker`] (`http`, `tcp`, `exec`, `file`), the
//! keepalived semantics on top of their results ([`CheckState`]: interval, timeout, fall,
//! rise, weight, initial state), and a task per check that feeds the result to the VRRP
//! engine as a tracker. Results are tracker inputs to the priority model, never state
//! changes; the checks run on the agent's runtime, beside the engine thread, so a slow or
//! hung check can never delay an advertisement.
//!
//! ```text
//!  task per (VirtualIP, check): every interval ─▶ Checker::run(timeout) ─▶ CheckState::record
//!        │ tracker changed: EngineCmd::VipTracker          │ status changed: Store + AgentEvent::Changed
//!        ▼                                                 ▼
//!   engine: Trackers → effective priority / FAULT    /status, /metrics, status.nodes[].checks
//! ```

pub(crate) mod exec;
pub(crate) mod file;
pub(crate) mod http;
pub(crate) mod tcp;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::api::CheckStatus;
use crate::model::tracking::{Check, CheckKind, Notify, Tls};
use crate::vrrp::config::format_duration;
use crate::vrrp::priority::Tracker;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One run's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub ok: bool,
    /// In words: "HTTP 200 in 3 ms", "connection refused", "timed out after 1s".
    pub text: String,
    /// `file` in `Value` mode: the number read.
    pub value: Option<i64>,
}

impl Outcome {
    pub(crate) fn pass(text: String) -> Outcome {
        Outcome {
            ok: true,
            text,
            value: None,
        }
    }
    pub(crate) fn fail(text: String) -> Outcome {
        Outcome {
            ok: false,
            text,
            value: None,
        }
    }
    pub(crate) fn value(v: i64) -> Outcome {
        Outcome {
            ok: true,
            text: format!("value {v}"),
            value: Some(v),
        }
    }
    pub(crate) fn timed_out(after: Duration) -> Outcome {
        Outcome::fail(format!("timed out after {}", format_duration(after)))
    }
}

/// A kind of check. `run` must finish within about `timeout` (the runner also enforces it).
pub(crate) trait Checker: Send + Sync {
    fn run(&self, timeout: Duration) -> BoxFuture<'_, Outcome>;
}

/// An I/O error in words, without the "(os error N)" suffix.
pub(crate) fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        std::io::ErrorKind::NotFound => "not found".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let t = e.to_string();
            match t.find(" (os error") {
                Some(i) => t[..i].to_string(),
                None => t,
            }
        }
    }
}

pub(crate) fn ms(d: Duration) -> String {
    let us = d.as_micros();
    if us < 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{} ms", us / 1000)
    }
}

/// What this agent lets a VirtualIP run (cluster mode: a VirtualIP is written by whoever may
/// create one, and everything here runs as root on every node).
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    /// Cluster mode: the allowlist and the files directory apply.
    pub cluster: bool,
    /// Programs `exec` checks and notify hooks may run (exact paths).
    pub allow_exec: Vec<PathBuf>,
    /// Who commands run as.
    pub run_as: exec::RunAs,
    /// Cluster mode: files (`file` checks, `caFile`) must be under this directory.
    pub files_dir: Option<PathBuf>,
}

impl Policy {
    fn program(&self, program: &str) -> Result<(), String> {
        if !self.cluster || self.allow_exec.iter().any(|p| p == Path::new(program)) {
            return Ok(());
        }
        Err(if self.allow_exec.is_empty() {
            format!(
                "refused: {program} would run as a command on every node, and this agent allows none (start it with --allow-exec {program})"
            )
        } else {
            format!("refused: {program} is not among the programs this agent allows (--allow-exec)")
        })
    }

    fn file(&self, path: &Path) -> Result<(), String> {
        if !self.cluster {
            return Ok(());
        }
        match &self.files_dir {
            Some(dir) if path.starts_with(dir) && path != dir => Ok(()),
            Some(dir) => Err(format!(
                "refused: {} is outside {}, the directory this agent reads check files from",
                path.display(),
                dir.display()
            )),
            None => Err(format!(
                "refused: this agent reads no files for checks ({} asked; start it with --check-files DIR)",
                path.display()
            )),
        }
    }

    /// Whether this agent runs the check, or why not.
    pub(crate) fn admit(&self, check: &Check) -> Result<(), String> {
        match &check.kind {
            CheckKind::Exec(argv) => self.program(&argv[0]),
            CheckKind::File { path, .. } => self.file(path),
            CheckKind::Http(h) => match &h.tls {
                Some(Tls::CaFile(p)) => self.file(p),
                _ => Ok(()),
            },
            CheckKind::Tcp(_) => Ok(()),
        }
    }

    /// Whether this agent runs the hooks, or why not.
    pub(crate) fn admit_notify(&self, n: &Notify) -> Result<(), String> {
        n.programs().try_for_each(|p| self.program(p))
    }

    /// The checker for a check (a CA file is read here).
    pub(crate) fn build(&self, check: &Check) -> Result<Box<dyn Checker>, String> {
        self.admit(check)?;
        Ok(match &check.kind {
            CheckKind::Http(h) => Box::new(http::Http::new(h.clone())?),
            CheckKind::Tcp(addr) => Box::new(tcp::Tcp { addr: *addr }),
            CheckKind::Exec(argv) => Box::new(exec::Exec {
                argv: argv.clone(),
                run_as: self.run_as,
            }),
            CheckKind::File { path, mode } => Box::new(file::File {
                path: path.clone(),
                mode: *mode,
                beneath: self.files_dir.clone().filter(|_| self.cluster),
            }),
        })
    }
}

/// keepalived's counting over results: `fall` consecutive failures make a passing check
/// failing, `rise` consecutive successes make a failing one pass. Pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckState {
    pub healthy: bool,
    /// The current streak: successes if the last result passed, else failures.
    pub streak: u32,
    pub last: Option<Outcome>,
    /// When `healthy` last changed (or the check started).
    pub since: SystemTime,
    /// The failure that made it fail, for the tracker's reason.
    pub cause: Option<String>,
    /// What the cluster report shows (changes only while a streak builds up, see `report`).
    pub shown: Option<(bool, u32, String)>,
}

impl CheckState {
    pub(crate) fn new(check: &Check, now: SystemTime) -> CheckState {
        CheckState {
            healthy: !check.initially_failing,
            streak: 0,
            last: None,
            since: now,
            cause: check
                .initially_failing
                .then(|| format!("check {} has not passed yet", check.name)),
            shown: None,
        }
    }

    /// Records a result. Returns whether `healthy` changed.
    pub(crate) fn record(&mut self, check: &Check, o: Outcome, now: SystemTime) -> bool {
        let continues = self.last.as_ref().is_some_and(|l| l.ok == o.ok);
        self.streak = if continues {
            self.streak.saturating_add(1)
        } else {
            1
        };
        let before = self.healthy;
        if let Some(v) = o.value {
            // track_file: no counting, the number counts at once.
            let t = Tracker {
                value: Some(v),
                ..Tracker::new(check.weight, false, "")
            };
            self.healthy = !t.fault() && t.contribution() >= 0;
            self.cause = (!self.healthy).then(|| format!("check {}: file value {v}", check.name));
        } else if o.ok && !self.healthy && self.streak >= check.rise {
            self.healthy = true;
            self.cause = None;
        } else if !o.ok && self.healthy && self.streak >= check.fall {
            self.healthy = false;
            self.cause = Some(if check.fall > 1 {
                format!(
                    "check {} failed {} times: {}",
                    check.name, check.fall, o.text
                )
            } else {
                format!("check {} failed: {}", check.name, o.text)
            });
        }
        let cap = if o.ok { check.rise } else { check.fall };
        let shown = (o.ok, self.streak.min(cap), o.text.clone());
        // The report follows a streak until it settles, then stays: a check that passes every
        // second does not rewrite the status every second.
        if self
            .shown
            .as_ref()
            .is_none_or(|s| s.0 != shown.0 || s.1 != shown.1)
            || before != self.healthy
        {
            self.shown = Some(shown);
        }
        self.last = Some(o);
        if before != self.healthy {
            self.since = now;
        }
        before != self.healthy
    }

    /// The tracker the engine gets.
    pub(crate) fn tracker(&self, check: &Check) -> Tracker {
        let reason = self
            .cause
            .clone()
            .unwrap_or_else(|| format!("check {} failing", check.name));
        match self.last.as_ref().and_then(|o| o.value) {
            Some(v) => Tracker {
                value: Some(v),
                ..Tracker::new(check.weight, false, &reason)
            },
            None => Tracker::new(check.weight, !self.healthy, &reason),
        }
    }

    /// The status entry: `live` for `/status` (the latest result), else the cluster report's
    /// steadier view.
    pub(crate) fn status(&self, check: &Check, live: bool) -> CheckStatus {
        let t = self.tracker(check);
        let (streak, result) = match (&self.shown, &self.last, live) {
            (_, Some(l), true) => (self.streak, Some(l.text.clone())),
            (Some((_, n, text)), _, false) => (*n, Some(text.clone())),
            _ => (0, None),
        };
        CheckStatus {
            name: check.name.clone(),
            healthy: self.healthy,
            result,
            consecutive: streak,
            contribution: if t.fault() { 0 } else { t.contribution() },
            fault: t.fault(),
            last_transition_time: Some(rfc3339(self.since)),
        }
    }
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    k8s_openapi::jiff::Timestamp::try_from(t)
        .map(|t| {
            t.round(k8s_openapi::jiff::Unit::Second)
                .unwrap_or(t)
                .to_string()
        })
        .unwrap_or_default()
}

/// A check this agent runs, or refused.
struct Entry {
    generation: u64,
    check: Check,
    state: CheckState,
    refused: Option<String>,
}

/// Every check's state, shared by the check tasks and the agent.
#[derive(Clone, Default)]
pub(crate) struct Store {
    inner: Arc<Mutex<HashMap<(String, String), Entry>>>,
}

/// A tracker name for a check.
pub(crate) fn tracker_name(check: &str) -> String {
    format!("check:{check}")
}

/// Where a check's results go.
pub(crate) trait Sink: Send + Sync + 'static {
    /// The tracker of a VirtualIP changed (`None`: gone).
    fn tracker(&self, vip: &str, name: &str, tracker: Option<Tracker>);
    /// Something the cluster report shows changed.
    fn changed(&self);
}

impl Store {
    /// The states of a VirtualIP's checks: `live` (standalone `/status`) or the report's.
    pub(crate) fn statuses(&self, live: bool) -> HashMap<String, Vec<CheckStatus>> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: HashMap<String, Vec<CheckStatus>> = HashMap::new();
        for ((vip, _), e) in map.iter() {
            let s = match &e.refused {
                Some(why) => CheckStatus {
                    name: e.check.name.clone(),
                    healthy: false,
                    result: Some(why.clone()),
                    consecutive: 0,
                    contribution: 0,
                    fault: false,
                    last_transition_time: Some(rfc3339(e.state.since)),
                },
                None => e.state.status(&e.check, live),
            };
            out.entry(vip.clone()).or_default().push(s);
        }
        for v in out.values_mut() {
            v.sort_by(|a, b| a.name.cmp(&b.name));
        }
        out
    }

    /// The running checks of a VirtualIP, by name.
    pub(crate) fn checks_of(&self, vip: &str) -> Vec<Check> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|((v, _), _)| v == vip)
            .map(|(_, e)| e.check.clone())
            .collect()
    }

    /// The VirtualIPs with checks.
    pub(crate) fn vips(&self) -> Vec<String> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<String> = map.keys().map(|(v, _)| v.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Stops a check (its task sees it gone and ends; its tracker is removed in the same
    /// critical section, so no result of it can arrive after).
    pub(crate) fn remove(&self, vip: &str, name: &str, sink: &dyn Sink) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if map.remove(&(vip.to_string(), name.to_string())).is_some() {
            sink.tracker(vip, &tracker_name(name), None);
        }
    }

    /// Starts (or restarts with a new definition) a check. A restarted check keeps its state
    /// when it is the same kind of check: an edit of its interval does not flap the VIP.
    pub(crate) fn start(&self, vip: &str, check: Check, policy: &Policy, sink: Arc<dyn Sink>) {
        let key = (vip.to_string(), check.name.clone());
        let now = SystemTime::now();
        let built = policy.build(&check);
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let generation = map.get(&key).map(|e| e.generation + 1).unwrap_or(1);
        let state = match map.get(&key) {
            Some(e) if e.refused.is_none() && e.check.kind.label() == check.kind.label() => {
                e.state.clone()
            }
            _ => CheckState::new(&check, now),
        };
        let name = tracker_name(&check.name);
        match built {
            Err(why) => {
                tracing::warn!(virtual_ip = %vip, check = %check.name, reason = %why, "health check not run");
                sink.tracker(vip, &name, None);
                map.insert(
                    key,
                    Entry {
                        generation,
                        check,
                        state,
                        refused: Some(why),
                    },
                );
                sink.changed();
            }
            Ok(checker) => {
                sink.tracker(vip, &name, Some(state.tracker(&check)));
                map.insert(
                    key.clone(),
                    Entry {
                        generation,
                        check: check.clone(),
                        state,
                        refused: None,
                    },
                );
                sink.changed();
                let store = self.clone();
                tokio::spawn(async move { store.run(key, generation, check, checker, sink).await });
            }
        }
    }

    async fn run(
        self,
        key: (String, String),
        generation: u64,
        check: Check,
        checker: Box<dyn Checker>,
        sink: Arc<dyn Sink>,
    ) {
        let mut tick = tokio::time::interval(check.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !self.alive(&key, generation) {
                return;
            }
            // The checker enforces the timeout; this is the backstop for one that does not.
            let o = match tokio::time::timeout(
                check.timeout + Duration::from_millis(100),
                checker.run(check.timeout),
            )
            .await
            {
                Ok(o) => o,
                Err(_) => Outcome::timed_out(check.timeout),
            };
            let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let Some(e) = map.get_mut(&key).filter(|e| e.generation == generation) else {
                return;
            };
            let before_tracker = e.state.tracker(&check);
            let before_shown = e.state.shown.clone();
            let text = o.text.clone();
            if e.state.record(&check, o, SystemTime::now()) {
                tracing::info!(virtual_ip = %key.0, check = %check.name, healthy = e.state.healthy, result = %text, "health check changed");
            }
            let after = e.state.tracker(&check);
            if after != before_tracker {
                sink.tracker(&key.0, &tracker_name(&check.name), Some(after));
            }
            if e.state.shown != before_shown {
                sink.changed();
            }
        }
    }

    fn alive(&self, key: &(String, String), generation: u64) -> bool {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).is_some_and(|e| e.generation == generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tracking::CheckKind;

    fn check(fall: u32, rise: u32, weight: i16, initially_failing: bool) -> Check {
        Check {
            name: "web".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            fall,
            rise,
            weight,
            initially_failing,
            kind: CheckKind::Tcp("127.0.0.1:80".parse().unwrap()),
        }
    }

    fn feed(c: &Check, s: &mut CheckState, results: &str) -> String {
        results
            .chars()
            .map(|r| {
                let o = if r == '+' {
                    Outcome::pass("ok".into())
                } else {
                    Outcome::fail("connection refused".into())
                };
                s.record(c, o, SystemTime::now());
                if s.healthy { 'H' } else { 'F' }
            })
            .collect()
    }

    #[test]
    fn fall_and_rise_count_consecutive_results() {
        let c = check(3, 2, 0, false);
        let mut s = CheckState::new(&c, SystemTime::now());
        assert_eq!(feed(&c, &mut s, "--+---+-+--++"), "HHHHHFFFFFFFH");
        assert!(!s.tracker(&c).failing);
    }

    #[test]
    fn a_flapping_check_never_trips() {
        let c = check(2, 2, 0, false);
        let mut s = CheckState::new(&c, SystemTime::now());
        assert_eq!(feed(&c, &mut s, "-+-+-+-+-+"), "HHHHHHHHHH");
    }

    #[test]
    fn init_fail_needs_rise_successes() {
        let c = check(1, 3, 0, true);
        let mut s = CheckState::new(&c, SystemTime::now());
        assert!(s.tracker(&c).fault());
        assert_eq!(feed(&c, &mut s, "++-+++"), "FFFFFH");
    }

    #[test]
    fn the_tracker_says_why_and_weighs() {
        let c = check(3, 1, -50, false);
        let mut s = CheckState::new(&c, SystemTime::now());
        feed(&c, &mut s, "---");
        let t = s.tracker(&c);
        assert_eq!((t.failing, t.contribution(), t.fault()), (true, -50, false));
        assert_eq!(t.reason, "check web failed 3 times: connection refused");
        let st = s.status(&c, false);
        assert_eq!(
            (st.healthy, st.consecutive, st.contribution),
            (false, 3, -50)
        );
    }

    #[test]
    fn the_report_settles_while_the_live_view_counts_on() {
        let c = check(2, 2, 0, false);
        let mut s = CheckState::new(&c, SystemTime::now());
        feed(&c, &mut s, "++");
        let settled = s.shown.clone();
        feed(&c, &mut s, "+++");
        assert_eq!(s.shown, settled, "no change once the streak reached rise");
        assert_eq!(s.status(&c, true).consecutive, 5);
        assert_eq!(s.status(&c, false).consecutive, 2);
    }
}
