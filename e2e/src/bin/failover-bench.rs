//! Failover benchmark: kube-vrrp and keepalived in the same run and the same lab. A client
//! probes the VIP with ICMP every 10 ms while the master (priority 200) crashes (process killed
//! and link cut) or stops gracefully (SIGTERM); the backup (150) takes over. Prints one JSON
//! line per case: {impl, version, advert_ms, mode, trials, p50_ms, max_ms, lost, ...}, then the
//! ratio of kube-vrrp to keepalived per case. Needs root and keepalived.
//!
//! A third case, agent-crash, kills only the process (SIGKILL: kube-vrrp's agent under its
//! warden, keepalived's processes) and leaves the link up, with 10 and with 1,000 VIPs (v3,
//! 100 ms, 20 VIPs an instance): it prints when the backup held every VIP (takeover) and
//! when the old master held none (released; null if it still held one 10 s later).
//!
//! Usage: failover-bench [--trials N] [--only kube-vrrp|keepalived] [--quick] [--case MODE]
//! (MODE: crash, graceful, graceful-vmac or agent-crash)

use std::time::{Duration, Instant};

use kube_vrrp_e2e::stats::percentile;
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

/// The agent-crash case's VIPs, 20 an instance: IPv4 first (the prober pings the first one),
/// IPv6 for the second half of 1,000.
fn crash_vips(n: usize) -> Vec<Vec<String>> {
    let v4 = (50..100)
        .map(|i| format!("198.51.100.{i}/24"))
        .chain((1..255).map(|i| format!("203.0.113.{i}/24")))
        .chain((1..255).map(|i| format!("192.0.2.{i}/24")));
    let all: Vec<String> = if n <= 20 {
        v4.take(n).collect()
    } else {
        v4.take(n / 2)
            .chain((0..n - n / 2).map(|i| format!("2001:db8:1::1:{:x}/64", i + 1)))
            .collect()
    };
    all.chunks(20).map(<[String]>::to_vec).collect()
}

fn start_many(lab: &mut Lab, which: Impl, node: &str, priority: u8, groups: &[Vec<String>]) -> u32 {
    match which {
        Impl::KubeVrrp => {
            let yaml = groups
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let addrs: Vec<String> = g.iter().map(|a| format!("\"{a}\"")).collect();
                    format!(
                        "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: vip{i}}}\nspec:\n  interface: eth0\n  \
                         addresses: [{}]\n  virtualRouterID: {}\n  advertInterval: 100ms\n  defaultPriority: {priority}\n",
                        addrs.join(", "),
                        i + 1
                    )
                })
                .collect::<Vec<_>>()
                .join("---\n");
            lab.spawn_agent(&kube_vrrp_binary(), node, &yaml, false)
        }
        Impl::Keepalived => {
            let mut conf = format!("global_defs {{\n  router_id {node}\n  vrrp_version 3\n}}\n");
            for (i, g) in groups.iter().enumerate() {
                conf += &format!(
                    "vrrp_instance VI{i} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {}\n  priority {priority}\n  \
                     advert_int 0.1\n  virtual_ipaddress {{\n{}  }}\n}}\n",
                    i + 1,
                    g.iter().map(|a| format!("    {a}\n")).collect::<String>()
                );
            }
            lab.spawn_keepalived(node, &conf)
        }
    }
}

/// The VIPs of `vips` a namespace holds, from one `ip -o addr` listing.
fn held(ns: &str, vips: &std::collections::HashSet<&str>) -> usize {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-o", "addr", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter(|a| vips.contains(a))
        .count()
}

/// One agent-crash trial: (client outage, lost probes, takeover, released).
fn agent_crash_trial(
    which: Impl,
    n: usize,
) -> Option<(Duration, usize, Duration, Option<Duration>)> {
    let groups = crash_vips(n);
    let all: Vec<String> = groups.concat();
    let vips: std::collections::HashSet<&str> = all.iter().map(String::as_str).collect();
    let mut lab = Lab::new(2);
    let p1 = start_many(&mut lab, which, "n1", 200, &groups);
    let _p2 = start_many(&mut lab, which, "n2", 150, &groups);
    let (n1, n2) = (lab.node("n1").ns.clone(), lab.node("n2").ns.clone());
    wait_for(Duration::from_secs(60), || {
        held(&n1, &vips) == n && held(&n2, &vips) == 0
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let first = all[0].split('/').next().unwrap().parse().unwrap();
    let prober = Prober::start(&lab.client.ns, first, Duration::from_millis(10));
    let jitter = random_u64() % 100_000_000;
    std::thread::sleep(Duration::from_millis(300) + Duration::from_nanos(jitter));
    let t0 = match which {
        Impl::KubeVrrp => {
            let agent = lab.agent_of(p1);
            let t0 = Instant::now();
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent as i32), Signal::SIGKILL);
            t0
        }
        Impl::Keepalived => {
            // Stopped first, so its parent cannot start another VRRP child; then every
            // process of the node, the parent last.
            let t0 = Instant::now();
            let parent = nix::unistd::Pid::from_raw(p1 as i32);
            let _ = nix::sys::signal::kill(parent, Signal::SIGSTOP);
            let out = std::process::Command::new("ip")
                .args(["netns", "pids", &n1])
                .output()
                .unwrap();
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let pid = nix::unistd::Pid::from_raw(pid.parse().unwrap());
                if pid != parent {
                    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                }
            }
            let _ = nix::sys::signal::kill(parent, Signal::SIGKILL);
            t0
        }
    };
    let (mut takeover, mut released) = (None, None);
    while t0.elapsed() < Duration::from_secs(10) && (takeover.is_none() || released.is_none()) {
        if takeover.is_none() && held(&n2, &vips) == n {
            takeover = Some(t0.elapsed());
        }
        if released.is_none() && held(&n1, &vips) == 0 {
            released = Some(t0.elapsed());
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let o = prober.stop();
    Some((o.outage, o.lost, takeover?, released))
}

/// The agent-crash case for `n` VIPs: one JSON line per implementation.
fn agent_crash(which: Impl, n: usize, trials: usize) -> Option<(f64, f64)> {
    let (mut takeovers, mut releases, mut outages) = (vec![], vec![], vec![]);
    let (mut lost, mut failed, mut kept) = (0, 0, 0);
    for _ in 0..trials {
        match agent_crash_trial(which, n) {
            Some((o, l, t, r)) => {
                eprintln!(
                    "{} agent-crash {n} VIPs: takeover {:.1} ms, released {}, outage {:.1} ms, lost {l}",
                    which.name(),
                    t.as_secs_f64() * 1000.0,
                    r.map_or("never (10 s)".into(), |r| format!(
                        "{:.1} ms",
                        r.as_secs_f64() * 1000.0
                    )),
                    o.as_secs_f64() * 1000.0
                );
                takeovers.push(t.as_secs_f64() * 1000.0);
                outages.push(o.as_secs_f64() * 1000.0);
                match r {
                    Some(r) => releases.push(r.as_secs_f64() * 1000.0),
                    None => kept += 1,
                }
                lost += l;
            }
            None => failed += 1,
        }
    }
    for v in [&mut takeovers, &mut releases, &mut outages] {
        v.sort_by(f64::total_cmp);
    }
    let round = |x: f64| (x * 10.0).round() / 10.0;
    let or_null = |v: &[f64], p: f64| (!v.is_empty()).then(|| round(percentile(v, p)));
    println!(
        "{}",
        json!({"impl": which.name(), "version": 3, "advert_ms": 100, "mode": "agent-crash", "vips": n,
            "trials": takeovers.len(), "failed_trials": failed,
            "takeover_p50_ms": or_null(&takeovers, 50.0), "takeover_max_ms": or_null(&takeovers, 100.0),
            "released_p50_ms": or_null(&releases, 50.0), "released_max_ms": or_null(&releases, 100.0),
            "still_held_after_10s": kept,
            "p50_ms": or_null(&outages, 50.0), "max_ms": or_null(&outages, 100.0), "lost": lost})
    );
    (!takeovers.is_empty()).then(|| (percentile(&takeovers, 50.0), percentile(&takeovers, 100.0)))
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
    if only_case.as_deref().is_none_or(|c| c == "agent-crash") {
        for n in [10, 1000] {
            for which in [Impl::KubeVrrp, Impl::Keepalived] {
                if only.as_deref().is_some_and(|o| o != which.name()) {
                    continue;
                }
                if let Some((p50, max)) = agent_crash(which, n, trials) {
                    results.push((
                        which,
                        format!("v3 100ms agent-crash {n} VIPs takeover"),
                        p50,
                        max,
                    ));
                }
            }
        }
    }
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
            let p50 = percentile(&outages, 50.0);
            let max = outages.last().copied().unwrap_or(f64::NAN);
            println!(
                "{}",
                json!({"impl": which.name(), "version": c.version, "advert_ms": c.advert_ms, "mode": mode,
                    "trials": outages.len(), "failed_trials": failed, "p50_ms": (p50 * 10.0).round() / 10.0,
                    "max_ms": (max * 10.0).round() / 10.0, "lost": lost,
                    "takeover_p50_ms": (percentile(&takeovers, 50.0) * 10.0).round() / 10.0})
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
