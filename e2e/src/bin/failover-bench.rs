//! Failover benchmark: kube-vrrp and keepalived in the same run and the same lab. A client
//! probes the VIP with ICMP every 10 ms while the master (priority 200) crashes (process killed
//! and link cut) or stops gracefully (SIGTERM); the backup (150) takes over. Prints one JSON
//! line per case: {impl, version, advert_ms, mode, trials, p50_ms, max_ms, lost, ...}, then the
//! ratio of kube-vrrp to keepalived per case. Needs root and keepalived.
//!
//! Usage: failover-bench [--trials N] [--only kube-vrrp|keepalived] [--quick] [--case MODE]
//! (MODE: crash, graceful or graceful-vmac)

use std::time::{Duration, Instant};

use kube_vrrp_e2e::{Impl, Lab, Prober, kube_vrrp_binary, random_u64, wait_for};
use nix::sys::signal::Signal;
use serde_json::json;

const VIP: &str = "198.51.100.50";

#[derive(Clone, Copy)]
struct Case {
    version: u8,
    advert_ms: u64,
    mode: &'static str,
    vmac: bool,
}

fn start(lab: &mut Lab, which: Impl, node: &str, priority: u8, c: &Case) -> u32 {
    match which {
        Impl::KubeVrrp => {
            let interval = if c.advert_ms.is_multiple_of(1000) {
                format!("{}s", c.advert_ms / 1000)
            } else {
                format!("{}ms", c.advert_ms)
            };
            let yaml = format!(
                "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: vip}}\nspec:\n  addresses: [\"{VIP}/24\"]\n  \
                 virtualRouterID: 51\n  version: {}\n  advertInterval: {interval}\n  defaultPriority: {priority}\n  virtualMAC: {}\n",
                c.version, c.vmac
            );
            lab.spawn_agent(&kube_vrrp_binary(), node, &yaml, false)
        }
        Impl::Keepalived => {
            let conf = format!(
                "global_defs {{\n  router_id {node}\n  vrrp_version {}\n}}\nvrrp_instance VI {{\n  state BACKUP\n  interface eth0\n  \
                 virtual_router_id 51\n  priority {priority}\n  advert_int {}\n{}  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n",
                c.version,
                c.advert_ms as f64 / 1000.0,
                if c.vmac { "  use_vmac\n" } else { "" }
            );
            lab.spawn_keepalived(node, &conf)
        }
    }
}

/// One trial: returns (client outage, lost probes, time until the backup bound the VIP).
fn trial(which: Impl, c: &Case) -> Option<(Duration, usize, Duration)> {
    let mut lab = Lab::new(2);
    let p1 = start(&mut lab, which, "n1", 200, c);
    let _p2 = start(&mut lab, which, "n2", 150, c);
    wait_for(Duration::from_secs(15), || lab.holders(VIP) == ["n1"])?;
    // Let the backup hear a few adverts (v3 learns the interval) before the event.
    std::thread::sleep(Duration::from_millis((c.advert_ms * 3).max(500)));
    // Warm the client's ARP entry.
    let prober = Prober::start(
        &lab.client.ns,
        VIP.parse().unwrap(),
        Duration::from_millis(10),
    );
    // A random phase against the master's advertisement timer: the crash outage depends on how
    // long ago the last advertisement went out, so a fixed delay would compare phases, not
    // implementations.
    // (From the kernel's random pool: a clock-derived phase turned out to correlate with
    // keepalived's timers and made its crash outage look shorter than its own capture shows.)
    let jitter = random_u64() % (c.advert_ms * 1_000_000);
    std::thread::sleep(Duration::from_millis(300) + Duration::from_nanos(jitter));
    let t0 = Instant::now();
    match c.mode {
        "crash" => {
            // Cut the link first: keepalived's VRRP child dies with its parent through
            // PDEATHSIG=SIGTERM and would otherwise hand over gracefully.
            let n1 = lab.node("n1").clone();
            lab.set_link(&n1, false);
            lab.signal(p1, Signal::SIGKILL);
            let out = std::process::Command::new("ip")
                .args(["netns", "pids", &n1.ns])
                .output()
                .unwrap();
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid.parse().unwrap()),
                    Signal::SIGKILL,
                );
            }
        }
        // Not `lab.signal`: it would wait for the process to exit.
        _ => {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p1 as i32), Signal::SIGTERM);
        }
    }
    // Time from the event to the VIP bound on n2 (for SIGTERM, `signal` returns when the old
    // master has exited, so measure from t0, not from the end of the wait).
    wait_for(Duration::from_secs(15), || {
        lab.holds(&lab.node("n2").ns, VIP)
    })?;
    let bound = t0.elapsed();
    std::thread::sleep(Duration::from_millis(300 + c.advert_ms.min(1000)));
    let o = prober.stop();
    Some((o.outage, o.lost, bound))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

/// Failover of kube-vrrp and keepalived in the same lab: the master crashes (process killed,
/// link cut) or stops gracefully; a client probes the VIP every 10 ms. Prints JSON lines, then
/// the ratios. Needs root and keepalived.
#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    versus: kube_vrrp_e2e::Versus,
    /// Leave out the VRRPv2 1 s cases.
    #[arg(long)]
    quick: bool,
    /// crash, graceful or graceful-vmac only.
    #[arg(long = "case")]
    only_case: Option<String>,
}

fn main() {
    let Args {
        versus: kube_vrrp_e2e::Versus { trials, only },
        quick,
        only_case,
    } = clap::Parser::parse();
    kube_vrrp_e2e::require_root();
    let mut cases = vec![];
    for (version, advert_ms) in [(3u8, 100u64), (3, 20), (2, 1000)] {
        if quick && advert_ms == 1000 {
            continue;
        }
        for mode in ["crash", "graceful"] {
            cases.push(Case {
                version,
                advert_ms,
                mode,
                vmac: false,
            });
        }
    }
    cases.push(Case {
        version: 3,
        advert_ms: 100,
        mode: "graceful",
        vmac: true,
    });
    if let Some(only) = &only_case {
        cases.retain(|c| {
            let name = if c.vmac {
                format!("{}-vmac", c.mode)
            } else {
                c.mode.to_string()
            };
            &name == only
        });
    }

    let mut results: Vec<(Impl, String, f64, f64)> = Vec::new();
    for c in &cases {
        for which in [Impl::KubeVrrp, Impl::Keepalived] {
            if only.as_deref().is_some_and(|o| o != which.name()) {
                continue;
            }
            let mut outages = Vec::new();
            let mut takeovers = Vec::new();
            let mut lost = 0;
            let mut failed = 0;
            for _ in 0..trials {
                match trial(which, c) {
                    Some((o, l, t)) => {
                        eprintln!(
                            "{} {:?}: outage {:.1} ms, lost {l}, takeover {:.1} ms",
                            which.name(),
                            c.mode,
                            o.as_secs_f64() * 1000.0,
                            t.as_secs_f64() * 1000.0
                        );
                        outages.push(o.as_secs_f64() * 1000.0);
                        takeovers.push(t.as_secs_f64() * 1000.0);
                        lost += l;
                    }
                    None => failed += 1,
                }
            }
            outages.sort_by(f64::total_cmp);
            takeovers.sort_by(f64::total_cmp);
            let mode = if c.vmac {
                format!("{}-vmac", c.mode)
            } else {
                c.mode.to_string()
            };
            let p50 = percentile(&outages, 0.5);
            let max = outages.last().copied().unwrap_or(f64::NAN);
            println!(
                "{}",
                json!({"impl": which.name(), "version": c.version, "advert_ms": c.advert_ms, "mode": mode,
                    "trials": outages.len(), "failed_trials": failed, "p50_ms": (p50 * 10.0).round() / 10.0,
                    "max_ms": (max * 10.0).round() / 10.0, "lost": lost,
                    "takeover_p50_ms": (percentile(&takeovers, 0.5) * 10.0).round() / 10.0})
            );
            results.push((
                which,
                format!("v{} {}ms {mode}", c.version, c.advert_ms),
                p50,
                max,
            ));
        }
    }
    for (which, case, p50, max) in &results {
        if *which != Impl::KubeVrrp {
            continue;
        }
        if let Some((_, _, kp50, kmax)) = results
            .iter()
            .find(|r| r.0 == Impl::Keepalived && &r.1 == case)
        {
            println!(
                "{}",
                json!({"ratio": case, "p50_kube_vrrp_over_keepalived": (p50 / kp50 * 100.0).round() / 100.0,
                    "max_kube_vrrp_over_keepalived": (max / kmax * 100.0).round() / 100.0})
            );
        }
    }
}
