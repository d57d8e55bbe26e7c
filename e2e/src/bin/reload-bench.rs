//! Reload and flood benchmark: kube-vrrp and keepalived 2.2.7 in the same run and the same
//! two-node lab (n1 priority 200, n2 priority 100), every advertisement captured on the
//! segment from the client's port. Prints JSON lines. Needs root and keepalived.
//!
//! `reload` case. On n1:
//!
//! * 100 IPv4 instances at 100 ms (VRIDs 1-100) and 50 IPv6 instances at 20 ms (VRIDs
//!   1-50) that no reload touches;
//! * 50 IPv4 instances at 100 ms (VRIDs 101-150) whose addresses every reload changes;
//! * 100 IPv6 instances at 100 ms that every reload removes while it adds 100 others (VRIDs
//!   101-200, and 51-100 + 201-250, in turn).
//!
//! n2 runs all of them and is never reloaded. `--reloads` SIGHUPs of n1 (default 10), 1.5 s
//! apart. Printed: the longest gap between n1's advertisements of each untouched instance
//! (against 1.5 × its interval), and how many untouched instances n2 took over (it
//! advertised them with its priority): false takeovers.
//!
//! `flood` case: 150 IPv4 instances at 100 ms; two threads in the client send VRRPv3 packets
//! with a bad checksum for those VRIDs as fast as they can for `--flood-secs` (default 10).
//! Printed: packets sent, transitions to Master on either node during the flood, bytes of
//! log written, and the longest advertisement gap.
//!
//! `big` case: a VirtualIP with 2,000 IPv6 addresses added by a reload beside 50 instances at
//! 20 ms: time until all are bound, and the 20 ms instances' longest gap meanwhile.
//!
//! Usage: reload-bench [--case reload|flood|big] [--only kube-vrrp|keepalived] [--reloads N]
//!        [--flood-secs S]

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kube_vrrp_e2e::{AGENT_STATUS, Capture, Impl, Lab, Seen, kube_vrrp_binary, wait_for};
use serde_json::json;

/// One instance of the benchmark's configuration.
#[derive(Clone)]
struct Inst {
    ipv6: bool,
    vrid: u8,
    interval_ms: u64,
    addresses: Vec<String>,
}

impl Inst {
    fn name(&self) -> String {
        format!("{}{}", if self.ipv6 { "v6-" } else { "v4-" }, self.vrid)
    }
}

fn v4(vrid: u8, interval_ms: u64, extra: bool) -> Inst {
    let mut addresses = vec![format!("203.0.113.{vrid}/24")];
    if extra {
        addresses.push(format!("198.51.100.{vrid}/24"));
    }
    Inst {
        ipv6: false,
        vrid,
        interval_ms,
        addresses,
    }
}

fn v6(vrid: u8, interval_ms: u64, net: u16) -> Inst {
    Inst {
        ipv6: true,
        vrid,
        interval_ms,
        addresses: vec![format!("2001:db8:{net:x}::{vrid:x}/64")],
    }
}

fn yaml(insts: &[Inst], priority: u8) -> String {
    let mut out = String::new();
    for i in insts {
        let interval = format!("{}ms", i.interval_ms);
        let addrs: Vec<String> = i.addresses.iter().map(|a| format!("\"{a}\"")).collect();
        out += &format!(
            "---\napiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: {}}}\nspec:\n  addresses: [{}]\n  \
             interface: eth0\n  virtualRouterID: {}\n  advertInterval: {interval}\n  defaultPriority: {priority}\n  \
             garp: {{masterDelay: 0s, masterRepeat: 1}}\n",
            i.name(),
            addrs.join(", "),
            i.vrid
        );
    }
    out
}

fn keepalived_conf(node: &str, insts: &[Inst], priority: u8) -> String {
    let mut out = format!("global_defs {{\n  router_id {node}\n  vrrp_version 3\n}}\n");
    for i in insts {
        out += &format!(
            "vrrp_instance {} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {}\n  priority {priority}\n  \
             advert_int {}\n  garp_master_delay 0\n  garp_master_repeat 1\n  virtual_ipaddress {{\n",
            i.name(),
            i.vrid,
            i.interval_ms as f64 / 1000.0
        );
        for a in &i.addresses {
            out += &format!("    {a} dev eth0\n");
        }
        out += "  }\n}\n";
    }
    out
}

fn start(lab: &mut Lab, which: Impl, node: &str, insts: &[Inst], priority: u8) -> u32 {
    match which {
        Impl::KubeVrrp => {
            let path = lab.dir().join(format!("vip-{node}.yaml"));
            std::fs::write(&path, yaml(insts, priority)).unwrap();
            lab.spawn_agent_with_file(&kube_vrrp_binary(), node, &path.display().to_string(), true)
        }
        Impl::Keepalived => lab.spawn_keepalived(node, &keepalived_conf(node, insts, priority)),
    }
}

/// Rewrites n1's configuration and sends SIGHUP.
fn reload(lab: &Lab, which: Impl, pid: u32, insts: &[Inst]) {
    match which {
        Impl::KubeVrrp => std::fs::write(lab.dir().join("vip-n1.yaml"), yaml(insts, 200)).unwrap(),
        Impl::Keepalived => std::fs::write(
            lab.dir().join("keepalived-n1.conf"),
            keepalived_conf("n1", insts, 200),
        )
        .unwrap(),
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    );
}

type Key = (bool, u8);

fn key(i: &Inst) -> Key {
    (i.ipv6, i.vrid)
}

/// Longest gap between priority-`prio` adverts per key, within [from, to].
fn gaps(seen: &[Seen], prio: u8, from: Instant, to: Instant) -> HashMap<Key, Duration> {
    let mut last: HashMap<Key, Instant> = HashMap::new();
    let mut worst: HashMap<Key, Duration> = HashMap::new();
    for s in seen.iter().filter(|s| s.priority == prio) {
        let k = (s.ipv6, s.vrid);
        if let Some(prev) = last.insert(k, s.at)
            && s.at >= from
            && prev <= to
        {
            let g = s.at - prev;
            let w = worst.entry(k).or_default();
            *w = (*w).max(g);
        }
    }
    // A key silent from its last advert to the end counts that silence too.
    for (k, at) in &last {
        if *at < to {
            let w = worst.entry(*k).or_default();
            *w = (*w).max(to - *at);
        }
    }
    worst
}

/// Wait until every key of `insts` is advertised by n1 (priority 200) and not by n2.
fn settled(lab: &Lab, insts: &[Inst]) -> bool {
    wait_for(Duration::from_secs(30), || {
        let cap = Capture::start(&lab.client.ns);
        std::thread::sleep(Duration::from_millis(400));
        let seen = cap.stop();
        insts.iter().all(|i| {
            seen.iter()
                .any(|s| (s.ipv6, s.vrid) == key(i) && s.priority == 200)
                && !seen
                    .iter()
                    .any(|s| (s.ipv6, s.vrid) == key(i) && s.priority == 100)
        })
    })
    .is_some()
}

fn reload_case(which: Impl, reloads: usize) -> serde_json::Value {
    let untouched: Vec<Inst> = (1..=100)
        .map(|v| v4(v, 100, false))
        .chain((1..=50).map(|v| v6(v, 20, 2)))
        .collect();
    let changed = |extra: bool| -> Vec<Inst> { (101..=150).map(|v| v4(v, 100, extra)).collect() };
    let set_x: Vec<Inst> = (101..=200).map(|v| v6(v, 100, 3)).collect();
    let set_y: Vec<Inst> = (51..=100).chain(201..=250).map(|v| v6(v, 100, 3)).collect();
    let n1_config = |k: usize| -> Vec<Inst> {
        let mut c = untouched.clone();
        c.extend(changed(k % 2 == 1));
        c.extend(if k.is_multiple_of(2) {
            set_x.clone()
        } else {
            set_y.clone()
        });
        c
    };
    let mut n2_config = untouched.clone();
    n2_config.extend(changed(false));
    n2_config.extend(set_x.clone());
    n2_config.extend(set_y.clone());

    let mut lab = Lab::new(2);
    start(&mut lab, which, "n2", &n2_config, 100);
    let p1 = start(&mut lab, which, "n1", &n1_config(0), 200);
    if !settled(&lab, &untouched) {
        return json!({"case": "reload", "impl": which.name(), "error": "never settled"});
    }
    let cap = Capture::start(&lab.client.ns);
    std::thread::sleep(Duration::from_millis(1000));
    let from = Instant::now();
    for k in 1..=reloads {
        reload(&lab, which, p1, &n1_config(k));
        std::thread::sleep(Duration::from_millis(1500));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let to = Instant::now();
    let seen = cap.stop();
    let n1_gaps = gaps(&seen, 200, from, to);
    let mut worst_100 = Duration::ZERO;
    let mut worst_20 = Duration::ZERO;
    let mut over = 0;
    let mut taken = 0;
    for i in &untouched {
        let g = n1_gaps.get(&key(i)).copied().unwrap_or(to - from);
        let limit = Duration::from_millis(i.interval_ms * 3 / 2);
        if g > limit {
            over += 1;
        }
        if i.interval_ms == 20 {
            worst_20 = worst_20.max(g);
        } else {
            worst_100 = worst_100.max(g);
        }
        if seen
            .iter()
            .any(|s| s.at >= from && (s.ipv6, s.vrid) == key(i) && s.priority == 100)
        {
            taken += 1;
        }
    }
    let engine = engine_stats(&lab, which);
    json!({
        "case": "reload",
        "impl": which.name(),
        "n1_engine": engine,
        "reloads": reloads,
        "untouched": untouched.len(),
        "max_gap_ms_100ms_instances": ms(worst_100),
        "max_gap_ms_20ms_instances": ms(worst_20),
        "untouched_over_1.5x_interval": over,
        "false_takeovers": taken,
        "adverts_captured": seen.len(),
    })
}

/// kube-vrrp's own account of its engine on n1: the latest timer and the longest event.
fn engine_stats(lab: &Lab, which: Impl) -> serde_json::Value {
    if which != Impl::KubeVrrp {
        return serde_json::Value::Null;
    }
    let body = lab
        .http_get(&lab.node("n1").ns, AGENT_STATUS.parse().unwrap(), "/status")
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    json!({
        "max_timer_lateness_us": v["global"]["maxTimerLatenessUs"],
        "max_engine_busy_us": v["global"]["maxEngineBusyUs"],
    })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

fn log_bytes(lab: &Lab, which: Impl) -> u64 {
    ["n1", "n2"]
        .iter()
        .map(|n| {
            let name = match which {
                Impl::KubeVrrp => format!("agent-{n}.log"),
                Impl::Keepalived => format!("keepalived-{n}.log"),
            };
            std::fs::metadata(lab.dir().join(name))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum()
}

/// Transitions to Master so far on both nodes: kube-vrrp's counters, keepalived's log.
fn master_transitions(lab: &Lab, which: Impl) -> u64 {
    ["n1", "n2"]
        .iter()
        .map(|n| match which {
            Impl::KubeVrrp => {
                let body = lab
                    .http_get(&lab.node(n).ns, AGENT_STATUS.parse().unwrap(), "/status")
                    .unwrap_or_default();
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                v["instances"]
                    .as_object()
                    .map(|m| {
                        m.values()
                            .map(|i| i["counters"]["masterTransitions"].as_u64().unwrap_or(0))
                            .sum()
                    })
                    .unwrap_or(0)
            }
            Impl::Keepalived => lab
                .log(&format!("keepalived-{n}.log"))
                .matches("Entering MASTER STATE")
                .count() as u64,
        })
        .sum()
}

/// Floods bad-checksum VRRPv3 for VRIDs 1..=count from two threads in `ns`.
fn flood(ns: &str, count: u8, secs: u64) -> u64 {
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for t in 0..2u8 {
        let (sent, stop) = (sent.clone(), stop.clone());
        let ns_path = format!("/run/netns/{ns}");
        handles.push(std::thread::spawn(move || {
            use socket2::{Domain, Protocol, SockAddr, Socket, Type};
            let f = std::fs::File::open(&ns_path).unwrap();
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).unwrap();
            s.bind_device(Some(b"eth0")).unwrap();
            s.set_multicast_ttl_v4(255).unwrap();
            let dst = SockAddr::from(std::net::SocketAddr::new(
                "224.0.0.18".parse::<IpAddr>().unwrap(),
                0,
            ));
            let mut vrid = 1 + t;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // v3 advert, priority 255, one address, checksum deliberately wrong.
                let pkt = [
                    0x31, vrid, 255, 1, 0x00, 0x0a, 0xde, 0xad, 203, 0, 113, vrid,
                ];
                if s.send_to(&pkt, &dst).is_ok() {
                    n += 1;
                }
                vrid = if vrid >= count - 1 { 1 + t } else { vrid + 2 };
            }
            sent.fetch_add(n, Ordering::Relaxed);
        }));
    }
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    sent.load(Ordering::Relaxed)
}

fn flood_case(which: Impl, secs: u64) -> serde_json::Value {
    let insts: Vec<Inst> = (1..=150).map(|v| v4(v, 100, false)).collect();
    let mut lab = Lab::new(2);
    start(&mut lab, which, "n2", &insts, 100);
    start(&mut lab, which, "n1", &insts, 200);
    if !settled(&lab, &insts) {
        return json!({"case": "flood", "impl": which.name(), "error": "never settled"});
    }
    let before = master_transitions(&lab, which);
    let log_before = log_bytes(&lab, which);
    let cap = Capture::start(&lab.client.ns);
    let from = Instant::now();
    let sent = flood(&lab.client.ns, 150, secs);
    let to = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let seen = cap.stop();
    let after = master_transitions(&lab, which);
    let log = log_bytes(&lab, which) - log_before;
    let n1_gaps = gaps(&seen, 200, from, to);
    let worst = n1_gaps.values().max().copied().unwrap_or_default();
    let taken = insts
        .iter()
        .filter(|i| {
            seen.iter()
                .any(|s| s.at >= from && (s.ipv6, s.vrid) == key(i) && s.priority == 100)
        })
        .count();
    let engine = engine_stats(&lab, which);
    json!({
        "case": "flood",
        "impl": which.name(),
        "n1_engine": engine,
        "instances": insts.len(),
        "seconds": secs,
        "packets_sent": sent,
        "packets_per_second": (sent as f64 / (to - from).as_secs_f64()).round(),
        "master_transitions": after - before,
        "instances_taken_over_by_backup": taken,
        "log_bytes": log,
        "max_gap_ms_n1": ms(worst),
    })
}

/// `big` case: one VirtualIP with 2,000 IPv6 addresses becomes master on n1 beside 50 IPv6
/// instances at 20 ms: how long until all 2,000 are bound, and the longest advertisement gap
/// of the 20 ms instances meanwhile.
fn big_case(which: Impl) -> serde_json::Value {
    let mut insts: Vec<Inst> = (1..=50).map(|v| v6(v, 20, 2)).collect();
    let big = Inst {
        ipv6: true,
        vrid: 200,
        interval_ms: 100,
        addresses: (1..=2000u32)
            .map(|i| format!("2001:db8:4::{:x}:{:x}/64", i >> 8, i & 0xff))
            .collect(),
    };
    let mut lab = Lab::new(2);
    let pid_n1 = start(&mut lab, which, "n1", &insts, 200);
    if !settled(&lab, &insts) {
        return json!({"case": "big", "impl": which.name(), "error": "never settled"});
    }
    let cap = Capture::start(&lab.client.ns);
    std::thread::sleep(Duration::from_millis(500));
    insts.push(big);
    let t0 = Instant::now();
    reload(&lab, which, pid_n1, &insts);
    let ns = lab.node("n1").ns.clone();
    let bound = wait_for(Duration::from_secs(120), || {
        // Each look is a dump of 2,000+ addresses: not too often, it competes with the binds.
        std::thread::sleep(Duration::from_millis(90));
        let out = lab.exec(&ns, &["ip", "-6", "-o", "addr", "show", "dev", "eth0"]);
        String::from_utf8_lossy(&out.stdout)
            .matches("2001:db8:4::")
            .count()
            >= 2000
    });
    std::thread::sleep(Duration::from_millis(500));
    let to = Instant::now();
    let seen = cap.stop();
    let worst = gaps(&seen, 200, t0, to)
        .into_iter()
        .filter(|(k, _)| k.1 <= 50)
        .map(|(_, g)| g)
        .max()
        .unwrap_or_default();
    // From the reload: includes reading the file and Master_Down_Interval (no backup here).
    json!({
        "case": "big",
        "impl": which.name(),
        "addresses": 2000,
        "reload_to_all_bound_ms": bound.map(|_| ms(t0.elapsed().min(to - t0))),
        "bound_within_ms": bound.map(ms),
        "max_gap_ms_20ms_instances": ms(worst),
        "n1_engine": engine_stats(&lab, which),
    })
}

/// Reloads and floods: untouched instances keep their timing while others are reloaded
/// (SIGHUP), and a flood of foreign advertisements causes no takeover. kube-vrrp against
/// keepalived in the same run. Prints JSON lines. Needs root and keepalived.
#[derive(clap::Parser)]
struct Args {
    /// Reloads in the reload case.
    #[arg(long, default_value_t = 10)]
    reloads: usize,
    /// Seconds of flood.
    #[arg(long, default_value_t = 10)]
    flood_secs: u64,
    /// reload, flood or big only (default: reload and flood).
    #[arg(long)]
    case: Option<String>,
    /// kube-vrrp or keepalived only.
    #[arg(long)]
    only: Option<String>,
}

fn main() {
    let Args {
        reloads,
        flood_secs: secs,
        case,
        only,
    } = clap::Parser::parse();
    let cases: Vec<String> = match case {
        Some(c) => vec![c],
        None => vec!["reload".into(), "flood".into()],
    };
    let impls: Vec<Impl> = match only.as_deref() {
        Some("kube-vrrp") => vec![Impl::KubeVrrp],
        Some("keepalived") => vec![Impl::Keepalived],
        _ => vec![Impl::KubeVrrp, Impl::Keepalived],
    };
    for case in &cases {
        for &which in &impls {
            let r = match case.as_str() {
                "reload" => reload_case(which, reloads),
                "flood" => flood_case(which, secs),
                "big" => big_case(which),
                other => {
                    eprintln!("unknown case {other}: reload or flood");
                    std::process::exit(2);
                }
            };
            println!("{r}");
        }
    }
}
