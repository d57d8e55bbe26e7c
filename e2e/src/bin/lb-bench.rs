//! LoadBalancer Services at scale on the namespace lab: the API stand-in, `kube-vrrp
//! controller`, agents on n1 and n2, one `VirtualIPPool` (IPv6 2001:db8:1::1:0/116, v3 at
//! 100 ms). It measures
//!
//! * a create burst of N Services (kube-rs from the client namespace, 16 in flight): from each
//!   create request to `status.loadBalancer.ingress` set (a watch), and to its address bound on
//!   a node (`ip monitor address` in each node), p50 / p99 / max;
//! * a crash of the master of the most addresses (agent SIGKILLed, link cut): from the cut
//!   until every one of the N addresses answers ICMPv6 echo from the client again (raw socket:
//!   each round pings the addresses not yet answered since the cut). Target: 3 × 100 ms +
//!   100 ms. Where the survivor held the moved addresses ready on a standby link (IPv6
//!   excluded addresses), `crash_to_standby_link_up_ms` is when that link came up; addresses
//!   bound the usual way show in `crash_to_moved_bound_ms`.
//!
//! Prints one JSON line. Usage: lb-bench [--services N]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::Ipv6Addr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use kube_vrrp_e2e::standin::{Api as StandIn, KUBE_VRRP_CRDS, with_client};
use kube_vrrp_e2e::{NeighbourRoom, until_all_answer};
use serde_json::{Value, json};

use kube_vrrp_e2e::stats::Seen;
use kube_vrrp_e2e::stats::{monitor_addresses, summary};

const POOL: &str = "apiVersion: kube-vrrp.io/v1alpha1
kind: VirtualIPPool
metadata:
  name: bench
spec:
  addresses: [2001:db8:1::1:0/116]
  vrrp:
    advertInterval: 100ms
";

/// Times at which a standby link (`kvs-*`) of the node was set up (`ip monitor link`).
fn monitor_standby_up(ns: &str, seen: Arc<Mutex<Vec<Instant>>>) -> std::process::Child {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "ip", "-o", "monitor", "link"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ip monitor");
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            let now = Instant::now();
            let up = line
                .split_whitespace()
                .find(|w| w.starts_with('<'))
                .is_some_and(|f| f.trim_matches(['<', '>']).split(',').any(|x| x == "UP"));
            if line.contains("kvs-") && up && !line.starts_with("Deleted") {
                seen.lock().unwrap().push(now);
            }
        }
    });
    child
}

fn service(i: usize) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": format!("s{i:05}"), "namespace": "default"},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": "kube-vrrp.io/vrrp",
            "ipFamilies": ["IPv6"],
            "ports": [{"port": 80, "protocol": "TCP"}],
        }
    }))
    .unwrap()
}

/// LoadBalancer Services through the API stand-in: time until every Service has its address
/// and the address answers. Prints JSON lines. Needs root.
#[derive(clap::Parser)]
struct Args {
    /// Services, 1 to 4000.
    #[arg(long, default_value_t = 2000)]
    services: usize,
}

fn main() {
    let Args { services: count } = clap::Parser::parse();
    assert!((1..=4000).contains(&count), "the pool has 4,096 addresses");
    let mut api = StandIn::start_lab(2, KUBE_VRRP_CRDS, &[]);
    eprintln!("lab logs: {}", api.lab.dir().display());
    api.add_nodes();
    api.spawn_controller("c1", 9651);
    let agents = [api.spawn_cluster_agent("n1"), api.spawn_cluster_agent("n2")];
    api.wait_registered(&["n1", "n2"]);
    let out = api.apply(POOL, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The client talks to every address. The kernel's IPv6 neighbour table is one for all
    // namespaces (gc_thresh3 1,024 by default): raised for the run, restored on exit.
    let _room = NeighbourRoom::raise(4 * count);
    let bound: Seen = Arc::default();
    let mut monitors = vec![
        monitor_addresses(&api.lab.node("n1").ns.clone(), "inet6", bound.clone()),
        monitor_addresses(&api.lab.node("n2").ns.clone(), "inet6", bound.clone()),
    ];
    let bound_in = bound.clone();
    let burst_started = Instant::now();
    let (sent, ingress) = with_client(&api, move |client| async move {
        let svcs: Api<Service> = Api::namespaced(client, "default");
        let ingress: Arc<Mutex<BTreeMap<String, (Instant, String)>>> = Arc::default();
        let seen = ingress.clone();
        let watch = svcs.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(watcher(watch, Default::default()));
            while let Some(ev) = stream.next().await {
                let now = Instant::now();
                if let Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) = ev
                    && let Some(ip) = s
                        .status
                        .as_ref()
                        .and_then(|st| st.load_balancer.as_ref())
                        .and_then(|l| l.ingress.as_ref())
                        .and_then(|i| i.first())
                        .and_then(|i| i.ip.clone())
                {
                    let name = s.metadata.name.clone().unwrap_or_default();
                    seen.lock().unwrap().entry(name).or_insert((now, ip));
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent: BTreeMap<String, Instant> = futures::stream::iter(0..count)
            .map(|i| {
                let svcs = svcs.clone();
                async move {
                    let t0 = Instant::now();
                    svcs.create(&PostParams::default(), &service(i))
                        .await
                        .expect("create Service");
                    (format!("s{i:05}"), t0)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let done = {
                let ing = ingress.lock().unwrap();
                let b = bound_in.lock().unwrap();
                ing.len() >= count && ing.values().all(|(_, ip)| b.contains_key(ip))
            };
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ingress = ingress.lock().unwrap().clone();
        (sent, ingress)
    });
    let burst = burst_started.elapsed();
    let bound_now = bound.lock().unwrap().clone();
    let mut to_ingress = Vec::new();
    let mut to_bound = Vec::new();
    for (name, t0) in &sent {
        if let Some((t, ip)) = ingress.get(name) {
            to_ingress.push(t.duration_since(*t0).as_secs_f64() * 1000.0);
            if let Some(b) = bound_now.get(ip) {
                to_bound.push(b.saturating_duration_since(*t0).as_secs_f64() * 1000.0);
            }
        }
    }
    // Routers and their masters.
    let routers = api.json(&["get", "virtualips", "-l", "kube-vrrp.io/pool=bench"]);
    let router_addresses = |r: &Value| -> Vec<String> {
        ["addresses", "excludedAddresses"]
            .iter()
            .flat_map(|f| r["spec"][f].as_array().cloned().unwrap_or_default())
            .filter_map(|a| {
                a.as_str()
                    .map(|a| a.split('/').next().unwrap_or_default().to_string())
            })
            .collect()
    };
    let list: Vec<(String, Value, String, usize)> = routers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["status"]["virtualRouterID"].clone(),
                r["status"]["master"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                1 + r["spec"]["excludedAddresses"]
                    .as_array()
                    .map_or(0, Vec::len),
            )
        })
        .collect();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, m, n) in &list {
        *per_node.entry(m.clone()).or_default() += n;
    }
    let victim = per_node
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(m, _)| m.clone())
        .unwrap_or_else(|| "n1".into());
    let addrs: Vec<Ipv6Addr> = ingress
        .values()
        .filter_map(|(_, ip)| ip.parse().ok())
        .collect();
    // Everything answers before the crash.
    let client = api.lab.client.ns.clone();
    let a2 = addrs.clone();
    let before = std::thread::spawn(move || {
        until_all_answer(&client, &a2, Instant::now(), Duration::from_secs(10))
    })
    .join()
    .unwrap();
    // Crash.
    let pid = agents[if victim == "n1" { 0 } else { 1 }];
    let client = api.lab.client.ns.clone();
    let a2 = addrs.clone();
    let survivor = if victim == "n1" { "n2" } else { "n1" };
    let moving: BTreeSet<String> = routers["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"]["master"].as_str() == Some(victim.as_str()))
        .flat_map(router_addresses)
        .collect();
    let rebound: Seen = Arc::default();
    monitors.push(monitor_addresses(
        &api.lab.node(survivor).ns.clone(),
        "inet6",
        rebound.clone(),
    ));
    let standby_up: Arc<Mutex<Vec<Instant>>> = Arc::default();
    monitors.push(monitor_standby_up(
        &api.lab.node(survivor).ns.clone(),
        standby_up.clone(),
    ));
    std::thread::sleep(Duration::from_millis(300));
    let cut = Instant::now();
    api.lab.signal(pid, nix::sys::signal::Signal::SIGKILL);
    api.lab.set_link(api.lab.node(&victim), false);
    let after =
        std::thread::spawn(move || until_all_answer(&client, &a2, cut, Duration::from_secs(10)))
            .join()
            .unwrap();
    for m in &mut monitors {
        let _ = m.kill();
        let _ = m.wait();
    }
    let last = after.values().max().copied();
    let rebound = rebound.lock().unwrap().clone();
    let moved_bound: Vec<f64> = rebound
        .values()
        .map(|t| t.saturating_duration_since(cut).as_secs_f64() * 1000.0)
        .collect();
    let moved_answer: Vec<f64> = after
        .iter()
        .filter(|(a, _)| moving.contains(&a.to_string()))
        .map(|(_, d)| d.as_secs_f64() * 1000.0)
        .collect();
    let on_standby = moving.iter().filter(|a| !rebound.contains_key(*a)).count();
    let standby_up: Vec<f64> = standby_up
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.saturating_duration_since(cut).as_secs_f64() * 1000.0)
        .collect();
    let moved = list
        .iter()
        .filter(|(_, _, m, _)| *m == victim)
        .map(|(_, _, _, n)| n)
        .sum::<usize>();
    if to_bound.len() < count || after.len() < addrs.len() {
        eprintln!("{}", api.logs());
    }
    println!(
        "{}",
        json!({
            "services": count,
            "nodes": 2,
            "advert_interval_ms": 100,
            "burst_seconds": (burst.as_secs_f64() * 100.0).round() / 100.0,
            "create_to_ingress_ms": summary(to_ingress),
            "create_to_bound_ms": summary(to_bound),
            "routers": list.iter().map(|(n, v, m, c)| json!({"name": n, "vrid": v, "master": m, "addresses": c})).collect::<Vec<_>>(),
            "answering_before_crash": before.len(),
            "crashed": victim,
            "addresses_moved": moved,
            "crash_to_last_address_answers_ms": last.map(|d| (d.as_secs_f64() * 10000.0).round() / 10.0),
            "answering_after_crash": after.len(),
            "crash_to_moved_bound_ms": summary(moved_bound),
            "crash_to_standby_link_up_ms": standby_up,
            "moved_bound_on_standby_link": on_standby,
            "crash_to_moved_answers_ms": summary(moved_answer),
            "target_ms": 400,
        })
    );
}
