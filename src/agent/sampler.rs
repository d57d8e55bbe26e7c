//! The virtual servers' figures, as `ipvsadm --stats`, `--rate` and its connection counts show
//! them: every [`STATS_EVERY`] the counters of the rules in force and the tracking table,
//! read off the event loop (the table in a blocking thread, bounded), made into
//! [`ServiceStats`] by the pure [`crate::director::stats`]. A task of its own beside the
//! director's (`virtualservers.rs`), which publishes what is in force.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::api::Forwarding;
use crate::director::RuleSet;
use crate::director::stats::{self, Connections, Path, RealStats, Sampler, ServiceStats};
use crate::model::virtualserver::{ServiceKey, VirtualServer};
use crate::net::nft;

/// What is in force: the rule set `nft` took and the virtual servers behind it.
pub(super) type Served = Option<(RuleSet, Vec<(String, VirtualServer)>)>;

/// How often the counters and the tracking table are read (IPVS's rate estimator: 2 s).
pub(super) const STATS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// At most this much of the tracking table is read per sample.
const MAX_CONNTRACK_BYTES: u64 = 64 << 20;

/// Every [`STATS_EVERY`]: the counters of the rules in force and the tracking table, read off
/// the event loop (the table in a blocking thread, bounded), as `ipvsadm --stats`, `--rate`
/// and its connection counts show them.
pub(super) async fn sample(
    nft: PathBuf,
    served: Arc<Mutex<Served>>,
    out: Arc<Mutex<Vec<ServiceStats>>>,
) {
    let mut sampler = Sampler::default();
    let start = std::time::Instant::now();
    let mut tick = tokio::time::interval(STATS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let current = served.lock().expect("served").clone();
        let Some((rules, services)) = current.filter(|(_, s)| !s.is_empty()) else {
            out.lock().expect("stats").clear();
            continue;
        };
        let (names, _) = nft::counter_names(&rules);
        // Unreadable: the last sample stays (zeros would read as a reset, then a spike).
        let Ok(json) = nft::list_counters(&nft).await else {
            continue;
        };
        let read = stats::counters(&json);
        let totals = stats::totals(&read, &names);
        let rates = sampler.observe(start.elapsed(), &totals);
        let keys: Vec<_> = services.iter().map(|(_, v)| v.key()).collect();
        let table = tokio::task::spawn_blocking(move || tracked(&keys))
            .await
            .unwrap_or_else(|_| Err("the tracking table reader failed".into()));
        let list = services
            .iter()
            .map(|(vip, vs)| figures(vip, vs, &totals, &rates, &table))
            .collect();
        *out.lock().expect("stats") = list;
    }
}

type Tracked = Result<(BTreeMap<Path, Connections>, bool), String>;

/// The connections of `services` per real server, from `/proc/net/nf_conntrack` (at most
/// [`MAX_CONNTRACK_BYTES`]): (counts, whether it was read whole).
fn tracked(services: &[ServiceKey]) -> Tracked {
    use std::io::Read as _;
    let f = std::fs::File::open("/proc/net/nf_conntrack").map_err(|e| {
        format!("no connection counts: /proc/net/nf_conntrack: {e} (the kernel needs CONFIG_NF_CONNTRACK_PROCFS)")
    })?;
    let mut text = String::new();
    f.take(MAX_CONNTRACK_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| format!("no connection counts: /proc/net/nf_conntrack: {e}"))?;
    let cut = text.len() as u64 >= MAX_CONNTRACK_BYTES;
    if cut {
        // A line cut in the middle is not counted.
        let end = text.rfind('\n').unwrap_or(0);
        text.truncate(end);
    }
    let (conns, whole) = stats::connections(&text, services);
    Ok((stats::count(&conns, services), whole && !cut))
}

/// One virtual server's figures.
fn figures(
    vip: &str,
    vs: &VirtualServer,
    totals: &BTreeMap<Path, stats::Totals>,
    rates: &BTreeMap<Path, stats::Rates>,
    table: &Tracked,
) -> ServiceStats {
    let key = vs.key();
    let dr = vs.forwarding == Forwarding::DirectRouting;
    let servers: Vec<SocketAddr> = vs
        .reals
        .iter()
        .map(|r| r.addr)
        .chain(vs.sorry.filter(|s| !vs.reals.iter().any(|r| r.addr == *s)))
        .collect();
    let real_servers: Vec<RealStats> = servers
        .iter()
        .map(|a| {
            let p = Path {
                service: key,
                real: *a,
            };
            RealStats {
                address: a.to_string(),
                connections: match table {
                    Ok((counts, _)) if !dr => Some(counts.get(&p).copied().unwrap_or_default()),
                    _ => None,
                },
                totals: totals.get(&p).copied().unwrap_or_default(),
                rates: rates.get(&p).copied(),
            }
        })
        .collect();
    let (connections, totals, rates) = stats::sum(&real_servers);
    let note = if dr {
        Some("direct routing: frames are forwarded before connection tracking and rule counters see them".into())
    } else {
        match table {
            Err(e) => Some(e.clone()),
            Ok((_, false)) => Some(format!(
                "connection counts from the first {} MiB of the tracking table only",
                MAX_CONNTRACK_BYTES >> 20
            )),
            Ok(_) => None,
        }
    };
    ServiceStats {
        name: key.to_string(),
        virtual_ip: vip.to_string(),
        scheduler: match vs.scheduler {
            crate::api::Scheduler::RoundRobin => "rr",
            crate::api::Scheduler::WeightedRoundRobin => "wrr",
            crate::api::Scheduler::SourceHash => "sh",
        }
        .into(),
        forwarding: match vs.forwarding {
            Forwarding::Nat => "Masq",
            Forwarding::FullNat => "FullNat",
            Forwarding::DirectRouting => "Route",
        }
        .into(),
        persistent: vs.persistence.map(|d| d.as_secs()),
        connections,
        totals,
        rates,
        real_servers,
        note,
    }
}
