//! Control-plane latency benchmark: `kube-vrrp controller` and two cluster-mode agents on the
//! namespace lab, the API stand-in on the management segment. For each of N VirtualIPs (v3,
//! 100 ms adverts, n1 priority 200, n2 100, VRID allocated by the controller) it measures
//!
//! * apply → the address is bound on the master (n1), seen by `ip monitor address` in n1's
//!   namespace, and
//! * apply → `status.master` is set, seen by a kube-rs watch from the client namespace,
//!
//! from the moment the create request is sent. `sequential` creates one object at a time and
//! waits for both; `burst` creates them all back to back. Both include one VRRP
//! Master_Down_Interval (a new router waits 3 × 100 ms + skew for a master before taking over:
//! 321.9 ms at priority 200), which is printed as the floor. Prints one JSON object per mode.
//!
//! Usage: apply-bench [--count N] [--mode sequential|burst|both]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use kube_vrrp_e2e::standin::{Api as StandIn, KUBE_VRRP_CRDS, with_client};
use serde_json::{Value, json};

use kube_vrrp_e2e::stats::Seen;
use kube_vrrp_e2e::stats::{monitor_addresses, summary};

/// RFC 5798 Master_Down_Interval for n1: 3 × 100 ms + (256 − 200) × 100 ms / 256.
const MASTER_DOWN_MS: f64 = 3.0 * 100.0 + (256.0 - 200.0) * 100.0 / 256.0;

fn address(i: usize) -> String {
    format!("198.51.100.{}", 101 + i)
}

fn object(i: usize) -> Value {
    json!({
        "apiVersion": "kube-vrrp.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": format!("bench{i}")},
        "spec": {
            "addresses": [format!("{}/24", address(i))],
            "advertInterval": "100ms",
            "priorities": [{"node": "n1", "priority": 200}, {"node": "n2", "priority": 100}],
        }
    })
}

fn run(count: usize, mode: &str) -> Value {
    // STANDIN_LOG=1 logs every request with its time (for finding where latency goes).
    let log = std::env::var("STANDIN_LOG").unwrap_or_default();
    let env: Vec<(&str, &str)> = if log.is_empty() {
        vec![]
    } else {
        vec![("STANDIN_LOG", log.as_str())]
    };
    let mut api = StandIn::start_lab(2, KUBE_VRRP_CRDS, &env);
    eprintln!("lab logs: {}", api.lab.dir().display());
    api.add_nodes();
    api.spawn_controller("c1", 9651);
    api.spawn_cluster_agent("n1");
    api.spawn_cluster_agent("n2");
    api.wait_registered(&["n1", "n2"]);
    let bound: Seen = Arc::default();
    let mut monitor = monitor_addresses(&api.lab.node("n1").ns.clone(), "inet", bound.clone());
    let burst = mode == "burst";
    let bound_in = bound.clone();
    let (sent, mastered) = with_client(&api, move |client| async move {
        let vips: Api<kube::api::DynamicObject> = Api::all_with(
            client,
            &kube::api::ApiResource {
                group: "kube-vrrp.io".into(),
                version: "v1alpha1".into(),
                api_version: "kube-vrrp.io/v1alpha1".into(),
                kind: "VirtualIP".into(),
                plural: "virtualips".into(),
            },
        );
        let mastered: Seen = Arc::default();
        let m = mastered.clone();
        let watch = vips.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(watcher(watch, Default::default()));
            while let Some(ev) = stream.next().await {
                let now = Instant::now();
                if let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) = ev
                    && o.data["status"]["master"].is_string()
                {
                    let name = o.metadata.name.clone().unwrap_or_default();
                    m.lock().unwrap().entry(name).or_insert(now);
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut sent = BTreeMap::new();
        for i in 0..count {
            let obj: kube::api::DynamicObject = serde_json::from_value(object(i)).unwrap();
            let t0 = Instant::now();
            vips.create(&PostParams::default(), &obj)
                .await
                .expect("create VirtualIP");
            sent.insert(i, t0);
            if burst {
                continue;
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline
                && !(bound_in.lock().unwrap().contains_key(&address(i))
                    && mastered.lock().unwrap().contains_key(&format!("bench{i}")))
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline
            && (bound_in.lock().unwrap().len() < count || mastered.lock().unwrap().len() < count)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mastered = mastered.lock().unwrap().clone();
        (sent, mastered)
    });
    let _ = monitor.kill();
    let _ = monitor.wait();
    let bound = bound.lock().unwrap().clone();
    let mut to_bound = Vec::new();
    let mut to_master = Vec::new();
    for (i, t0) in &sent {
        if let Some(t) = bound.get(&address(*i)) {
            to_bound.push(t.duration_since(*t0).as_secs_f64() * 1000.0);
        }
        if let Some(t) = mastered.get(&format!("bench{i}")) {
            to_master.push(t.duration_since(*t0).as_secs_f64() * 1000.0);
        }
    }
    let missing = (count - to_bound.len(), count - to_master.len());
    if missing != (0, 0) {
        eprintln!("{}", api.logs());
    }
    json!({
        "mode": mode,
        "virtualips": count,
        "advert_interval_ms": 100,
        "floor_master_down_interval_ms": MASTER_DOWN_MS,
        "apply_to_bound_on_master_ms": summary(to_bound),
        "apply_to_status_master_ms": summary(to_master),
        "not_bound": missing.0,
        "no_status_master": missing.1,
    })
}

/// Applies VirtualIPs through the API stand-in and times each until its address answers
/// (kube-vrrp only: keepalived has no API). Prints JSON lines. Needs root.
#[derive(clap::Parser)]
struct Args {
    /// VirtualIPs to apply, 1 to 150.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// sequential, burst or both.
    #[arg(long, default_value = "both")]
    mode: String,
}

fn main() {
    let Args { count, mode } = clap::Parser::parse();
    assert!(
        (1..=150).contains(&count),
        "addresses 198.51.100.101.. must stay in the segment: --count 1 to 150"
    );
    let modes: Vec<&str> = match mode.as_str() {
        "both" => vec!["sequential", "burst"],
        m => vec![m],
    };
    for m in modes {
        println!("{}", run(count, m));
    }
}
