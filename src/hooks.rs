//! Notify hooks (keepalived `notify_master|backup|fault|stop` and `notify`): run on each
//! transition, off the VRRP engine, one at a time per VirtualIP, each with its timeout;
//! outcomes logged and counted. Coalesced: a VirtualIP's newest state is always the one
//! delivered, at once. Transitions that arrive while a hook runs replace each other (only
//! the newest waits), and the running hook, now out of date, is killed (with whatever it
//! started) so that the newest runs without waiting on a hung one.
//!
//! As in keepalived, the state's own command runs as configured, and the generic one (`any`)
//! gets four arguments appended: `INSTANCE <name> <MASTER|BACKUP|FAULT|STOP> <priority>`.
//! Every command also sees `KUBE_VRRP_INSTANCE`, `KUBE_VRRP_FAMILY`, `KUBE_VRRP_STATE` and
//! `KUBE_VRRP_PRIORITY` in its environment.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::checks::exec::{self, RunAs};
use crate::model::tracking::Notify;
use crate::vrrp::State;

/// A transition, as the engine reports it.
#[derive(Debug, Clone)]
pub(crate) struct HookEvent {
    /// The VirtualIP's name.
    pub vip: String,
    /// The family's key, [`Family::as_key`](crate::ids::Family::as_key): `ipv4` / `ipv6`.
    pub family: &'static str,
    /// `None`: the instance stopped.
    pub to: Option<State>,
    pub priority: u8,
}

pub(crate) enum NotifyMsg {
    /// The hooks of every VirtualIP that has some (and is allowed to).
    Config(HashMap<String, Notify>),
    Transition(HookEvent),
}

#[derive(Debug, Default)]
pub(crate) struct NotifyCounters {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// Hooks killed because a newer transition of their VirtualIP came.
    pub superseded: AtomicU64,
}

fn word(to: Option<State>) -> &'static str {
    match to {
        Some(State::Master) => "MASTER",
        Some(State::Backup) => "BACKUP",
        Some(State::Fault) => "FAULT",
        Some(State::Initialize) | None => "STOP",
    }
}

/// The commands one transition runs, in order.
pub(crate) fn commands(n: &Notify, t: &HookEvent) -> Vec<Vec<String>> {
    let own = match t.to {
        Some(State::Master) => &n.master,
        Some(State::Backup) => &n.backup,
        Some(State::Fault) => &n.fault,
        Some(State::Initialize) | None => &n.stop,
    };
    let mut out = Vec::new();
    if !own.is_empty() {
        out.push(own.clone());
    }
    if !n.any.is_empty() {
        let mut argv = n.any.clone();
        argv.extend([
            "INSTANCE".to_string(),
            t.vip.clone(),
            word(t.to).to_string(),
            t.priority.to_string(),
        ]);
        out.push(argv);
    }
    out
}

/// Runs until the channel closes.
pub(crate) async fn run(
    mut rx: mpsc::UnboundedReceiver<NotifyMsg>,
    run_as: RunAs,
    counters: Arc<NotifyCounters>,
) {
    let mut hooks: HashMap<String, Notify> = HashMap::new();
    let mut latest: HashMap<String, watch::Sender<Option<(Notify, HookEvent)>>> = HashMap::new();
    while let Some(msg) = rx.recv().await {
        match msg {
            NotifyMsg::Config(h) => {
                latest.retain(|vip, _| h.contains_key(vip));
                hooks = h;
            }
            NotifyMsg::Transition(t) => {
                let Some(n) = hooks.get(&t.vip) else { continue };
                let slot = latest.entry(t.vip.clone()).or_insert_with(|| {
                    let (tx, rx) = watch::channel(None);
                    tokio::spawn(deliver(rx, run_as, counters.clone()));
                    tx
                });
                // A transition not delivered yet is replaced by the newer one.
                slot.send_replace(Some((n.clone(), t)));
            }
        }
    }
}

/// One VirtualIP's hooks: the newest transition, at once; a newer one supersedes the one
/// running (killed) or waiting (skipped).
async fn deliver(
    mut rx: watch::Receiver<Option<(Notify, HookEvent)>>,
    run_as: RunAs,
    counters: Arc<NotifyCounters>,
) {
    let mut fresh = false;
    loop {
        if !fresh && rx.changed().await.is_err() {
            return;
        }
        fresh = false;
        let Some((n, t)) = rx.borrow_and_update().clone() else {
            continue;
        };
        tokio::select! {
            () = run_hooks(&n, &t, run_as, &counters) => {}
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                counters.superseded.fetch_add(1, Ordering::Relaxed);
                warn!(virtual_ip = %t.vip, state = word(t.to), "notify command superseded by a newer transition: killed");
                fresh = true;
            }
        }
    }
}

/// Runs one transition's commands in order.
async fn run_hooks(n: &Notify, t: &HookEvent, run_as: RunAs, counters: &NotifyCounters) {
    for argv in commands(n, t) {
        let env = [
            ("KUBE_VRRP_INSTANCE", t.vip.clone()),
            ("KUBE_VRRP_FAMILY", t.family.to_string()),
            ("KUBE_VRRP_STATE", word(t.to).to_string()),
            ("KUBE_VRRP_PRIORITY", t.priority.to_string()),
        ];
        let o = exec::run(&argv, n.timeout, run_as, &env).await;
        if o.ok {
            counters.ok.fetch_add(1, Ordering::Relaxed);
            info!(virtual_ip = %t.vip, state = word(t.to), command = %argv[0], result = %o.text, "notify command ran");
        } else {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            warn!(virtual_ip = %t.vip, state = word(t.to), command = %argv[0], result = %o.text, "notify command failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalived_arguments_go_to_the_generic_command_only() {
        let n = Notify {
            master: vec!["/m".into()],
            any: vec!["/n".into(), "x".into()],
            ..Default::default()
        };
        let t = HookEvent {
            vip: "web".into(),
            family: crate::ids::Family::V4.as_key(),
            to: Some(State::Master),
            priority: 101,
        };
        assert_eq!(
            commands(&n, &t),
            vec![
                vec!["/m".to_string()],
                ["/n", "x", "INSTANCE", "web", "MASTER", "101"]
                    .map(String::from)
                    .to_vec()
            ]
        );
        let t = HookEvent { to: None, ..t };
        assert_eq!(
            commands(&n, &t),
            vec![
                ["/n", "x", "INSTANCE", "web", "STOP", "101"]
                    .map(String::from)
                    .to_vec()
            ]
        );
    }

    #[tokio::test]
    async fn a_hung_hook_never_delays_the_newest_state() {
        let dir = std::env::temp_dir().join(format!("kube-vrrp-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("states");
        // Every BACKUP hook hangs far past the test; MASTER returns at once.
        let script = format!(
            "echo \"$KUBE_VRRP_STATE\" >> {}; [ \"$KUBE_VRRP_STATE\" = BACKUP ] && exec sleep 30; true",
            log.display()
        );
        let n = Notify {
            any: vec!["/bin/sh".into(), "-c".into(), script],
            timeout: std::time::Duration::from_secs(20),
            ..Default::default()
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(NotifyCounters::default());
        tokio::spawn(run(rx, None, counters.clone()));
        tx.send(NotifyMsg::Config(HashMap::from([("web".to_string(), n)])))
            .unwrap();
        let event = |to| HookEvent {
            vip: "web".into(),
            family: crate::ids::Family::V4.as_key(),
            to: Some(to),
            priority: 100,
        };
        // Ten flaps (a spoofed master), each BACKUP hook hanging; the last state is MASTER.
        for _ in 0..10 {
            tx.send(NotifyMsg::Transition(event(State::Backup)))
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            tx.send(NotifyMsg::Transition(event(State::Master)))
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
        tx.send(NotifyMsg::Transition(event(State::Backup)))
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let sent = std::time::Instant::now();
        tx.send(NotifyMsg::Transition(event(State::Master)))
            .unwrap();
        // Order, not speed: MASTER runs while the hung BACKUP hook still hangs, i.e. before
        // its 20 s timeout could have freed a queue that waited on it.
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.lines().count() > 1 && text.lines().last() == Some("MASTER") {
                break;
            }
            assert!(
                sent.elapsed() < std::time::Duration::from_secs(15),
                "{text}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(counters.superseded.load(Ordering::Relaxed) >= 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
