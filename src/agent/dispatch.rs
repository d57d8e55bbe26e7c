//! The agent's event loop: each [`AgentEvent`] to what it calls for. It only decides and
//! hands work out (engine commands, spawned setups and reports); nothing here waits on the
//! network beyond a netlink read.

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info};

use super::messages::EngineCmd;
use super::messages::{AgentEvent, DataplaneCmd};
use super::status::{self, AgentStatus, StatusRequest};
use super::{Agent, AgentError, Source, instances, report, source};
use crate::net::netlink::NetEvent;

/// What one event means for the loop itself.
#[derive(Debug)]
pub(super) enum Turn {
    /// Dispatch it.
    Go,
    /// Hand over and stop; `Some`: the agent fails.
    Stop(Option<AgentError>),
}

/// Whether `event` ends the loop. `engine_closed`: the VRRP engine is gone.
pub(super) fn turn(event: &AgentEvent, engine_closed: bool) -> Turn {
    match event {
        AgentEvent::Stop(why) => {
            info!("{why}: handing over");
            Turn::Stop(None)
        }
        AgentEvent::NetLost => {
            error!("the kernel's event stream ended: handing over and stopping");
            Turn::Stop(Some(AgentError::EventsLost))
        }
        AgentEvent::Resync if engine_closed => {
            // The engine is gone (it cannot be, short of a bug): what it bound must not stay
            // bound with nobody advertising it.
            error!("the VRRP engine stopped: releasing every address and stopping");
            Turn::Stop(Some(AgentError::EngineLost))
        }
        _ => Turn::Go,
    }
}

impl Agent {
    /// Runs events until one ends the loop; returns why it failed, if it did.
    pub(super) async fn event_loop(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<AgentEvent>,
    ) -> Option<AgentError> {
        while let Some(event) = events.recv().await {
            match turn(&event, self.engine.is_closed()) {
                Turn::Go => self.dispatch(event).await,
                Turn::Stop(failure) => return failure,
            }
        }
        None
    }

    pub(super) async fn dispatch(&mut self, event: AgentEvent) {
        match event {
            AgentEvent::Reload => {
                if let Source::File(path) = &self.source {
                    info!(config = %path.display(), "SIGHUP: reloading");
                    // Read and validated off this loop (bounded in size, depth and time): a
                    // hostile file never holds the renewals, the status or the next event.
                    self.reloads += 1;
                    let (seq, path, events) = (self.reloads, path.clone(), self.events.clone());
                    tokio::spawn(async move {
                        let read = tokio::task::spawn_blocking(move || {
                            source::load(&path).map_err(|e| e.to_string())
                        });
                        let result = match tokio::time::timeout(source::LOAD_TIMEOUT, read).await {
                            Ok(Ok(r)) => r,
                            Ok(Err(e)) => Err(format!("reading the configuration failed: {e}")),
                            Err(_) => Err(format!(
                                "reading the configuration took more than {:?}: refused",
                                source::LOAD_TIMEOUT
                            )),
                        };
                        let _ = events.send(AgentEvent::Loaded(seq, result));
                    });
                }
            }
            AgentEvent::Loaded(seq, result) => {
                // Only the newest SIGHUP's file counts.
                if seq != self.reloads {
                    return;
                }
                match result {
                    Ok(vips) => {
                        self.file_vips = vips;
                        self.config_error = None;
                        self.apply().await;
                    }
                    Err(e) => {
                        error!(error = %e, "configuration rejected; the running configuration stays");
                        self.config_error = Some(e);
                    }
                }
            }
            AgentEvent::ClusterConfig(u) => {
                if let Source::Cluster { config, epoch, .. } = &mut self.source {
                    if u.relisted {
                        *epoch += 1;
                    }
                    *config = u.config.map(Box::new);
                }
                self.apply().await;
                self.request_report();
            }
            AgentEvent::Net(e) => self.on_net(e).await,
            AgentEvent::Resync => self.resync().await,
            AgentEvent::Prepared {
                key,
                generation,
                result,
            } => {
                if self.generation.get(&key) != Some(&generation) {
                    // Superseded while it was being set up: close it off this loop.
                    if let Ok(p) = result {
                        tokio::task::spawn_blocking(move || drop(p));
                    }
                    return;
                }
                match result {
                    Ok(mut p) => {
                        // A priority or GARP change may have come in during the setup (the
                        // engine had nothing to update then): start with what is wanted now.
                        if let Some(r) = self.running.get(&key) {
                            p.resolved = r.clone();
                        }
                        self.errors.start.remove(&key);
                        self.started.insert(key);
                        let _ = self.engine.send(EngineCmd::Start(p));
                    }
                    Err(reason) => {
                        error!(instance = %key, %reason, "cannot start");
                        self.running.remove(&key);
                        self.generation.remove(&key);
                        self.started.remove(&key);
                        self.errors.start.insert(key, reason);
                        self.request_report();
                    }
                }
                if !self.listeners.is_empty() {
                    self.serve_when_ready();
                }
            }
            AgentEvent::Changed => self.request_report(),
            AgentEvent::Retired { key, vmac } => {
                if let Some((index, name)) = vmac {
                    let in_use = self.running.values().any(|r| {
                        r.virtual_mac
                            && instances::vmac_name(r.config.family(), r.config.vrid) == name
                    });
                    if !in_use {
                        info!(instance = %key, link = %name, "removing the virtual-MAC interface");
                        let nl = self.nl.clone();
                        tokio::spawn(async move { nl.delete_link(index).await.ok() });
                    }
                }
            }
            AgentEvent::Snapshot(seq, snapshot) => {
                if seq > self.snapshot_applied {
                    self.snapshot_applied = seq;
                    self.publish(*snapshot);
                }
            }
            AgentEvent::Status(reply) => {
                let (tx, rx) = oneshot::channel();
                let _ = self.engine.send(EngineCmd::Snapshot(tx));
                let extra = self.status_additions();
                tokio::spawn(async move {
                    if let Ok(mut s) = rx.await {
                        extra(&mut s);
                        let _ = reply.send(s);
                    }
                });
            }
            AgentEvent::Stop(_) | AgentEvent::NetLost => unreachable!("handled by the loop"),
        }
    }

    pub(super) fn serve_when_ready(&mut self) {
        let setting_up = self
            .running
            .keys()
            .any(|k| self.generation.contains_key(k) && !self.started.contains(k));
        if setting_up && matches!(self.source, Source::File(_)) {
            return;
        }
        for (l, metrics_only) in std::mem::take(&mut self.listeners) {
            let (tx, mut rx) = mpsc::channel::<StatusRequest>(16);
            let ev = self.events.clone();
            tokio::spawn(async move {
                while let Some(r) = rx.recv().await {
                    if ev.send(AgentEvent::Status(r)).is_err() {
                        return;
                    }
                }
            });
            tokio::spawn(status::serve(l, tx, metrics_only));
        }
    }

    /// What the loop adds to the engine's snapshot: node, errors, configuration error,
    /// announcement and data plane netlink failures.
    pub(super) fn status_additions(&self) -> impl FnOnce(&mut AgentStatus) + Send + 'static {
        let node = self.node.clone();
        let errors = self.errors.by_key();
        let config_error = self.config_error.clone();
        let announce_errors = self
            .announce_errors
            .load(std::sync::atomic::Ordering::Relaxed);
        let netlink_errors = self
            .netlink_errors
            .load(std::sync::atomic::Ordering::Relaxed);
        let checks = self.supervisor.statuses(true);
        let notify = self.supervisor.notify_counts();
        let virtual_servers = self.virtual_servers.statuses();
        let virtual_server_stats = self.virtual_servers.stats();
        let check_latency = self.virtual_servers.latencies();
        move |s: &mut AgentStatus| {
            s.node = node;
            s.errors = errors;
            s.config_error = config_error;
            s.global.send_errors += announce_errors;
            s.global.netlink_errors += netlink_errors;
            s.checks = checks;
            s.virtual_servers = virtual_servers;
            s.virtual_server_stats = virtual_server_stats;
            s.check_latency = check_latency;
            s.global.notify_ok = notify.0;
            s.global.notify_failed = notify.1;
        }
    }

    /// Cluster mode: a fresh snapshot, then a report (off this loop's path).
    pub(super) fn request_report(&mut self) {
        if !matches!(self.source, Source::Cluster { .. }) {
            return;
        }
        self.snapshot_seq += 1;
        let seq = self.snapshot_seq;
        let (tx, rx) = oneshot::channel();
        let _ = self.engine.send(EngineCmd::Snapshot(tx));
        let events = self.events.clone();
        tokio::spawn(async move {
            if let Ok(s) = rx.await {
                let _ = events.send(AgentEvent::Snapshot(seq, Box::new(s)));
            }
        });
    }

    pub(super) fn publish(&mut self, mut snapshot: AgentStatus) {
        self.status_additions()(&mut snapshot);
        let Source::Cluster {
            config,
            epoch,
            report,
        } = &self.source
        else {
            return;
        };
        let mut r = report::cluster_report(
            &self.node,
            &snapshot,
            &self.errors,
            config.as_ref().and_then(|c| c.metadata.generation),
            *epoch,
        );
        let mut checks = self.supervisor.statuses(false);
        let servers = self.virtual_servers.statuses();
        for (name, entry) in r.entries.iter_mut() {
            entry.checks = checks.remove(name).unwrap_or_default();
            entry.virtual_servers = crate::agent::virtualservers::steady(&servers, name);
        }
        report.send_if_modified(|old| {
            let changed = *old != r;
            *old = r;
            changed
        });
    }

    pub(super) async fn on_net(&mut self, e: NetEvent) {
        match e {
            NetEvent::Link(l) => {
                let _ = self.engine.send(EngineCmd::Link {
                    ifindex: l.index,
                    up: l.up,
                });
                self.supervisor.link(&l);
                // An interface re-created under a name we run on: restart on the new one.
                if self
                    .running
                    .values()
                    .any(|r| r.interface == l.name && r.ifindex != l.index)
                {
                    info!(interface = %l.name, index = l.index, "interface re-created: restarting its instances");
                    self.apply().await;
                }
            }
            NetEvent::LinkGone(index) => {
                self.supervisor.link_gone(index);
                self.sockets.forget_interface(index);
                let _ = self.engine.send(EngineCmd::LinkGone(index));
            }
            e @ (NetEvent::AddressAdded(_) | NetEvent::AddressRemoved(_)) => {
                self.virtual_servers.addresses_changed();
                let _ = self.dataplane.send(DataplaneCmd::Event(e));
            }
        }
    }

    /// The safety net under link events, and a retry for what could not run.
    pub(super) async fn resync(&mut self) {
        if let Ok(links) = self.nl.links().await {
            self.supervisor.links(&links);
            let mut seen = std::collections::BTreeSet::new();
            for r in self.running.values() {
                if seen.insert(r.ifindex) {
                    let up = links.iter().any(|l| l.index == r.ifindex && l.up);
                    let _ = self.engine.send(EngineCmd::Link {
                        ifindex: r.ifindex,
                        up,
                    });
                }
            }
        }
        if !self.errors.resolve.is_empty() || !self.errors.start.is_empty() {
            self.apply().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_end_the_loop_cleanly() {
        assert!(matches!(
            turn(&AgentEvent::Stop("SIGTERM"), false),
            Turn::Stop(None)
        ));
    }

    #[test]
    fn a_lost_event_stream_or_engine_is_a_failure() {
        assert!(matches!(
            turn(&AgentEvent::NetLost, false),
            Turn::Stop(Some(AgentError::EventsLost))
        ));
        assert!(matches!(
            turn(&AgentEvent::Resync, true),
            Turn::Stop(Some(AgentError::EngineLost))
        ));
    }

    #[test]
    fn other_events_are_dispatched() {
        assert!(matches!(turn(&AgentEvent::Resync, false), Turn::Go));
        assert!(matches!(turn(&AgentEvent::Changed, true), Turn::Go));
        assert!(matches!(turn(&AgentEvent::Reload, false), Turn::Go));
    }
}
