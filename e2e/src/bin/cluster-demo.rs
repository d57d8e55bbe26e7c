//! The operator in a namespace lab, no cluster needed: the Kubernetes API stand-in, `kube-vrrp
//! controller`, two cluster-mode agents (n1, n2) and kubectl. Applies `config/web-vip.yaml` (or
//! the file given), shows `kubectl get virtualips`, crashes the master (agent killed, link cut)
//! while a client probes the VIP every 10 ms, and shows what the status and the Events say.
//! Needs root, python3 with PyYAML and cel-python, and kubectl (`bash .ci/deps`).
//!
//! Usage: cluster-demo [VIRTUALIP.yaml]

use std::time::{Duration, Instant};

use kube_vrrp_e2e::standin::{Api, KUBE_VRRP_CRDS};
use kube_vrrp_e2e::{Prober, wait_for};
use nix::sys::signal::Signal;
use serde_json::json;

const DEFAULT: &str = include_str!("../../../config/web-vip.yaml");
const VIP: &str = "198.51.100.50";

fn master(api: &Api) -> Option<String> {
    api.get_json("virtualip", "web")?["status"]["master"]
        .as_str()
        .map(String::from)
}

fn show(api: &Api, title: &str) {
    println!("\n$ kubectl get virtualips -o wide    # {title}");
    print!("{}", api.ok(&["get", "virtualips", "-o", "wide"]));
    if let Some(v) = api.get_json("virtualip", "web") {
        // Each entry is its agent's last report; the controller's summary says which agents
        // it no longer hears (a dead agent cannot correct its own entry).
        let summary = v["status"]["summary"].as_str().unwrap_or_default();
        for n in v["status"]["nodes"].as_array().into_iter().flatten() {
            let node = n["node"].as_str().unwrap_or("?");
            let said = format!(
                "{} at priority {} ({})",
                n["state"].as_str().unwrap_or("?"),
                n["effectivePriority"],
                n["reason"].as_str().unwrap_or("")
            );
            if summary.split(',').any(|e| e == format!("{node}=Silent")) {
                println!("  {node}: silent: its agent last said {said}");
            } else {
                println!("  {node}: {said}");
            }
        }
        for c in v["status"]["conditions"].as_array().into_iter().flatten() {
            println!(
                "  condition {}={} {}: {}",
                c["type"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?"),
                c["reason"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            );
        }
    }
}

/// The operator in a namespace lab, no cluster needed: the API stand-in, the controller, two
/// cluster-mode agents and kubectl. Applies a VirtualIP (default: config/web-vip.yaml), crashes
/// the master while a client probes the address, and shows what the status and Events say.
/// Needs root, python3 with PyYAML and cel-python, and kubectl (`bash .ci/deps`).
#[derive(clap::Parser)]
struct Args {
    /// A VirtualIP file for the cluster, checked first as `kube-vrrp check --cluster` does.
    config: Option<std::path::PathBuf>,
}

fn main() {
    let args: Args = clap::Parser::parse();
    let yaml = match &args.config {
        Some(p) => {
            let yaml = std::fs::read_to_string(p).unwrap_or_else(|e| {
                eprintln!("cluster-demo: cannot read {}: {e}", p.display());
                std::process::exit(1)
            });
            if let Err(e) = kube_vrrp_e2e::check_file(p, true) {
                eprintln!("cluster-demo: {e}");
                std::process::exit(1);
            }
            yaml
        }
        None => DEFAULT.to_string(),
    };
    let mut api = Api::start_lab(2, KUBE_VRRP_CRDS, &[]);
    api.add_nodes();
    api.spawn_controller("controller-0", 9651);
    let agents = [api.spawn_cluster_agent("n1"), api.spawn_cluster_agent("n2")];
    println!(
        "lab {}: API stand-in at 203.0.113.1:6443, controller in the client namespace, agents on n1 (198.51.100.11) and n2 (198.51.100.12)",
        api.lab.prefix
    );
    api.wait_registered(&["n1", "n2"]);

    println!("\n$ kubectl apply -f virtualip.yaml");
    let out = api.apply(&yaml, &[]);
    print!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
    let applied = Instant::now();
    let Some(bound) = wait_for(Duration::from_secs(15), || api.lab.holders(VIP).len() == 1) else {
        eprintln!("{VIP} not bound\n{}", api.logs());
        std::process::exit(1);
    };
    wait_for(Duration::from_secs(10), || master(&api).is_some());
    let first = master(&api).unwrap_or_default();
    show(
        &api,
        &format!(
            "{VIP} bound on {:?} {} ms after the apply",
            api.lab.holders(VIP),
            bound.as_millis()
        ),
    );

    let (victim, survivor) = if first == "n2" {
        ("n2", "n1")
    } else {
        ("n1", "n2")
    };
    let ns = api.lab.client.ns.clone();
    let prober = Prober::start(&ns, VIP.parse().unwrap(), Duration::from_millis(10));
    std::thread::sleep(Duration::from_millis(300));
    println!("\ncrashing {victim}: agent killed, link cut");
    let crash = Instant::now();
    api.lab
        .signal(agents[usize::from(victim == "n2")], Signal::SIGKILL);
    api.lab.set_link(api.lab.node(victim), false);
    let survivor_ns = api.lab.node(survivor).ns.clone();
    let took = wait_for(Duration::from_secs(10), || api.lab.holds(&survivor_ns, VIP));
    std::thread::sleep(Duration::from_millis(300));
    let outage = prober.stop();
    let reported = wait_for(Duration::from_secs(20), || {
        master(&api).as_deref() == Some(survivor)
    })
    .map(|_| crash.elapsed());
    show(&api, &format!("after the crash of {victim}"));
    // The crashed agent's last word ("Master") stands until three heartbeats are missed.
    let silent = wait_for(Duration::from_secs(20), || {
        api.get_json("virtualip", "web").is_some_and(|v| {
            v["status"]["phase"] == "Degraded"
                && v["status"]["conditions"].to_string().contains("silent")
        })
    });
    if silent.is_some() {
        show(&api, &format!("{victim}'s agent found silent"));
    }
    println!("\n$ kubectl get events   # on VirtualIP web");
    let events = api.json(&["get", "events.events.k8s.io", "-n", "default"]);
    for e in events["items"].as_array().into_iter().flatten() {
        println!(
            "  {:<8} {:<14} {}",
            e["type"].as_str().unwrap_or(""),
            e["reason"].as_str().unwrap_or(""),
            e["note"].as_str().unwrap_or("")
        );
    }
    println!(
        "\n{survivor} took over {VIP} {} ms after the crash; the client lost {} of {} probes ({:.0} ms); status.master said {survivor} {} ms after the crash",
        took.map_or(-1, |d| d.as_millis() as i64),
        outage.lost,
        outage.sent,
        outage.outage.as_secs_f64() * 1000.0,
        reported.map_or(-1, |d| d.as_millis() as i64)
    );
    println!(
        "{}",
        json!({
            "apply_to_bound_ms": bound.as_millis() as u64,
            "first_master": first,
            "crashed": victim,
            "takeover_ms": took.map(|d| d.as_millis() as u64),
            "client_outage_ms": (outage.outage.as_secs_f64() * 10000.0).round() / 10.0,
            "lost_probes": outage.lost,
            "status_master_after_crash_ms": reported.map(|d| d.as_millis() as u64),
            "since_apply_s": applied.elapsed().as_secs_f64(),
        })
    );
    if took.is_none() || reported.is_none() {
        std::process::exit(1);
    }
}
