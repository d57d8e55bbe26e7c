//! Bulk IPv6 failover: kube-vrrp and keepalived in the same run and the same lab. One
//! virtual router (VRRPv3, 100 ms) with one advertised IPv6 address and N excluded ones
//! (keepalived `virtual_ipaddress_excluded`, our `excludedAddresses`); n1 (200) master, n2
//! (150) backup. The master crashes (link cut, processes killed), and the client pings every
//! address until each answers again. Prints one JSON line per implementation and trial, then
//! the ratio of kube-vrrp to keepalived (median of the trials). Needs root and keepalived.
//!
//! Usage: bulk-bench [--addresses N] [--trials N]

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use kube_vrrp_e2e::stats::median;
use kube_vrrp_e2e::{
    Impl, Lab, NeighbourRoom, kube_vrrp_binary, random_u64, until_all_answer, wait_for,
};
use nix::sys::signal::Signal;
use serde_json::json;

const PRIMARY: &str = "2001:db8:1::50";

fn excluded(n: usize) -> Vec<Ipv6Addr> {
    (0..n)
        .map(|i| format!("2001:db8:1::2:{i:x}").parse().unwrap())
        .collect()
}

fn start(lab: &mut Lab, which: Impl, node: &str, priority: u8, addrs: &[Ipv6Addr]) -> u32 {
    match which {
        Impl::KubeVrrp => {
            let list: Vec<String> = addrs.iter().map(|a| format!("\"{a}/128\"")).collect();
            let yaml = format!(
                "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: vip}}\nspec:\n  addresses: [\"{PRIMARY}/64\"]\n  \
                 excludedAddresses: [{}]\n  virtualRouterID: 51\n  advertInterval: 100ms\n  defaultPriority: {priority}\n",
                list.join(", ")
            );
            lab.spawn_agent(&kube_vrrp_binary(), node, &yaml, false)
        }
        Impl::Keepalived => {
            let list: Vec<String> = addrs.iter().map(|a| format!("    {a}/128\n")).collect();
            let conf = format!(
                "global_defs {{\n  router_id {node}\n  vrrp_version 3\n}}\nvrrp_instance VI {{\n  state BACKUP\n  interface eth0\n  \
                 virtual_router_id 51\n  priority {priority}\n  advert_int 0.1\n  virtual_ipaddress {{\n    {PRIMARY}/64\n  }}\n  \
                 virtual_ipaddress_excluded {{\n{}  }}\n}}\n",
                list.concat()
            );
            lab.spawn_keepalived(node, &conf)
        }
    }
}

/// One trial: (crash → last address answers, crash → the backup held the last address).
fn trial(which: Impl, addrs: &[Ipv6Addr]) -> Option<(Duration, Duration)> {
    let mut lab = Lab::new(2);
    start(&mut lab, which, "n1", 200, addrs);
    start(&mut lab, which, "n2", 150, addrs);
    let last = addrs.last().unwrap().to_string();
    wait_for(Duration::from_secs(30), || lab.holders(&last) == ["n1"])?;
    let client = lab.client.ns.clone();
    let a2 = addrs.to_vec();
    let before = std::thread::spawn(move || {
        until_all_answer(&client, &a2, Instant::now(), Duration::from_secs(20))
    })
    .join()
    .unwrap();
    if before.len() < addrs.len() {
        eprintln!(
            "{which:?}: only {} of {} answered before the crash",
            before.len(),
            addrs.len()
        );
        return None;
    }
    // A random phase against the master's advertisement timer.
    std::thread::sleep(
        Duration::from_millis(300) + Duration::from_nanos(random_u64() % 100_000_000),
    );
    if lab.holders(&last) != ["n1"] || lab.holders(PRIMARY) != ["n1"] {
        eprintln!(
            "{which:?}: n1 is not the only holder before the crash: {:?} / {:?}\n{}",
            lab.holders(&last),
            lab.holders(PRIMARY),
            lab.log(match which {
                Impl::KubeVrrp => "agent-n2.log",
                Impl::Keepalived => "keepalived-n2.log",
            })
            .lines()
            .filter(|l| l.contains("STATE") || l.contains("transition"))
            .collect::<Vec<_>>()
            .join("\n")
        );
        return None;
    }
    let cut = Instant::now();
    let n1 = lab.node("n1").clone();
    lab.set_link(&n1, false);
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
    let client = lab.client.ns.clone();
    let a2 = addrs.to_vec();
    let pinger =
        std::thread::spawn(move || until_all_answer(&client, &a2, cut, Duration::from_secs(20)));
    let n2 = lab.node("n2").ns.clone();
    wait_for(Duration::from_secs(20), || lab.holds(&n2, &last));
    let held = cut.elapsed();
    let after = pinger.join().unwrap();
    if after.len() < addrs.len() {
        eprintln!(
            "{which:?}: only {} of {} answered after the crash",
            after.len(),
            addrs.len()
        );
        return None;
    }
    Some((after.values().max().copied()?, held))
}

/// Many addresses on one instance: time from the master's crash until the backup answers
/// for all of them, kube-vrrp against keepalived in the same run. Prints JSON lines. Needs
/// root and keepalived.
#[derive(clap::Parser)]
struct Args {
    /// Addresses, 1 to 4000.
    #[arg(long, default_value_t = 1000)]
    addresses: usize,
    /// Trials per implementation.
    #[arg(long, default_value_t = 3)]
    trials: usize,
}

fn main() {
    let Args {
        addresses: n,
        trials,
    } = clap::Parser::parse();
    assert!((1..=4000).contains(&n), "--addresses 1..4000");
    let addrs = excluded(n);
    // The client's neighbour entries: one table for every namespace, raised for the run.
    let _room = NeighbourRoom::raise(4 * n);
    let mut medians = Vec::new();
    for which in [Impl::KubeVrrp, Impl::Keepalived] {
        let mut answers = Vec::new();
        for t in 0..trials {
            match trial(which, &addrs) {
                Some((answer, held)) => {
                    let ms = |d: Duration| (d.as_secs_f64() * 10000.0).round() / 10.0;
                    println!(
                        "{}",
                        json!({"impl": which.name(), "addresses": n, "advert_ms": 100, "trial": t,
                               "crash_to_last_answers_ms": ms(answer), "crash_to_last_held_ms": ms(held)})
                    );
                    answers.push(answer.as_secs_f64() * 1000.0);
                }
                None => println!(
                    "{}",
                    json!({"impl": which.name(), "addresses": n, "trial": t, "failed": true})
                ),
            }
        }
        medians.push((!answers.is_empty()).then(|| median(answers)));
    }
    if let [Some(ours), Some(theirs)] = medians.as_slice() {
        println!(
            "{}",
            json!({"addresses": n, "kube_vrrp_median_ms": (ours * 10.0).round() / 10.0,
                   "keepalived_median_ms": (theirs * 10.0).round() / 10.0,
                   "ratio": (ours / theirs * 1000.0).round() / 1000.0})
        );
    }
}
