//! `exec`: a program (no shell) in a process group of its own; exit status 0 passes. At the
//! timeout the whole group gets SIGTERM, then SIGKILL a second later (keepalived's way), and
//! the result is reported at once: the reaping happens beside the check.
//!
//! Nothing a check or hook starts outlives it. When it ends, what is left of its process
//! group is killed; and the agent is a child subreaper ([`contain_descendants`]), so a child
//! that left the group (`setsid`, a double fork) becomes the agent's own child once its parent
//! is gone, and is killed and reaped by [`sweep`] — unless it is a command the agent runs
//! now. A check may therefore not leave a daemon behind (start services through the service
//! manager instead).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::{BoxFuture, Checker, Outcome, io_text};

/// Who commands run as (uid, gid); `None`: the agent's own user.
pub(crate) type RunAs = Option<(u32, u32)>;

pub(crate) struct Exec {
    pub argv: Vec<String>,
    pub run_as: RunAs,
}

impl Checker for Exec {
    fn run(&self, timeout: Duration) -> BoxFuture<'_, Outcome> {
        Box::pin(run(&self.argv, timeout, self.run_as, &[]))
    }
}

const KILL_GRACE: Duration = Duration::from_secs(1);

/// The commands running now (their pids): never swept.
static RUNNING: std::sync::Mutex<BTreeSet<u32>> = std::sync::Mutex::new(BTreeSet::new());
/// Whether this process is a subreaper (only then are orphans its own to sweep).
static SUBREAPER: AtomicBool = AtomicBool::new(false);
/// A sweep is due or running.
static SWEEP_DUE: AtomicBool = AtomicBool::new(false);
/// Orphans killed so far.
pub(crate) static ORPHANS_KILLED: AtomicU64 = AtomicU64::new(0);

/// Makes this process the reaper of its descendants' orphans (PR_SET_CHILD_SUBREAPER; no
/// privilege needed). The agent calls it once at start.
pub(crate) fn contain_descendants() -> std::io::Result<()> {
    // SAFETY: plain prctl on this process.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    SUBREAPER.store(true, Ordering::SeqCst);
    Ok(())
}

/// Children of `me` that are none of `running`, from `/proc`: the orphans a subreaper adopted.
fn orphans(me: u32, running: &BTreeSet<u32>) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !running.contains(pid))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parent_of(&s))
                == Some(me)
        })
        .collect()
}

/// The parent pid in a `/proc/PID/stat` line (the command may hold spaces and parentheses).
fn parent_of(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Kills and reaps the orphans this subreaper adopted, until none is left (a killed one's
/// own children come next). Blocking; runs off the runtime.
fn sweep_now() {
    let me = std::process::id();
    for _ in 0..50 {
        let found = {
            let running = RUNNING.lock().expect("running");
            let found = orphans(me, &running);
            for &pid in &found {
                // SAFETY: plain syscall on a child of ours that no command of ours is.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
            found
        };
        if found.is_empty() {
            return;
        }
        ORPHANS_KILLED.fetch_add(found.len() as u64, Ordering::Relaxed);
        for pid in found {
            for _ in 0..100 {
                let mut status = 0;
                // SAFETY: reaps that one child only (tokio reaps its own children by pid).
                let r = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
                if r != 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// Asks for a sweep soon (coalesced: at most one per 50 ms), if this process is a subreaper.
pub(crate) fn sweep() {
    if !SUBREAPER.load(Ordering::SeqCst) || SWEEP_DUE.swap(true, Ordering::SeqCst) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        SWEEP_DUE.store(false, Ordering::SeqCst);
        let _ = tokio::task::spawn_blocking(sweep_now).await;
    });
}

/// Runs `argv` with a minimal environment plus `env`; kills its process group at the timeout.
pub(crate) async fn run(
    argv: &[String],
    timeout: Duration,
    run_as: RunAs,
    env: &[(&str, String)],
) -> Outcome {
    let Some((program, args)) = argv.split_first() else {
        return Outcome::fail("empty command".into());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .current_dir("/")
        .process_group(0)
        // Dropped before it ends (a hook superseded by a newer transition): the child is
        // killed here, the rest of its group and its escapees by the guard below.
        .kill_on_drop(true);
    if let Some((uid, gid)) = run_as {
        // The standard library also drops the supplementary groups when root changes user.
        cmd.uid(uid).gid(gid);
    }
    let t0 = tokio::time::Instant::now();
    // Spawned and recorded under one lock: a sweep never takes a command starting up.
    let spawned = {
        let mut running = RUNNING.lock().expect("running");
        cmd.spawn().inspect(|c| {
            running.extend(c.id());
        })
    };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return Outcome::fail(format!("cannot run {program}: {}", io_text(&e))),
    };
    let pid = child.id();
    // Ended, or dropped: what it left running in its group goes, then what left the group.
    let mut guard = pid.map(Contained);
    let waited = tokio::time::timeout(timeout, child.wait()).await;
    match waited {
        Ok(Ok(status)) => {
            let took = super::ms(t0.elapsed());
            match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(0), _) => Outcome::pass(format!("exit status 0 in {took}")),
                (Some(c), _) => Outcome::fail(format!("exit status {c}")),
                (None, Some(s)) => Outcome::fail(format!("killed by signal {s}")),
                (None, None) => Outcome::fail("ended without a status".into()),
            }
        }
        Ok(Err(e)) => Outcome::fail(format!("cannot wait for {program}: {}", io_text(&e))),
        Err(_) => {
            if let Some(contained) = guard.take() {
                kill_group(contained.0, libc::SIGTERM);
                tokio::spawn(async move {
                    if tokio::time::timeout(KILL_GRACE, child.wait())
                        .await
                        .is_err()
                    {
                        kill_group(contained.0, libc::SIGKILL);
                        let _ = child.wait().await;
                    }
                    drop(contained);
                });
            }
            let mut o = Outcome::timed_out(timeout);
            o.text.push_str(" (killed)");
            o
        }
    }
}

/// A command's process group, killed with everything that escaped it when dropped.
struct Contained(u32);

impl Drop for Contained {
    fn drop(&mut self) {
        kill_group(self.0, libc::SIGKILL);
        RUNNING.lock().expect("running").remove(&self.0);
        sweep();
    }
}

fn kill_group(pid: u32, signal: i32) {
    // SAFETY: plain syscall; the group is the child's own (process_group(0)).
    unsafe {
        libc::kill(-(pid as i32), signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_is_read_past_any_command_name() {
        assert_eq!(parent_of("42 (sleep) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parent_of("42 (a) b) (c) R 9 1 1"), Some(9));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn only_children_of_the_given_pid_that_are_not_running_commands_are_orphans() {
        // This test process's parent (cargo's harness runner) has this process as a child.
        let me = std::process::id();
        let parent = parent_of(&std::fs::read_to_string("/proc/self/stat").unwrap()).unwrap();
        assert!(orphans(parent, &BTreeSet::new()).contains(&me));
        assert!(!orphans(parent, &BTreeSet::from([me])).contains(&me));
    }
}
