//! The agent's check supervisor: which checks run for which VirtualIP (started, restarted,
//! stopped as the configuration changes), tracked interfaces from link events, the node's
//! own condition from the controller (cordoned, excluded), and the notify hooks' settings.
//! Everything here ends as trackers the engine keeps per VirtualIP (`EngineCmd::VipTracker`)
//! and as entries of the status.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::messages::{AgentEvent, EngineCmd};
use crate::api::CheckStatus;
use crate::checks::{Policy, Sink, Store, rfc3339};
use crate::hooks::{NotifyCounters, NotifyMsg};
use crate::ids::TrackerName;
use crate::model::spec::ValidatedVirtualIp;
use crate::model::tracking::Notify;
use crate::net::netlink::Link;
use crate::vrrp::priority::Tracker;

/// The tracker the controller's drain sets (weight 0: FAULT, a graceful handover).
pub(crate) const NODE_TRACKER: &str = TrackerName::NODE;

struct EngineSink {
    engine: mpsc::UnboundedSender<EngineCmd>,
    events: mpsc::UnboundedSender<AgentEvent>,
}

impl Sink for EngineSink {
    fn tracker(&self, vip: &str, name: &str, tracker: Option<Tracker>) {
        let _ = self.engine.send(EngineCmd::VipTracker {
            vip: vip.to_string(),
            name: name.to_string(),
            tracker,
        });
    }
    fn changed(&self) {
        let _ = self.events.send(AgentEvent::Changed);
    }
}

/// A tracker the agent itself keeps (interface, node condition), with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Own {
    tracker: Tracker,
    result: String,
    since: SystemTime,
}

pub(crate) struct Supervisor {
    policy: Policy,
    store: Store,
    sink: Arc<dyn Sink>,
    notify: mpsc::UnboundedSender<NotifyMsg>,
    counters: Arc<NotifyCounters>,
    /// VirtualIP → tracked interfaces (name, weight).
    interfaces: BTreeMap<String, Vec<(String, i16)>>,
    /// Interface name → up; absent: no such interface.
    links: HashMap<String, bool>,
    names: HashMap<u32, String>,
    /// VirtualIP → tracker name → state, for trackers the agent sets itself.
    own: BTreeMap<String, BTreeMap<String, Own>>,
    /// VirtualIP → why its notify hooks do not run.
    notify_refused: BTreeMap<String, String>,
}

impl Supervisor {
    pub(crate) fn new(
        policy: Policy,
        engine: mpsc::UnboundedSender<EngineCmd>,
        events: mpsc::UnboundedSender<AgentEvent>,
        notify: mpsc::UnboundedSender<NotifyMsg>,
        counters: Arc<NotifyCounters>,
    ) -> Supervisor {
        Supervisor {
            policy,
            store: Store::default(),
            sink: Arc::new(EngineSink { engine, events }),
            notify,
            counters,
            interfaces: BTreeMap::new(),
            links: HashMap::new(),
            names: HashMap::new(),
            own: BTreeMap::new(),
            notify_refused: BTreeMap::new(),
        }
    }

    /// Makes the checks, trackers and hooks follow the configuration. `kept`: VirtualIPs
    /// whose new configuration was refused (their health stays as it was). `drains`:
    /// VirtualIP → why this node must hand over (cluster mode).
    pub(crate) fn sync(
        &mut self,
        vips: &[ValidatedVirtualIp],
        kept: &[String],
        drains: BTreeMap<String, String>,
        links: &[Link],
    ) {
        self.read_links(links);
        let wanted =
            |name: &str| vips.iter().any(|v| v.name == name) || kept.iter().any(|k| k == name);
        // Checks.
        for v in vips {
            let running = self.store.checks_of(&v.name);
            for c in &v.tracking.checks {
                if !running.contains(c) {
                    info!(virtual_ip = %v.name, check = %c.name, kind = c.kind.label(), "health check (re)started");
                    self.store
                        .start(&v.name, c.clone(), &self.policy, self.sink.clone());
                }
            }
            for r in running {
                if !v.tracking.checks.iter().any(|c| c.name == r.name) {
                    info!(virtual_ip = %v.name, check = %r.name, "health check removed");
                    self.store.remove(&v.name, &r.name, self.sink.as_ref());
                }
            }
        }
        for vip in self.store.vips() {
            if !wanted(&vip) {
                for c in self.store.checks_of(&vip) {
                    self.store.remove(&vip, &c.name, self.sink.as_ref());
                }
            }
        }
        // Tracked interfaces and the node's condition.
        let mut interfaces = BTreeMap::new();
        for v in vips {
            if !v.tracking.interfaces.is_empty() {
                interfaces.insert(v.name.clone(), v.tracking.interfaces.clone());
            }
        }
        for k in kept {
            if let Some(i) = self.interfaces.get(k) {
                interfaces.insert(k.clone(), i.clone());
            }
        }
        self.interfaces = interfaces;
        let mut drained: BTreeMap<String, String> = BTreeMap::new();
        for v in vips {
            if let Some(reason) = drains.get(&v.name) {
                drained.insert(v.name.clone(), reason.clone());
            }
        }
        for k in kept {
            if let Some(o) = self.own.get(k).and_then(|m| m.get(NODE_TRACKER)) {
                drained.insert(k.clone(), o.tracker.reason.clone());
            }
        }
        let mut desired: BTreeMap<String, BTreeMap<String, (Tracker, String)>> = BTreeMap::new();
        for (vip, list) in &self.interfaces {
            for (name, weight) in list {
                desired.entry(vip.clone()).or_default().insert(
                    TrackerName::Interface(name.clone()).to_string(),
                    self.interface_tracker(name, *weight),
                );
            }
        }
        for (vip, reason) in drained {
            desired.entry(vip).or_default().insert(
                NODE_TRACKER.into(),
                (Tracker::new(0, true, &reason), reason),
            );
        }
        self.set_own(desired);
        // Notify hooks.
        let mut hooks: HashMap<String, Notify> = HashMap::new();
        let mut refused = BTreeMap::new();
        for v in vips {
            if let Some(n) = &v.tracking.notify {
                match self.policy.admit_notify(n) {
                    Ok(()) => {
                        hooks.insert(v.name.clone(), n.clone());
                    }
                    Err(why) => {
                        warn!(virtual_ip = %v.name, reason = %why, "notify hooks not run");
                        refused.insert(v.name.clone(), why);
                    }
                }
            }
        }
        self.notify_refused = refused;
        let _ = self.notify.send(NotifyMsg::Config(hooks));
    }

    fn interface_tracker(&self, name: &str, weight: i16) -> (Tracker, String) {
        let (failing, result) = match self.links.get(name) {
            Some(true) => (false, "link up".to_string()),
            Some(false) => (true, "link down".to_string()),
            None => (true, "no such interface".to_string()),
        };
        let reason = format!("interface {name}: {result}");
        (Tracker::new(weight, failing, &reason), result)
    }

    /// Sends what changed of the agent's own trackers.
    fn set_own(&mut self, desired: BTreeMap<String, BTreeMap<String, (Tracker, String)>>) {
        let now = SystemTime::now();
        let mut changed = false;
        for (vip, old) in &self.own {
            for name in old.keys() {
                if !desired.get(vip).is_some_and(|d| d.contains_key(name)) {
                    self.sink.tracker(vip, name, None);
                    changed = true;
                }
            }
        }
        let mut own = BTreeMap::new();
        for (vip, list) in desired {
            let mut m = BTreeMap::new();
            for (name, (tracker, result)) in list {
                let old = self.own.get(&vip).and_then(|o| o.get(&name));
                let since = match old {
                    Some(o) if o.tracker.failing == tracker.failing => o.since,
                    _ => now,
                };
                if old.map(|o| &o.tracker) != Some(&tracker) {
                    if old.is_some() || tracker.failing {
                        info!(virtual_ip = %vip, tracker = %name, failing = tracker.failing, reason = %tracker.reason, "tracker changed");
                    }
                    self.sink.tracker(&vip, &name, Some(tracker.clone()));
                    changed = true;
                }
                m.insert(
                    name,
                    Own {
                        tracker,
                        result,
                        since,
                    },
                );
            }
            own.insert(vip, m);
        }
        self.own = own;
        if changed {
            self.sink.changed();
        }
    }

    fn refresh_interfaces(&mut self) {
        let mut desired: BTreeMap<String, BTreeMap<String, (Tracker, String)>> = BTreeMap::new();
        for (vip, m) in &self.own {
            for (name, o) in m {
                let entry = match name.strip_prefix(TrackerName::INTERFACE_PREFIX) {
                    Some(iface) => {
                        let weight = o.tracker.weight;
                        self.interface_tracker(iface, weight)
                    }
                    None => (o.tracker.clone(), o.result.clone()),
                };
                desired
                    .entry(vip.clone())
                    .or_default()
                    .insert(name.clone(), entry);
            }
        }
        self.set_own(desired);
    }

    fn read_links(&mut self, links: &[Link]) {
        self.links = links.iter().map(|l| (l.name.clone(), l.up)).collect();
        self.names = links.iter().map(|l| (l.index, l.name.clone())).collect();
    }

    /// A full read of the links (the periodic safety net).
    pub(crate) fn links(&mut self, links: &[Link]) {
        self.read_links(links);
        self.refresh_interfaces();
    }

    /// A link changed.
    pub(crate) fn link(&mut self, l: &Link) {
        if let Some(old) = self.names.insert(l.index, l.name.clone())
            && old != l.name
        {
            self.links.remove(&old);
        }
        self.links.insert(l.name.clone(), l.up);
        if self
            .interfaces
            .values()
            .flatten()
            .any(|(n, _)| *n == l.name)
        {
            self.refresh_interfaces();
        }
    }

    /// A link is gone.
    pub(crate) fn link_gone(&mut self, index: u32) {
        if let Some(name) = self.names.remove(&index) {
            self.links.remove(&name);
            if self.interfaces.values().flatten().any(|(n, _)| *n == name) {
                self.refresh_interfaces();
            }
        }
    }

    /// Per VirtualIP: its checks (`live`: each one's latest result; else the report's steadier
    /// view), tracked interfaces, the node's condition, refused notify hooks.
    pub(crate) fn statuses(&self, live: bool) -> BTreeMap<String, Vec<CheckStatus>> {
        let mut out: BTreeMap<String, Vec<CheckStatus>> =
            self.store.statuses(live).into_iter().collect();
        for (vip, m) in &self.own {
            for (name, o) in m {
                let t = &o.tracker;
                out.entry(vip.clone()).or_default().push(CheckStatus {
                    name: name.clone(),
                    healthy: !t.failing,
                    result: Some(o.result.clone()),
                    consecutive: 0,
                    contribution: if t.fault() { 0 } else { t.contribution() },
                    fault: t.fault(),
                    last_transition_time: Some(rfc3339(o.since)),
                });
            }
        }
        for (vip, why) in &self.notify_refused {
            out.entry(vip.clone()).or_default().push(CheckStatus {
                name: TrackerName::Notify.to_string(),
                healthy: false,
                result: Some(why.clone()),
                consecutive: 0,
                contribution: 0,
                fault: false,
                last_transition_time: None,
            });
        }
        out
    }

    /// Notify commands run: (ok, failed).
    pub(crate) fn notify_counts(&self) -> (u64, u64) {
        (
            self.counters.ok.load(Ordering::Relaxed),
            self.counters.failed.load(Ordering::Relaxed),
        )
    }
}
