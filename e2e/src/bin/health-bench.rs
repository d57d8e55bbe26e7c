//! Health-check failover benchmark: kube-vrrp and keepalived in the same run and the same lab,
//! the keepalived tutorial setup. nginx runs on both nodes; the master (101) checks it every
//! second (fall 2, rise 2, weight 0); the backup has 100. nginx is stopped on the master: how
//! long until the backup holds the VIP, and how many of the client's 10 ms ICMP probes to the
//! VIP are lost; then nginx starts again: how long until the VIP is back.
//!
//! The check is the same for both: a TCP connect to 127.0.0.1:80 (kube-vrrp's `tcp` check;
//! keepalived's `vrrp_script` running bash's `</dev/tcp/127.0.0.1/80`, as tutorials write it),
//! VRRPv3 at 100 ms. Expected move time: the check's phase (0 to 1 s) + 1 more interval (fall
//! 2) + the priority-0 handover (the backup's skew, 61 ms).
//!
//! Prints one JSON line per trial and per implementation, then the ratios.
//! Usage: health-bench [--trials N] [--only kube-vrrp|keepalived]

use std::time::{Duration, Instant};

use kube_vrrp_e2e::stats::median;
use kube_vrrp_e2e::{Impl, Lab, Prober, kube_vrrp_binary, random_u64, wait_for};
use nix::sys::signal::Signal;
use serde_json::json;

const VIP: &str = "198.51.100.50";

fn start(lab: &mut Lab, which: Impl, node: &str, priority: u8) -> u32 {
    match which {
        Impl::KubeVrrp => {
            let yaml = format!(
                "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: vip}}\nspec:\n  addresses: [\"{VIP}/24\"]\n  \
                 virtualRouterID: 51\n  advertInterval: 100ms\n  defaultPriority: {priority}\n  healthChecks:\n  \
                 - {{name: nginx, interval: 1s, fall: 2, rise: 2, tcp: {{port: 80}}}}\n"
            );
            lab.spawn_agent(&kube_vrrp_binary(), node, &yaml, false)
        }
        Impl::Keepalived => {
            let conf = format!(
                "global_defs {{\n  router_id {node}\n  vrrp_version 3\n  script_user root\n  enable_script_security\n}}\n\
                 vrrp_script chk_nginx {{\n  script \"/bin/bash -c '</dev/tcp/127.0.0.1/80'\"\n  interval 1\n  timeout 1\n  fall 2\n  rise 2\n  weight 0\n}}\n\
                 vrrp_instance VI {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  advert_int 0.1\n  \
                 virtual_ipaddress {{\n    {VIP}/24\n  }}\n  track_script {{\n    chk_nginx\n  }}\n}}\n"
            );
            lab.spawn_keepalived(node, &conf)
        }
    }
}

struct Trial {
    moved: Duration,
    lost: usize,
    outage: Duration,
    back: Duration,
}

fn trial(which: Impl) -> Option<Trial> {
    let mut lab = Lab::new(2);
    let nginx1 = lab.spawn_nginx("n1", 80, None);
    lab.spawn_nginx("n2", 80, None);
    start(&mut lab, which, "n1", 101);
    start(&mut lab, which, "n2", 100);
    wait_for(Duration::from_secs(15), || lab.holders(VIP) == ["n1"])?;
    std::thread::sleep(Duration::from_millis(500));
    let prober = Prober::start(
        &lab.client.ns.clone(),
        VIP.parse().unwrap(),
        Duration::from_millis(10),
    );
    // A random phase against the check's timer.
    std::thread::sleep(Duration::from_millis(300 + random_u64() % 1000));
    let t0 = Instant::now();
    lab.signal(nginx1, Signal::SIGTERM);
    wait_for(Duration::from_secs(15), || lab.holders(VIP) == ["n2"])?;
    let moved = t0.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let o = prober.stop();
    let t1 = Instant::now();
    lab.spawn_nginx("n1", 80, None);
    wait_for(Duration::from_secs(15), || lab.holders(VIP) == ["n1"])?;
    Some(Trial {
        moved,
        lost: o.lost,
        outage: o.outage,
        back: t1.elapsed(),
    })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// A failing health check moves the master: nginx stops on the master, its tcp check (1 s,
/// fall 2) takes the priority down, the backup takes over. kube-vrrp against keepalived in
/// the same run. Prints JSON lines. Needs root, keepalived and nginx.
#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    versus: kube_vrrp_e2e::Versus,
}

fn main() {
    let Args {
        versus: kube_vrrp_e2e::Versus { trials, only },
    } = clap::Parser::parse();
    kube_vrrp_e2e::require_root();
    let mut summary = Vec::new();
    for which in [Impl::KubeVrrp, Impl::Keepalived] {
        if only.as_deref().is_some_and(|o| o != which.name()) {
            continue;
        }
        let mut runs = Vec::new();
        let mut failed = 0;
        for _ in 0..trials {
            match trial(which) {
                Some(t) => {
                    println!(
                        "{}",
                        json!({"impl": which.name(), "trial": runs.len() + 1, "moved_ms": ms(t.moved),
                            "lost_probes": t.lost, "outage_ms": ms(t.outage), "back_ms": ms(t.back)})
                    );
                    runs.push(t);
                }
                None => failed += 1,
            }
        }
        let line = json!({
            "impl": which.name(), "case": "nginx stopped, tcp check 1s fall 2 rise 2 weight 0, v3 100ms",
            "trials": runs.len(), "failed_trials": failed,
            "moved_p50_ms": median(runs.iter().map(|t| ms(t.moved)).collect()),
            "moved_max_ms": runs.iter().map(|t| ms(t.moved)).fold(0.0, f64::max),
            "lost_probes_total": runs.iter().map(|t| t.lost).sum::<usize>(),
            "outage_p50_ms": median(runs.iter().map(|t| ms(t.outage)).collect()),
            "back_p50_ms": median(runs.iter().map(|t| ms(t.back)).collect()),
        });
        println!("{line}");
        summary.push(line);
    }
    if let [k, o] = summary.as_slice() {
        let r = |f: &str| {
            (k[f].as_f64().unwrap_or(f64::NAN) / o[f].as_f64().unwrap_or(f64::NAN) * 100.0).round()
                / 100.0
        };
        println!(
            "{}",
            json!({"ratio": "kube-vrrp / keepalived", "moved_p50": r("moved_p50_ms"), "outage_p50": r("outage_p50_ms"), "back_p50": r("back_p50_ms")})
        );
    }
}
