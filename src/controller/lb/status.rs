//! What the statuses say: each Service's addresses, `Announced` condition and Events (who
//! answers for each address, or why it has none), and each usable pool's usage, routers
//! and masters.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::allocation::Allocation;
use super::grouping::Grouping;
use super::pools::Pools;
use super::services::{Wants, current_condition, current_ingress};
use super::types::{Router, ServiceKey, ServiceOutcome};
use crate::api::{
    CONDITION_ANNOUNCED, LABEL_POOL, PoolRouter, VirtualIP, VirtualIPPoolStatus, VirtualIPStatus,
};

/// Everything decided before the statuses, and what the routers' VirtualIPs say now.
pub(crate) struct Decided<'p, 'a> {
    pub pools: &'p Pools<'a>,
    pub parsed: &'p [(&'a Arc<Service>, Wants)],
    pub allocation: &'p Allocation,
    pub grouping: &'p Grouping,
    pub routers: &'p BTreeMap<String, Router>,
    /// Router name → its VirtualIP (status written by the VirtualIP side).
    pub observed: HashMap<String, &'a VirtualIP>,
    pub now: Timestamp,
}

/// The pools' routers among every VirtualIP, by name.
pub(crate) fn observed_routers(vips: &[Arc<VirtualIP>]) -> HashMap<String, &VirtualIP> {
    vips.iter()
        .filter(|v| v.labels().contains_key(LABEL_POOL))
        .map(|v| (v.name_any(), v.as_ref()))
        .collect()
}

/// Where one of a Service's addresses is answered.
#[derive(Debug, Clone, Default)]
pub(crate) struct Answer {
    pub router: String,
    /// The node its VirtualIP says is master.
    pub master: Option<String>,
    pub vrid: Option<u8>,
    /// A Local router active on no node.
    pub nowhere: bool,
}

impl Decided<'_, '_> {
    fn router_status(&self, router: &str) -> Option<&VirtualIPStatus> {
        self.observed.get(router).and_then(|v| v.status.as_ref())
    }

    fn answer(&self, ip: IpAddr) -> Answer {
        let router = self
            .grouping
            .router_of
            .get(&ip)
            .cloned()
            .unwrap_or_default();
        let st = self.router_status(&router);
        Answer {
            master: st.and_then(|s| s.master.clone()),
            vrid: st.and_then(|s| s.virtual_router_id),
            nowhere: self
                .routers
                .get(&router)
                .and_then(|r| r.spec.active_nodes.as_ref())
                .is_some_and(|a| a.nodes.is_empty()),
            router,
        }
    }

    /// The status of every Service we read, the unreadable ones included.
    pub(super) fn services(
        &self,
        all: &[Arc<Service>],
        out: &mut BTreeMap<ServiceKey, ServiceOutcome>,
    ) {
        let failures = &self.allocation.failures;
        for (svc, w) in self.parsed {
            let key = w.holder.service.clone();
            let ingress: Vec<IpAddr> = self
                .allocation
                .assigned
                .get(&key)
                .map(|got| got.values().copied().collect())
                .unwrap_or_default();
            let said = announcement(&ingress, failures.get(&key), |ip| self.answer(ip));
            let pool_name = |ip: IpAddr| {
                self.pools
                    .pool_of(ip)
                    .map(|i| self.pools.usable[i].name.clone())
                    .unwrap_or_default()
            };
            out.insert(key, self.outcome(svc, ingress, said, pool_name));
        }
        // Services we could not even read.
        for (key, e) in failures {
            if out.contains_key(key) {
                continue;
            }
            let svc = all
                .iter()
                .find(|s| s.namespace().unwrap_or_default() == key.0 && s.name_any() == key.1)
                .expect("failure of a listed Service");
            out.insert(key.clone(), invalid(svc, e, self.now));
        }
    }

    fn outcome(
        &self,
        svc: &Service,
        ingress: Vec<IpAddr>,
        (status, reason, message): (bool, &'static str, String),
        pool_name: impl Fn(IpAddr) -> String,
    ) -> ServiceOutcome {
        let old = current_condition(svc);
        let mut events = Vec::new();
        let cur = current_ingress(svc);
        if ingress != cur && !ingress.is_empty() {
            let from: Vec<String> = ingress
                .iter()
                .filter(|ip| !cur.contains(ip))
                .map(|ip| format!("{ip} from pool {}", pool_name(*ip)))
                .collect();
            if !from.is_empty() {
                events.push((false, "IPAllocated", from.join(", ")));
            }
        }
        let changed = old.is_none_or(|c| {
            c.status != condition_status(status) || c.reason != reason || c.message != message
        });
        if changed {
            events.push((!status && reason != "NoMaster", reason, message.clone()));
        }
        ServiceOutcome {
            ingress,
            condition: Some(condition(svc, old, status, reason, message, self.now)),
            events,
        }
    }

    /// The status of usable pool `i`.
    pub(super) fn pool(&self, i: usize) -> VirtualIPPoolStatus {
        let pool = &self.pools.usable[i];
        let holders = &self.allocation.holders;
        let used = holders
            .iter()
            .filter(|(ip, _)| self.pools.pool_of(**ip) == Some(i))
            .count() as u64;
        let total = pool.total();
        let mut routers = Vec::new();
        let mut masters: BTreeMap<String, u64> = BTreeMap::new();
        for (name, g) in self.grouping.groups.iter().filter(|(_, g)| g.pool == i) {
            let st = self.router_status(name);
            let master = st.and_then(|s| s.master.clone());
            if let Some(m) = &master {
                *masters.entry(m.clone()).or_default() += g.addrs.len() as u64;
            }
            routers.push(PoolRouter {
                name: name.clone(),
                family: g.family.to_string(),
                addresses: g.addrs.len() as u64,
                virtual_router_id: st.and_then(|s| s.virtual_router_id),
                master,
                local: g.local.clone(),
            });
        }
        let summary = routers
            .iter()
            .map(|r| {
                format!(
                    "{}={}({})",
                    r.name,
                    r.master.as_deref().unwrap_or("-"),
                    r.addresses
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let refused = self
            .parsed
            .iter()
            .filter(|(svc, w)| {
                self.allocation.failures.contains_key(&w.holder.service)
                    && (w.pool.as_deref() == Some(&pool.name)
                        || (w.pool.is_none() && pool.obj.spec.auto_assign && pool.allows(svc)))
            })
            .count();
        let services = self
            .allocation
            .assigned
            .values()
            .filter(|got| {
                got.values()
                    .next()
                    .is_some_and(|ip| self.pools.pool_of(*ip) == Some(i))
            })
            .count() as u64;
        VirtualIPPoolStatus {
            total,
            used,
            free: total.saturating_sub(used),
            services,
            summary: (!summary.is_empty()).then_some(summary),
            routers,
            masters: (!masters.is_empty()).then(|| {
                masters
                    .iter()
                    .map(|(n, c)| format!("{n}={c}"))
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            problem: (refused > 0)
                .then(|| format!("{refused} Service(s) not served: see their Events")),
        }
    }
}

/// The `Announced` condition of a Service with these addresses: (status, reason, message).
/// It is true when a master answers for every address; a failure to serve a family the
/// Service has no address of is said after where its addresses are.
fn announcement(
    ingress: &[IpAddr],
    failure: Option<&String>,
    answer: impl Fn(IpAddr) -> Answer,
) -> (bool, &'static str, String) {
    match failure {
        Some(e) if ingress.is_empty() => (false, "AllocationFailed", e.clone()),
        _ if ingress.is_empty() => (
            false,
            "AllocationFailed",
            "no address could be given".to_string(),
        ),
        failure => {
            let mut parts = Vec::new();
            let mut all = true;
            let mut reason = "Announced";
            for ip in ingress {
                let Answer {
                    router,
                    master,
                    vrid,
                    nowhere,
                } = answer(*ip);
                let at = match vrid {
                    Some(id) => format!("VirtualIP {router}, VRID {id}"),
                    None => format!("VirtualIP {router}"),
                };
                match master {
                    _ if nowhere => {
                        all = false;
                        reason = "NoReadyEndpoints";
                        parts.push(format!(
                            "no node has a ready endpoint: {ip} is announced nowhere ({at})"
                        ));
                    }
                    Some(m) => parts.push(format!("{m} answers for {ip} ({at})")),
                    None => {
                        all = false;
                        if reason == "Announced" {
                            reason = "NoMaster";
                        }
                        parts.push(format!("no node answers for {ip} yet ({at})"));
                    }
                }
            }
            if let Some(e) = failure {
                parts.push(format!("not served: {e}"));
            }
            (all, reason, parts.join("; "))
        }
    }
}

/// The outcome of a Service whose request cannot be read: no address, `Invalid`.
fn invalid(svc: &Service, e: &str, now: Timestamp) -> ServiceOutcome {
    let old = current_condition(svc);
    let changed = old.is_none_or(|c| c.message != e || c.status != "False");
    ServiceOutcome {
        ingress: Vec::new(),
        condition: Some(condition(svc, old, false, "Invalid", e.to_string(), now)),
        events: if changed {
            vec![(true, "Invalid", e.to_string())]
        } else {
            Vec::new()
        },
    }
}

fn condition_status(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// Our condition, its transition time kept while its status stays the same.
fn condition(
    svc: &Service,
    old: Option<&Condition>,
    status: bool,
    reason: &str,
    message: String,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: CONDITION_ANNOUNCED.into(),
        status: condition_status(status).into(),
        reason: reason.into(),
        message,
        observed_generation: svc.metadata.generation,
        last_transition_time: match old {
            Some(c) if c.status == condition_status(status) => c.last_transition_time.clone(),
            _ => Time(now),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn answered(master: Option<&str>, nowhere: bool) -> impl Fn(IpAddr) -> Answer {
        let master = master.map(String::from);
        move |_| Answer {
            router: "p-ipv4-0".into(),
            master: master.clone(),
            vrid: Some(7),
            nowhere,
        }
    }

    #[test]
    fn announced_when_a_master_answers_for_every_address() {
        let ips = [ip("198.51.100.1")];
        assert_eq!(
            announcement(&ips, None, answered(Some("n1"), false)),
            (
                true,
                "Announced",
                "n1 answers for 198.51.100.1 (VirtualIP p-ipv4-0, VRID 7)".to_string()
            )
        );
        let (status, reason, message) = announcement(&ips, None, answered(None, false));
        assert!(!status);
        assert_eq!(reason, "NoMaster");
        assert!(message.starts_with("no node answers for 198.51.100.1 yet"));
        let (status, reason, message) = announcement(&ips, None, answered(Some("n1"), true));
        assert!(!status);
        assert_eq!(reason, "NoReadyEndpoints");
        assert!(message.contains("announced nowhere"));
        // A family it could not get is said after the addresses it has.
        let e = "no free IPv6 address".to_string();
        let (status, _, message) = announcement(&ips, Some(&e), answered(Some("n1"), false));
        assert!(status, "what it has is announced");
        assert!(
            message.ends_with("; not served: no free IPv6 address"),
            "{message}"
        );
    }

    #[test]
    fn no_address_is_an_allocation_failure() {
        let e = "pool \"x\" does not exist".to_string();
        assert_eq!(
            announcement(&[], Some(&e), answered(None, false)),
            (false, "AllocationFailed", e.clone())
        );
        assert_eq!(
            announcement(&[], None, answered(None, false)).2,
            "no address could be given"
        );
    }

    #[test]
    fn the_transition_time_stays_while_the_status_does() {
        let then = Timestamp::from_second(100).unwrap();
        let now = Timestamp::from_second(200).unwrap();
        let svc = Service::default();
        let old = condition(&svc, None, false, "NoMaster", "m".into(), then);
        assert_eq!(old.last_transition_time, Time(then));
        let same = condition(
            &svc,
            Some(&old),
            false,
            "NoReadyEndpoints",
            "m2".into(),
            now,
        );
        assert_eq!(same.last_transition_time, Time(then));
        let flipped = condition(&svc, Some(&old), true, "Announced", "m".into(), now);
        assert_eq!(flipped.last_transition_time, Time(now));
        assert_eq!(flipped.status, "True");
    }

    #[test]
    fn an_invalid_service_is_told_once() {
        let now = Timestamp::from_second(1).unwrap();
        let mut svc = Service::default();
        let first = invalid(&svc, "bad", now);
        assert_eq!(first.events, [(true, "Invalid", "bad".to_string())]);
        let c = first.condition.clone().unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "Invalid"));
        svc.status = Some(k8s_openapi::api::core::v1::ServiceStatus {
            conditions: Some(vec![c]),
            ..Default::default()
        });
        assert!(invalid(&svc, "bad", now).events.is_empty());
        assert_eq!(invalid(&svc, "worse", now).events.len(), 1);
    }
}
