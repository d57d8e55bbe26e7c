//! Notify hooks (keepalived `notify_master|backup|fault|stop` and `notify`): run on each
//! transition, off the VRRP engine, one at a time per VirtualIP in the order the transitions
//! happened, each with its timeout; outcomes logged and counted.
//!
//! As in keepalived, the state's own command runs as configured, and the generic one (`any`)
//! gets four arguments appended: `INSTANCE <name> <MASTER|BACKUP|FAULT|STOP> <priority>`.
//! Every command also sees `KUBE_VRRP_INSTANCE`, `KUBE_VRRP_FAMILY`, `KUBE_VRRP_STATE` and
//! `KUBE_VRRP_PRIORITY` in its environment.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::checks::exec::{self, RunAs};
use crate::model::tracking::Notify;
use crate::vrrp::State;

/// A transition, as the engine reports it.
#[derive(Debug, Clone)]
pub struct HookEvent {
    /// The VirtualIP's name.
    pub vip: String,
    /// The family's key, [`Family::as_key`](crate::ids::Family::as_key): `ipv4` / `ipv6`.
    pub family: &'static str,
    /// `None`: the instance stopped.
    pub to: Option<State>,
    pub priority: u8,
}

pub enum NotifyMsg {
    /// The hooks of every VirtualIP that has some (and is allowed to).
    Config(HashMap<String, Notify>),
    Transition(HookEvent),
}

#[derive(Debug, Default)]
pub struct NotifyCounters {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
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
pub fn commands(n: &Notify, t: &HookEvent) -> Vec<Vec<String>> {
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
pub async fn run(
    mut rx: mpsc::UnboundedReceiver<NotifyMsg>,
    run_as: RunAs,
    counters: Arc<NotifyCounters>,
) {
    let mut hooks: HashMap<String, Notify> = HashMap::new();
    let mut queues: HashMap<String, mpsc::UnboundedSender<(Notify, HookEvent)>> = HashMap::new();
    while let Some(msg) = rx.recv().await {
        match msg {
            NotifyMsg::Config(h) => {
                queues.retain(|vip, _| h.contains_key(vip));
                hooks = h;
            }
            NotifyMsg::Transition(t) => {
                let Some(n) = hooks.get(&t.vip) else { continue };
                let q = queues.entry(t.vip.clone()).or_insert_with(|| {
                    let (tx, mut rx) = mpsc::unbounded_channel::<(Notify, HookEvent)>();
                    let counters = counters.clone();
                    tokio::spawn(async move {
                        while let Some((n, t)) = rx.recv().await {
                            for argv in commands(&n, &t) {
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
                    });
                    tx
                });
                let _ = q.send((n.clone(), t));
            }
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
}
