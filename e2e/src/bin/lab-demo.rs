//! The README's run command: two kube-vrrp agents in a namespace lab on a sample config (the
//! embedded `config/web-vip.yaml`, or the file given), show who holds the vip, crash the master
//! (agent killed and its link cut) and print the measured takeover. Needs root.
//!
//! Usage: lab-demo [CONFIG.yaml]: the file's first VirtualIP's first IPv4 address is the one
//! probed; it must be in the lab's subnet 198.51.100.0/24. Every exit path deletes the lab.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kube_vrrp_e2e::{AGENT_STATUS, Lab, Prober, kube_vrrp_binary, wait_for};
use nix::sys::signal::Signal;

const DEFAULT_CONFIG: &str = include_str!("../../../config/web-vip.yaml");

/// Two kube-vrrp agents in a namespace lab on a VirtualIP file (default: the embedded
/// config/web-vip.yaml): shows who holds the address, crashes the master (agent killed, link
/// cut) and prints the measured takeover. Needs root.
#[derive(clap::Parser)]
struct Args {
    /// A standalone VirtualIP file, checked first as `kube-vrrp check` does; its first
    /// VirtualIP's first IPv4 address, in 198.51.100.0/24, is the one probed.
    config: Option<std::path::PathBuf>,
}

fn main() {
    let args: Args = clap::Parser::parse();
    // Every failure returns through `run`, so the lab (namespaces, processes) is dropped.
    let code = match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("lab-demo: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// The address to probe: the file's first VirtualIP's first IPv4 address, in the lab subnet.
fn vip_of(yaml: &str) -> Result<String, String> {
    use serde::Deserialize;
    let first = yaml_serde::Deserializer::from_str(yaml)
        .filter_map(|d| yaml_serde::Value::deserialize(d).ok())
        .find(|d| d["kind"] == "VirtualIP")
        .ok_or("no VirtualIP document in the file")?;
    let name = first["metadata"]["name"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let ip = first["spec"]["addresses"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str())
        .find_map(|a| a.split('/').next()?.parse::<std::net::Ipv4Addr>().ok())
        .ok_or_else(|| format!("{name}: no IPv4 address to probe"))?;
    if ip.octets()[..3] != [198, 51, 100] {
        return Err(format!(
            "{name}: {ip} is not in the lab's subnet 198.51.100.0/24 (nodes 198.51.100.11 and .12)"
        ));
    }
    Ok(ip.to_string())
}

fn run(args: Args) -> Result<(), String> {
    let yaml = match &args.config {
        Some(path) => {
            let yaml = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            kube_vrrp_e2e::check_file(path, false)?;
            yaml
        }
        None => DEFAULT_CONFIG.to_string(),
    };
    let vip = vip_of(&yaml)?;
    let vip = vip.as_str();
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
    if wait_for(Duration::from_secs(10), || lab.holders(vip).len() == 1).is_none() {
        return Err(format!("no single holder of {vip}: {:?}", lab.holders(vip)));
    }
    let master = lab.holders(vip)[0].clone();
    let backup = if master == "n1" { "n2" } else { "n1" }.to_string();
    for node in ["n1", "n2"] {
        println!("\n$ ip -br addr   # on {node}");
        print!(
            "{}",
            String::from_utf8_lossy(&lab.exec(&lab.node(node).ns, &["ip", "-br", "addr"]).stdout)
        );
    }
    println!(
        "\n{vip} is on {master}. Client probes it every 10 ms; crashing {master} (SIGKILL + link cut)..."
    );
    let prober = Prober::start(
        &lab.client.ns,
        vip.parse().unwrap(),
        Duration::from_millis(10),
    );
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let idx = if master == "n1" { 0 } else { 1 };
    lab.signal(pids[idx], Signal::SIGKILL);
    let m = lab.node(&master).clone();
    lab.set_link(&m, false);
    let bound = wait_for(Duration::from_secs(10), || {
        lab.holds(&lab.node(&backup).ns, vip)
    });
    let Some(_) = bound else {
        return Err(format!(
            "{backup} never took over:\n{}",
            lab.log(&format!("agent-{backup}.log"))
        ));
    };
    let takeover = t0.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let outage = prober.stop();
    let st = lab.http_get(&lab.node(&backup).ns, status, "/status")?;
    let st: serde_json::Value = serde_json::from_str(&st).map_err(|e| e.to_string())?;
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
        "\n{backup} took over {vip} {:.0} ms after the crash ({}); the client lost {} of {} probes, outage {:.0} ms.",
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
    Ok(())
}
