//! The announcer owns every gratuitous ARP / unsolicited NA burst (after MetalLB's
//! `announcer.go`): the first burst when an instance's addresses are bound, the second after
//! `garp.masterDelay`, and the refresh every `garp.masterRefresh` while master. It runs off the
//! VRRP engine: a burst for thousands of addresses never delays an advertisement.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::warn;

use super::messages::{AnnounceCmd, ScheduleId};
use crate::ids::InstanceKey;
use crate::model::spec::GarpConfig;
use crate::net::announce::{FrameSender, Mac, announcement};

struct Schedule {
    /// Whose addresses (none: one address put back, announced once).
    key: Option<InstanceKey>,
    ifindex: u32,
    mac: Mac,
    addresses: Vec<IpAddr>,
    garp: GarpConfig,
    second: Option<Instant>,
    refresh: Option<Instant>,
}

impl Schedule {
    /// Whose addresses, for the logs: `web/ipv4`, or `-` for one address put back.
    fn who(&self) -> String {
        self.key
            .as_ref()
            .map_or_else(|| "-".to_string(), ToString::to_string)
    }
}

/// Runs the announcer until every sender of commands is gone. `errors` counts frames the
/// kernel refused.
pub(crate) async fn run(
    mut cmds: mpsc::UnboundedReceiver<AnnounceCmd>,
    errors: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let mut schedules: HashMap<ScheduleId, Schedule> = HashMap::new();
    // One AF_PACKET socket per interface, kept: closing one costs milliseconds.
    let mut senders: HashMap<u32, FrameSender> = HashMap::new();
    let far = Duration::from_secs(3600);
    loop {
        let next = schedules
            .values()
            .flat_map(|s| [s.second, s.refresh])
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + far);
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => return,
                Some(AnnounceCmd::Start { id, key, ifindex, mac, addresses, garp, burst }) => {
                    let now = Instant::now();
                    let s = Schedule {
                        key: Some(key),
                        ifindex,
                        mac,
                        addresses,
                        garp,
                        second: (burst && !garp.delay.is_zero()).then_some(now + garp.delay),
                        refresh: (!garp.refresh.is_zero()).then_some(now + garp.refresh),
                    };
                    if burst {
                        send_burst(&mut senders, &s, &errors);
                    }
                    schedules.insert(id, s);
                }
                Some(AnnounceCmd::Once { ifindex, mac, address }) => {
                    let s = Schedule {
                        key: None,
                        ifindex,
                        mac,
                        addresses: vec![address],
                        garp: GarpConfig { repeat: 1, ..GarpConfig::default() },
                        second: None,
                        refresh: None,
                    };
                    send_burst(&mut senders, &s, &errors);
                }
                Some(AnnounceCmd::Stop { id }) => {
                    schedules.remove(&id);
                }
                Some(AnnounceCmd::StopInstance { instance }) => {
                    schedules.retain(|id, _| !matches!(id, ScheduleId::Instance(i, _) if *i == instance));
                }
            },
            _ = tokio::time::sleep_until(next) => {
                let now = Instant::now();
                for s in schedules.values_mut() {
                    let mut due = false;
                    if s.second.is_some_and(|t| t <= now) {
                        s.second = None;
                        due = true;
                    }
                    if s.refresh.is_some_and(|t| t <= now) {
                        s.refresh = Some(now + s.garp.refresh);
                        due = true;
                    }
                    if due {
                        send_burst(&mut senders, s, &errors);
                    }
                }
            }
        }
    }
}

/// One burst: `repeat` announcements of every address, interleaved (as keepalived does).
fn send_burst(
    senders: &mut HashMap<u32, FrameSender>,
    s: &Schedule,
    errors: &std::sync::atomic::AtomicU64,
) {
    let sender = match senders.entry(s.ifindex) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => match FrameSender::open(s.ifindex) {
            Ok(f) => v.insert(f),
            Err(e) => {
                warn!(instance = %s.who(), error = %e, "cannot open an AF_PACKET socket: no announcement");
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
        },
    };
    let mut failed = 0u64;
    let mut first_error = None;
    for _ in 0..s.garp.repeat {
        for a in &s.addresses {
            if let Err(e) = sender.send(&announcement(*a, s.mac)) {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        warn!(instance = %s.who(), failed, error = %e, "announcements not sent");
        errors.fetch_add(failed, std::sync::atomic::Ordering::Relaxed);
    }
}
