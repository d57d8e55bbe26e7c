//! The warden: `kube-vrrp agent` starts the agent as its child and outlives it. It holds the
//! node lock, forwards SIGTERM, SIGINT and SIGHUP, reads the will the agent keeps up to date
//! (`will.rs`: the decisions and the wire format), and when the agent ends without releasing
//! what it held, hands its masters over and removes its addresses at once: a dead agent is
//! handed over at graceful speed, whatever number of addresses it held. The address
//! lifetimes stay behind it as the last resort, for when the warden dies too.
//!
//! It costs nothing while the agent lives: it sleeps in one `epoll_wait` with no timer, and
//! wakes only for a signal, a new will (a change of master) or the agent's end.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use super::lock::NodeLock;
use super::will::{Ended, Farewell, GRACE, Handover, Reader, WILL_FD_ENV, Will, last_rites};
use crate::ids::Family;
use crate::net::netlink::Netlink;
use crate::net::socket::{VrrpReceiver, VrrpSender};
use tokio::sync::mpsc;

/// How long the agent has to stop after SIGTERM before the warden kills it and hands over
/// for it. A graceful stop takes at most three advertisement intervals; a pod's default
/// grace period is 30 s.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Removals in flight at once.
const PARALLEL: usize = 64;

/// Runs the agent (this program, with the same arguments) under a warden until it ends;
/// returns the exit status the agent had (128 + its signal if it was killed).
pub(crate) async fn run(lock_wait: Duration) -> u8 {
    match watch_over(lock_wait).await {
        Ok(code) => code,
        Err(e) => {
            error!(error = %e, "the warden cannot run the agent");
            1
        }
    }
}

async fn watch_over(lock_wait: Duration) -> std::io::Result<u8> {
    let _lock = NodeLock::acquire_waiting(lock_wait)
        .await
        .map_err(std::io::Error::other)?;
    let (read, write) = pipe()?;
    let mut child = spawn_agent(&write)?;
    drop(write);
    let pid = child.id().unwrap_or(0) as i32;
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(read)?;
    let mut reader = Reader::default();
    let mut said = false;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut buf = vec![0u8; 64 << 10];
    let mut open = true;
    let status = loop {
        let stop_by = deadline.unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            status = child.wait() => break status?,
            n = pipe.read(&mut buf), if open => match n {
                Ok(0) | Err(_) => open = false,
                Ok(n) => read_will(&mut reader, &buf[..n], &mut said),
            },
            _ = term.recv() => {
                forward(pid, libc::SIGTERM);
                deadline.get_or_insert(tokio::time::Instant::now() + STOP_TIMEOUT);
            }
            _ = int.recv() => {
                forward(pid, libc::SIGINT);
                deadline.get_or_insert(tokio::time::Instant::now() + STOP_TIMEOUT);
            }
            _ = hup.recv() => forward(pid, libc::SIGHUP),
            _ = tokio::time::sleep_until(stop_by), if deadline.is_some() => {
                warn!(timeout = ?STOP_TIMEOUT, "the agent did not stop in time: killed, the warden hands over for it");
                let _ = child.start_kill();
                deadline = None;
            }
        }
    };
    // What the agent wrote before it ended: the pipe closes with it.
    if open {
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                read_will(&mut reader, &buf[..n], &mut said);
            }
        })
        .await;
    }
    let ended = match (status.code(), status.signal()) {
        (Some(code), _) => Ended::Exited(code),
        (None, Some(signal)) => Ended::Killed(signal),
        (None, None) => Ended::Exited(1),
    };
    Ok(carry_out(ended, reader.will()).await)
}

/// Feeds the reader; says once that the will broke (every later feed fails the same way).
fn read_will(reader: &mut Reader, bytes: &[u8], said: &mut bool) {
    if let Err(e) = reader.feed(bytes)
        && !std::mem::replace(said, true)
    {
        error!(error = %e, "the agent's will is unreadable: the last good one stands");
    }
}

/// Does what the agent's end calls for; returns the exit status.
async fn carry_out(ended: Ended, will: &Will) -> u8 {
    let rites = last_rites(ended, will);
    if rites.farewells.is_empty() && !rites.remove_addresses {
        info!("the agent stopped and released what it held");
        return rites.exit_code;
    }
    let started = Instant::now();
    // Listening before the farewells: a successor answers within its skew time.
    let mut handover = Handover::new(&rites.farewells);
    let mut heard = listen(&handover);
    let (sent, failed) = send_farewells(&rites.farewells);
    // Make before break: the addresses stay until the successors are heard.
    let waited = tokio::time::timeout(handover.deadline, async {
        while !handover.done() {
            match heard.recv().await {
                Some((ifindex, family, payload)) => {
                    handover.heard(ifindex, family, &payload);
                }
                None => std::future::pending().await,
            }
        }
    })
    .await;
    if waited.is_ok() && !rites.farewells.is_empty() {
        tokio::time::sleep(GRACE).await;
    }
    let successors = if waited.is_ok() {
        "heard"
    } else {
        "not all heard"
    };
    let removed = if rites.remove_addresses {
        remove_ours().await
    } else {
        Ok(0)
    };
    let took = started.elapsed();
    match removed {
        Ok(removed) => warn!(
            agent = ?ended, advertisements = sent, failed, successors, removed,
            took_ms = took.as_millis() as u64,
            "the agent ended without releasing: its masters handed over (priority 0) and its addresses removed"
        ),
        Err(e) => error!(
            agent = ?ended, advertisements = sent, failed, error = %e,
            "the agent ended without releasing: its masters handed over, but its addresses could not be listed; they end by their lifetimes"
        ),
    }
    rites.exit_code
}

/// Every VRRP message on the interfaces and families of `handover`: (ifindex, family, payload).
fn listen(handover: &Handover) -> mpsc::UnboundedReceiver<(u32, Family, Vec<u8>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    for (ifindex, family) in handover.listen_on() {
        let receiver =
            interface_name(ifindex).and_then(|name| VrrpReceiver::open(family, &name, ifindex));
        let Ok(receiver) = receiver else {
            continue; // the deadline stands in for the successor
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(r) = receiver.recv().await {
                if tx.send((ifindex, family, r.payload)).is_err() {
                    return;
                }
            }
        });
    }
    rx
}

/// Sends each farewell once, from its interface and source; returns (sent, failed).
fn send_farewells(farewells: &[Farewell]) -> (usize, usize) {
    let mut senders: BTreeMap<(u32, IpAddr), Option<VrrpSender>> = BTreeMap::new();
    let (mut sent, mut failed) = (0, 0);
    for f in farewells {
        let sender = senders.entry((f.ifindex, f.source)).or_insert_with(|| {
            let opened = interface_name(f.ifindex)
                .and_then(|name| VrrpSender::open(&name, f.ifindex, f.source));
            opened
                .map_err(|e| warn!(ifindex = f.ifindex, source = %f.source, error = %e, "cannot send the dead agent's advertisements"))
                .ok()
        });
        match sender.as_ref().map(|s| s.send(f.destination, &f.packet)) {
            Some(Ok(())) => sent += 1,
            _ => failed += 1,
        }
    }
    (sent, failed)
}

/// Removes every address the kernel shows with our mark (only the warden's agent runs on
/// this node: the warden holds the node lock). Returns how many went.
async fn remove_ours() -> Result<usize, crate::net::netlink::NetlinkError> {
    let nl = Netlink::connect()?;
    let ours: Vec<_> = nl
        .addresses(None)
        .await?
        .into_iter()
        .filter(|a| a.is_ours())
        .collect();
    let nl = &nl;
    let removed = futures::stream::iter(ours)
        .map(|a| async move {
            nl.del_address(a.index, a.address, a.prefix_len)
                .await
                .map_err(|e| warn!(address = %a.address, error = %e, "cannot remove the dead agent's address"))
                .is_ok()
        })
        .buffer_unordered(PARALLEL)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    Ok(removed)
}

fn interface_name(ifindex: u32) -> std::io::Result<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer holds IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
}

fn forward(pid: i32, sig: libc::c_int) {
    if pid > 0 {
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(pid, sig) };
    }
}

/// A pipe, both ends close-on-exec: (read, write).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors on success; we own them from then on.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// This program again, with the same arguments, told where its will goes. It dies with the
/// warden (PDEATHSIG): a warden killed with SIGKILL leaves no agent behind it.
fn spawn_agent(will: &OwnedFd) -> std::io::Result<tokio::process::Child> {
    let fd = will.as_raw_fd();
    let warden = std::process::id() as i32;
    // This program: /proc/self/exe, or as it was started where no /proc is mounted (a bare
    // chroot; a container always has one).
    let exe = std::env::current_exe()
        .ok()
        .or_else(|| std::env::args_os().next().map(Into::into))
        .ok_or_else(|| std::io::Error::other("cannot tell which program this is"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(WILL_FD_ENV, fd.to_string());
    // SAFETY: only async-signal-safe calls (fcntl, prctl, getppid) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) != 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The warden died before the line above: nobody would clean up after us.
            if libc::getppid() != warden {
                return Err(std::io::Error::other("the warden is gone"));
            }
            Ok(())
        });
    }
    tokio::process::Command::from(cmd).spawn()
}

/// The agent's end of the will: the descriptor the warden passed, if this process runs under
/// one. Closed on exec from here on, so no check, hook or helper the agent starts holds the
/// pipe open after the agent's death.
pub(crate) fn inherited_will() -> Option<OwnedFd> {
    let fd: i32 = std::env::var(WILL_FD_ENV).ok()?.parse().ok()?;
    if fd <= 2 {
        return None;
    }
    // SAFETY: the warden passed this descriptor for us alone; nothing else in this process
    // knows its number.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain fcntl on a descriptor we own.
    if unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return None;
    }
    Some(owned)
}

/// The agent's side: writes every new will to the warden, the newest only, never waiting
/// on the engine (a watch channel between them).
pub(crate) async fn publish(fd: OwnedFd, mut wills: tokio::sync::watch::Receiver<Will>) {
    use tokio::io::AsyncWriteExt;
    // SAFETY: plain fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut pipe = match tokio::net::unix::pipe::Sender::from_owned_fd(fd) {
        Ok(p) => p,
        Err(e) => {
            error!(error = %e, "cannot write the will for the warden: a crash leaves the addresses until their lifetimes end");
            return;
        }
    };
    loop {
        let frame = wills.borrow_and_update().frame();
        if let Err(e) = pipe.write_all(&frame).await {
            error!(error = %e, "the warden is gone: a crash leaves the addresses until their lifetimes end");
            return;
        }
        if wills.changed().await.is_err() {
            return;
        }
    }
}
