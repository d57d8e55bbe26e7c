//! The README's run command: two kube-vrrp agents in a namespace lab on a sample config (the
//! embedded `config/web-vip.yaml`, or the file given), show who holds the VIP, crash the master
//! (agent killed and its link cut) and print the measured takeover. Needs root.
//!
//! Usage: lab-demo [CONFIG.yaml]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kube_vrrp_e2e::{AGENT_STATUS, Lab, Prober, kube_vrrp_binary, wait_for};
use nix::sys::signal::Signal;

const DEFAULT_CONFIG: &str = include_str!("../../../config/web-vip.yaml");
const VIP: &str = "198.51.100.50";

fn main() {
    let yaml = match std::env::args().nth(1) {
        Some(path) => {
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
        }
        None => DEFAULT_CONFIG.to_string(),
    };
    let bin = kube_vrrp_binary();
    let mut lab = Lab::new(2);
    let cfg = lab.dir().join("virtualip.yaml");
    std::fs::write(&cfg, &yaml).unwrap();
    let cfg = cfg.display().to_string();
    println!(
        "lab {}: nodes n1 (198.51.100.11), n2 (198.51.100.12), client (198.51.100.100)",
        lab.prefix
    );
    let status: SocketAddr = AGENT_STATUS.parse().unwrap();
    let mut pids = Vec::new();
    for node in ["n1", "n2"] {
        pids.push(lab.spawn_agent_with_file(&bin, node, &cfg, true));
    }
    if wait_for(Duration::from_secs(10), || lab.holders(VIP).len() == 1).is_none() {
        eprintln!("no single holder of {VIP}: {:?}", lab.holders(VIP));
        std::process::exit(1);
    }
    let master = lab.holders(VIP)[0].clone();
    let backup = if master == "n1" { "n2" } else { "n1" }.to_string();
    for node in ["n1", "n2"] {
        println!("\n$ ip -br addr   # on {node}");
        print!(
            "{}",
            String::from_utf8_lossy(&lab.exec(&lab.node(node).ns, &["ip", "-br", "addr"]).stdout)
        );
    }
    println!(
        "\n{VIP} is on {master}. Client probes it every 10 ms; crashing {master} (SIGKILL + link cut)..."
    );
    let prober = Prober::start(
        &lab.client.ns,
        VIP.parse().unwrap(),
        Duration::from_millis(10),
    );
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let idx = if master == "n1" { 0 } else { 1 };
    lab.signal(pids[idx], Signal::SIGKILL);
    let m = lab.node(&master).clone();
    lab.set_link(&m, false);
    let bound = wait_for(Duration::from_secs(10), || {
        lab.holds(&lab.node(&backup).ns, VIP)
    });
    let Some(_) = bound else {
        eprintln!(
            "{backup} never took over:\n{}",
            lab.log(&format!("agent-{backup}.log"))
        );
        std::process::exit(1);
    };
    let takeover = t0.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let outage = prober.stop();
    let st = lab
        .http_get(&lab.node(&backup).ns, status, "/status")
        .unwrap();
    let st: serde_json::Value = serde_json::from_str(&st).unwrap();
    let inst = st["instances"]
        .as_object()
        .and_then(|m| m.values().next().cloned())
        .unwrap_or_default();
    println!("\n$ ip -br addr   # on {backup}");
    print!(
        "{}",
        String::from_utf8_lossy(
            &lab.exec(&lab.node(&backup).ns, &["ip", "-br", "addr"])
                .stdout
        )
    );
    println!(
        "\n{backup} took over {VIP} {:.0} ms after the crash ({}); the client lost {} of {} probes, outage {:.0} ms.",
        takeover.as_secs_f64() * 1000.0,
        inst["lastTransition"]["reason"].as_str().unwrap_or("?"),
        outage.lost,
        outage.sent,
        outage.outage.as_secs_f64() * 1000.0
    );
    println!(
        "{}",
        serde_json::json!({"takeover_ms": (takeover.as_secs_f64() * 1000.0).round(),
            "client_outage_ms": (outage.outage.as_secs_f64() * 1000.0).round(),
            "lost_probes": outage.lost, "new_master": backup})
    );
}
