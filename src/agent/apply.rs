//! Applying a new configuration plan: the source's VirtualIPs are validated and resolved
//! against the node's links, what cannot run keeps its last good configuration, and the
//! engine is told only what changed (stop, update, or a setup then start).

use std::collections::BTreeMap;

use tracing::{error, info, warn};

use super::instances::{self, Step};
use super::messages::AgentEvent;
use super::messages::EngineCmd;
use super::virtualservers;
use super::{Agent, Source};
use crate::ids::InstanceKey;
use crate::model::resolved::{NodePlan, ResolvedInstance, resolve_all};
use crate::model::spec::{ValidatedVirtualIp, VridRule};
use crate::vrrp::Family;

/// Keeps what ran for what cannot run now: an instance that does not resolve here, and every
/// instance of a VirtualIP whose configuration is invalid (`invalid`: their names). Returns
/// the resolve errors: instance key → (reason, whether its last good configuration runs).
pub(super) fn keep_last_good<'a>(
    instances: &mut BTreeMap<InstanceKey, ResolvedInstance>,
    resolve_errors: Vec<(String, Family, String)>,
    running: &BTreeMap<InstanceKey, ResolvedInstance>,
    invalid: impl Iterator<Item = &'a String>,
) -> BTreeMap<InstanceKey, (String, bool)> {
    let mut out = BTreeMap::new();
    for (name, family, reason) in resolve_errors {
        let key = InstanceKey::new(name, family);
        let last_good = running.get(&key).cloned();
        let kept = last_good.is_some();
        if let Some(r) = last_good {
            instances.insert(key.clone(), r);
        }
        out.insert(key, (reason, kept));
    }
    for name in invalid {
        for (k, r) in running {
            if &r.name == name {
                instances.insert(k.clone(), r.clone());
            }
        }
    }
    out
}

impl Agent {
    /// The VirtualIPs of the current source, validated.
    pub(super) fn desired(&mut self) -> Vec<ValidatedVirtualIp> {
        match &self.source {
            Source::File(_) => self.file_vips.clone(),
            Source::Cluster { config, .. } => {
                self.errors.invalid.clear();
                let mut out = Vec::new();
                for e in config.iter().flat_map(|c| c.spec.virtual_ips.iter()) {
                    match crate::model::spec::validate(
                        e.name.clone(),
                        e.spec.clone(),
                        VridRule::Required,
                    ) {
                        Ok(v) => out.push(v),
                        Err((field, reason)) => {
                            warn!(virtual_ip = %e.name, %field, %reason, "invalid configuration");
                            self.errors.invalid.insert(
                                e.name.clone(),
                                (e.spec.default_priority, format!("{field}: {reason}")),
                            );
                        }
                    }
                }
                out
            }
        }
    }

    /// Makes the engine run what the source says, touching only what changed. A VirtualIP
    /// (or one family of it) that cannot run here any more keeps its last good
    /// configuration running, and says why.
    pub(super) async fn apply(&mut self) {
        let vips = self.desired();
        let (links, addrs) = match (self.nl.links().await, self.nl.addresses(None).await) {
            (Ok(l), Ok(a)) => (l, a),
            (Err(e), _) | (_, Err(e)) => {
                error!(error = %e, "cannot read interfaces; configuration not applied");
                return;
            }
        };
        let NodePlan {
            mut instances,
            errors,
        } = resolve_all(&vips, &self.node, &links, &addrs);
        // The lifetime addresses are bound with, from what may be bound here: binds carry it
        // from the start, and no round of renewals follows (`dataplane/renew.rs`).
        let configured = instances.values().map(|r| r.config.addresses.len()).sum();
        self.nl
            .lifetime()
            .set(crate::model::host::renewal(configured).1);
        self.errors.resolve = keep_last_good(
            &mut instances,
            errors,
            &self.running,
            self.errors.invalid.keys(),
        );
        // Retried every round: logged when it starts or changes, and when it clears.
        for (key, (reason, kept)) in &self.errors.resolve {
            if self.repeats.is_news(&key.to_string(), reason) {
                warn!(instance = %key, %reason, kept_last_good = kept, "cannot run here (logged again only if the reason changes)");
            }
        }
        let current: Vec<String> = self.errors.resolve.keys().map(|k| k.to_string()).collect();
        for (key, rounds) in self.repeats.cleared(current.iter().map(String::as_str)) {
            info!(instance = %key, rounds, "runs here again");
        }
        self.errors.priorities = vips
            .iter()
            .map(|v| (v.name.clone(), v.priority_of(&self.node)))
            .collect();
        for step in instances::diff(&self.running, &instances) {
            match step {
                Step::Stop(key) => {
                    self.running.remove(&key);
                    self.generation.remove(&key);
                    self.started.remove(&key);
                    let _ = self.engine.send(EngineCmd::Stop(key.clone()));
                }
                Step::Update(r) => {
                    let _ = self.engine.send(EngineCmd::Update(r.clone()));
                    self.running.insert(r.key.clone(), r);
                }
                Step::Start(r) => {
                    // Resolution found the link by this index in the same read.
                    match links.iter().find(|l| l.index == r.ifindex) {
                        Some(base) => self.start(r, base.clone()),
                        None => {
                            self.errors.start.insert(
                                r.key.clone(),
                                format!("no interface with index {}", r.ifindex),
                            );
                        }
                    }
                }
            }
        }
        self.errors
            .start
            .retain(|k, _| instances.contains_key(k) && !self.running.contains_key(k));
        // Health for what runs: a VirtualIP kept on its last good configuration keeps its
        // checks as they were.
        let kept: Vec<String> = self.errors.invalid.keys().cloned().collect();
        let drains = match &self.source {
            Source::Cluster { config, .. } => config
                .iter()
                .flat_map(|c| c.spec.virtual_ips.iter())
                .filter_map(|e| Some((e.name.clone(), e.drain.clone()?)))
                .collect(),
            Source::File(_) => BTreeMap::new(),
        };
        self.supervisor.sync(&vips, &kept, drains, &links);
        // Direct routing sends frames out of the interface each VirtualIP's family runs on.
        // Frames for the address come to the MAC it answers with: the virtual MAC
        // (00:00:5e:00:01|02:VRID) or the interface's own.
        let on: BTreeMap<InstanceKey, virtualservers::OnLink> = instances
            .values()
            .filter_map(|r| {
                let mac = links.iter().find(|l| l.index == r.ifindex)?.mac?;
                let v4 = r.config.family() == crate::vrrp::Family::V4;
                let answers = if r.virtual_mac {
                    [0, 0, 0x5e, 0, if v4 { 1 } else { 2 }, r.config.vrid]
                } else {
                    mac
                };
                Some((
                    r.key.clone(),
                    virtualservers::OnLink {
                        interface: r.interface.clone(),
                        mac,
                        answers,
                    },
                ))
            })
            .collect();
        self.virtual_servers.sync(&vips, on);
        self.request_report();
    }

    pub(super) fn start(&mut self, r: ResolvedInstance, base: crate::net::netlink::Link) {
        let generation = self.next_generation;
        self.next_generation += 1;
        self.generation.insert(r.key.clone(), generation);
        self.started.remove(&r.key);
        self.running.insert(r.key.clone(), r.clone());
        let (nl, sockets, events) = (self.nl.clone(), self.sockets.clone(), self.events.clone());
        tokio::spawn(async move {
            let key = r.key.clone();
            let result = instances::prepare(&nl, &sockets, r, base)
                .await
                .map(Box::new)
                .map_err(|e| e.to_string());
            let _ = events.send(AgentEvent::Prepared {
                key,
                generation,
                result,
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::GarpConfig;
    use crate::vrrp::InstanceConfig;

    fn inst(key: &str) -> ResolvedInstance {
        let key: InstanceKey = key.parse().unwrap();
        ResolvedInstance {
            name: key.name().into(),
            key,
            interface: "eth0".into(),
            ifindex: 2,
            config: InstanceConfig::new(
                1,
                "198.51.100.11".parse().unwrap(),
                vec!["198.51.100.50/24".parse().unwrap()],
            ),
            virtual_mac: false,
            garp: GarpConfig::default(),
            away: Vec::new(),
        }
    }

    fn map(v: &[ResolvedInstance]) -> BTreeMap<InstanceKey, ResolvedInstance> {
        v.iter().map(|r| (r.key.clone(), r.clone())).collect()
    }

    #[test]
    fn an_instance_that_no_longer_resolves_keeps_its_last_good_configuration() {
        let running = map(&[inst("a/ipv4")]);
        let mut plan = BTreeMap::new();
        let errors = keep_last_good(
            &mut plan,
            vec![
                ("a".into(), Family::V4, "no interface".into()),
                ("b".into(), Family::V6, "no address".into()),
            ],
            &running,
            std::iter::empty(),
        );
        assert_eq!(plan, running);
        assert_eq!(
            errors[&"a/ipv4".parse::<InstanceKey>().unwrap()],
            ("no interface".to_string(), true)
        );
        assert_eq!(
            errors[&"b/ipv6".parse::<InstanceKey>().unwrap()],
            ("no address".to_string(), false)
        );
    }

    #[test]
    fn an_invalid_virtual_ip_keeps_every_instance_that_ran() {
        let running = map(&[inst("a/ipv4"), inst("a/ipv6"), inst("c/ipv4")]);
        let mut plan = BTreeMap::new();
        let invalid = ["a".to_string()];
        let errors = keep_last_good(&mut plan, Vec::new(), &running, invalid.iter());
        assert!(errors.is_empty());
        assert_eq!(plan, map(&[inst("a/ipv4"), inst("a/ipv6")]));
    }
}
