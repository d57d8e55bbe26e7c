//! Resource benchmark: 1,000 VIPs in 50 VRRPv3 instances (25 IPv4, 25 IPv6, 20 VIPs each) at
//! 1 s adverts, on one node as master; kube-vrrp and keepalived with the equivalent config in
//! the same run. Prints JSON lines {impl, instances, vips, rss_kb, cpu_percent, ...} and the
//! ratios. Needs root and keepalived.
//!
//! Usage: resource-bench [--window SECONDS]

use std::time::{Duration, Instant};

use kube_vrrp_e2e::{Lab, kube_vrrp_binary, wait_for};
use serde_json::json;

const INSTANCES: usize = 50;
const PER: usize = 20;

/// The VIPs of instance `i` (0-based): IPv4 from 192.0.2.0/24 and 203.0.113.0/24 for the first
/// 25, IPv6 from 2001:db8:2::/64 for the rest.
fn vips(i: usize) -> Vec<String> {
    (0..PER)
        .map(|j| {
            let n = i * PER + j; // 0..1000
            if i < INSTANCES / 2 {
                if n < 250 {
                    format!("192.0.2.{}/24", n + 1)
                } else {
                    format!("203.0.113.{}/24", n - 250 + 1)
                }
            } else {
                format!("2001:db8:2::{:x}/64", n + 1)
            }
        })
        .collect()
}

fn ours() -> String {
    (0..INSTANCES)
        .map(|i| {
            let addrs: Vec<String> = vips(i).iter().map(|a| format!("\"{a}\"")).collect();
            format!(
                "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: vip{i}}}\nspec:\n  interface: eth0\n  \
                 addresses: [{}]\n  virtualRouterID: {}\n  advertInterval: 1s\n  defaultPriority: 200\n",
                addrs.join(", "),
                i + 1
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

fn keepalived() -> String {
    let mut s = String::from("global_defs {\n  router_id n1\n  vrrp_version 3\n}\n");
    for i in 0..INSTANCES {
        s += &format!(
            "vrrp_instance VI{i} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {}\n  priority 200\n  advert_int 1\n  \
             virtual_ipaddress {{\n{}  }}\n}}\n",
            i + 1,
            vips(i)
                .iter()
                .map(|a| format!("    {a}\n"))
                .collect::<String>()
        );
    }
    s
}

fn pids(ns: &str) -> Vec<u32> {
    let out = std::process::Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// (utime + stime in clock ticks, VmRSS in kB) summed over the processes.
fn usage(pids: &[u32]) -> (u64, u64) {
    let mut ticks = 0;
    let mut rss = 0;
    for p in pids {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = after.split_whitespace().collect();
            ticks += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) {
            for l in status.lines() {
                if let Some(v) = l.strip_prefix("VmRSS:") {
                    rss += v
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .parse::<u64>()
                        .unwrap_or(0);
                }
            }
        }
    }
    (ticks, rss)
}

/// Memory and CPU of 1,000 addresses in 50 instances, every one master, kube-vrrp against
/// keepalived in the same run. Prints JSON lines. Needs root and keepalived.
#[derive(clap::Parser)]
struct Args {
    /// Seconds measured, after the start-up bursts.
    #[arg(long, default_value_t = 30)]
    window: u64,
}

fn main() {
    let Args { window } = clap::Parser::parse();
    kube_vrrp_e2e::require_root();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap_or(100) as f64;
    let mut results = Vec::new();
    for which in ["kube-vrrp", "keepalived"] {
        let mut lab = Lab::new(1);
        let ns = lab.node("n1").ns.clone();
        if which == "kube-vrrp" {
            lab.spawn_agent(&kube_vrrp_binary(), "n1", &ours(), false);
        } else {
            lab.spawn_keepalived("n1", &keepalived());
        }
        // Every instance master, every VIP bound.
        let count = |lab: &Lab| {
            let out = lab.exec(&ns, &["ip", "-o", "addr", "show", "dev", "eth0"]);
            String::from_utf8_lossy(&out.stdout).lines().count()
        };
        let base = 4; // own IPv4, own IPv6, link-local (and slack)
        let ready = wait_for(Duration::from_secs(60), || count(&lab) >= 1000 + base - 1);
        let bound = count(&lab);
        if ready.is_none() {
            eprintln!("{which}: only {bound} addresses bound after 60 s");
        }
        std::thread::sleep(Duration::from_secs(8)); // past the 5 s second GARP burst
        let p = pids(&ns);
        let (t0, _) = usage(&p);
        let start = Instant::now();
        let mut peak_rss = 0;
        while start.elapsed() < Duration::from_secs(window) {
            std::thread::sleep(Duration::from_millis(500));
            peak_rss = peak_rss.max(usage(&p).1);
        }
        let (t1, rss) = usage(&p);
        let secs = start.elapsed().as_secs_f64();
        let cpu = (t1 - t0) as f64 / hz;
        let line = json!({"impl": which, "instances": INSTANCES, "vips": INSTANCES * PER, "bound": bound,
            "processes": p.len(), "rss_kb": rss, "peak_rss_kb": peak_rss, "cpu_seconds": cpu, "window_s": secs.round(),
            "cpu_percent": (cpu / secs * 10000.0).round() / 100.0});
        println!("{line}");
        results.push((rss as f64, cpu / secs));
    }
    println!(
        "{}",
        json!({"ratio": "kube-vrrp/keepalived", "rss": (results[0].0 / results[1].0 * 100.0).round() / 100.0,
            "cpu": if results[1].1 > 0.0 { (results[0].1 / results[1].1 * 100.0).round() / 100.0 } else { f64::NAN }})
    );
}
