//! `exec`: a program (no shell) in a process group of its own; exit status 0 passes. At the
//! timeout the whole group gets SIGTERM, then SIGKILL a second later (keepalived's way), and
//! the result is reported at once: the reaping happens beside the check.

use std::time::Duration;

use super::{BoxFuture, Checker, Outcome, io_text};

/// Who commands run as (uid, gid); `None`: the agent's own user.
pub type RunAs = Option<(u32, u32)>;

pub struct Exec {
    pub argv: Vec<String>,
    pub run_as: RunAs,
}

impl Checker for Exec {
    fn run(&self, timeout: Duration) -> BoxFuture<'_, Outcome> {
        Box::pin(run(&self.argv, timeout, self.run_as, &[]))
    }
}

const KILL_GRACE: Duration = Duration::from_secs(1);

/// Runs `argv` with a minimal environment plus `env`; kills its process group at the timeout.
pub async fn run(
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
        .kill_on_drop(false);
    if let Some((uid, gid)) = run_as {
        // The standard library also drops the supplementary groups when root changes user.
        cmd.uid(uid).gid(gid);
    }
    let t0 = tokio::time::Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::fail(format!("cannot run {program}: {}", io_text(&e))),
    };
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait()).await {
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
            if let Some(pid) = pid {
                kill_group(pid, libc::SIGTERM);
                tokio::spawn(async move {
                    if tokio::time::timeout(KILL_GRACE, child.wait())
                        .await
                        .is_err()
                    {
                        kill_group(pid, libc::SIGKILL);
                        let _ = child.wait().await;
                    }
                });
            }
            let mut o = Outcome::timed_out(timeout);
            o.text.push_str(" (killed)");
            o
        }
    }
}

fn kill_group(pid: u32, signal: i32) {
    // SAFETY: plain syscall; the group is the child's own (process_group(0)).
    unsafe {
        libc::kill(-(pid as i32), signal);
    }
}
