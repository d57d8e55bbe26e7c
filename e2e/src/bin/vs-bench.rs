//! Virtual servers: HTTP through the director against HTTP straight to one real server. The
//! namespace lab: directors n1 (master) and n2 running `kube-vrrp agent` with one virtual
//! server (VIP:80, round robin, HTTP check every 200 ms, retry 1 after 100 ms) over nginx on
//! n3 and n4; a client at 203.0.113.100 (real servers route it through the VIP, so NAT works).
//! For each forwarding (NAT, FullNAT, DirectRouting: the real servers hold the VIP on `lo`)
//! it measures, with 4 client threads opening a new
//! connection per request (a virtual server balances connections):
//!
//! * requests per second and p50 / p99 latency through the director, and the same straight to
//!   n3 (the overhead ratio);
//! * nginx on n4 killed under load: failed requests from the kill until the director's
//!   `/status` shows it down, and after;
//! * the master director crashed under load (agent SIGKILLed, link cut): the longest time the
//!   client saw no successful request.
//!
//! keepalived cannot be compared: its load balancing is IPVS, which this kernel lacks.
//! Prints JSON lines. Needs root, nginx and nft. Usage: vs-bench [--seconds S] [--only NAT|FullNAT|DirectRouting]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube_vrrp_e2e::{AGENT_STATUS, Lab, ask, keep_alive, kube_vrrp_binary, wait_for};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const VIP: &str = "198.51.100.50";
const THREADS: usize = 4;
/// Long-lived connections carried over a director crash.
const SURVIVORS: usize = 20;

/// One request's end and whether it got a 200.
type Sample = (Instant, Duration, bool);

/// Client threads in namespace `ns` hammering `target` until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(ns: &str, target: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..THREADS)
            .map(|_| {
                let (stop, samples, ns) = (stop.clone(), samples.clone(), ns.to_string());
                std::thread::spawn(move || {
                    let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
                    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                    let mut mine = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let ok = get(target);
                        mine.push((Instant::now(), t.elapsed(), ok));
                        if !ok {
                            // A failed connect may return at once: do not spin.
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                    samples.lock().unwrap().extend(mine);
                })
            })
            .collect();
        Load {
            stop,
            samples,
            threads,
        }
    }

    fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let mut s = Arc::try_unwrap(self.samples).unwrap().into_inner().unwrap();
        s.sort_by_key(|x| x.0);
        s
    }
}

/// One HTTP/1.1 GET on a new connection; true on a 200.
fn get(target: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&target, Duration::from_millis(500)) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_millis(500))).ok();
    if s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200")
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    ms(sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}

/// rps, p50, p99 of the successful requests; and the failures.
fn throughput(samples: &[Sample], window: Duration) -> Value {
    let mut lat: Vec<Duration> = samples.iter().filter(|s| s.2).map(|s| s.1).collect();
    lat.sort();
    json!({
        "requests": lat.len(),
        "failed": samples.iter().filter(|s| !s.2).count(),
        "rps": (lat.len() as f64 / window.as_secs_f64()).round(),
        "p50_ms": pct(&lat, 0.5),
        "p99_ms": pct(&lat, 0.99),
    })
}

/// The client reaches the VIP on the segment, from 203.0.113.100 (another subnet: the real
/// servers route it back through the VIP, so NAT works).
fn vip_route(lab: &Lab, client: &str) {
    lab.exec(
        client,
        &[
            "ip",
            "route",
            "replace",
            &format!("{VIP}/32"),
            "dev",
            "eth0",
            "src",
            "203.0.113.100",
        ],
    );
}

fn lab(forwarding: &str) -> (Lab, u32, Vec<u32>) {
    let mut lab = Lab::new(4);
    let yaml = format!(
        "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: web}}\nspec:\n  addresses: [\"{VIP}/24\"]\n  \
         virtualRouterID: 51\n  advertInterval: 100ms\n  priorities: [{{node: n1, priority: 200}}, {{node: n2, priority: 150}}]\n  \
         virtualServers:\n  - address: {VIP}\n    port: 80\n    forwarding: {forwarding}\n    \
         realServers: [{{address: 198.51.100.13}}, {{address: 198.51.100.14}}]\n    \
         check: {{delayLoop: 200ms, connectTimeout: 100ms, retry: 1, delayBeforeRetry: 100ms, http: {{path: /}}}}\n"
    );
    let bin = kube_vrrp_binary();
    let file = lab.dir().join("vips.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let (bin, file) = (bin.display().to_string(), file.display().to_string());
    let mut pids = Vec::new();
    for n in ["n1", "n2"] {
        // NAT and full NAT share connection tracking, so connections survive a takeover.
        let mut argv = kube_vrrp_e2e::standalone_agent_argv(&bin, &file, n);
        if forwarding != "DirectRouting" {
            argv.extend(["--sync-connections", "eth0"]);
        }
        let ns = lab.node(n).ns.clone();
        pids.push(lab.spawn(&ns, &argv, &format!("agent-{n}.log")));
        let addr: SocketAddr = AGENT_STATUS.parse().unwrap();
        let up = wait_for(Duration::from_secs(10), || {
            lab.http_get(&ns, addr, "/status").is_ok()
        });
        assert!(
            up.is_some(),
            "agent on {n}: {}",
            lab.log(&format!("agent-{n}.log"))
        );
    }
    let n1 = pids[0];
    let nginx = ["n3", "n4"]
        .iter()
        .map(|n| lab.spawn_nginx(n, 80, None))
        .collect();
    let client = lab.client.ns.clone();
    let sh = |ns: &str, args: &[&str]| {
        lab.exec(ns, args);
    };
    sh(
        &client,
        &["ip", "addr", "add", "203.0.113.100/24", "dev", "eth0"],
    );
    vip_route(&lab, &client);
    for n in ["n1", "n2"] {
        let ns = lab.node(n).ns.clone();
        sh(&ns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        // As the LVS-NAT HOWTO says: a director sends no ICMP redirects (the client would be
        // told to reach a real server around it).
        sh(
            &ns,
            &["sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0"],
        );
        sh(
            &ns,
            &["sysctl", "-qw", "net.ipv4.conf.eth0.send_redirects=0"],
        );
        sh(
            &ns,
            &["ip", "route", "add", "203.0.113.0/24", "dev", "eth0"],
        );
    }
    for n in ["n3", "n4"] {
        let ns = lab.node(n).ns.clone();
        if forwarding == "DirectRouting" {
            // The real servers hold the VIP on lo and answer the client themselves.
            sh(
                &ns,
                &["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"],
            );
            sh(&ns, &["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1"]);
            sh(&ns, &["sysctl", "-qw", "net.ipv4.conf.all.arp_announce=2"]);
            sh(
                &ns,
                &["ip", "route", "add", "203.0.113.0/24", "dev", "eth0"],
            );
        } else {
            sh(&ns, &["ip", "route", "add", "203.0.113.0/24", "via", VIP]);
        }
    }
    (lab, n1, nginx)
}

fn up(lab: &Lab, node: &str) -> String {
    let addr: SocketAddr = AGENT_STATUS.parse().unwrap();
    lab.http_get(&lab.node(node).ns, addr, "/status")
        .ok()
        .and_then(|b| serde_json::from_str::<Value>(&b).ok())
        .and_then(|v| v["virtualServers"][0]["up"].as_str().map(String::from))
        .unwrap_or_default()
}

/// The director's overhead against honest baselines (NAT): the same client and real server
/// with n1 a plain router both ways (no rules of ours apply), and a minimal hand-written
/// DNAT rule set on n1; then both again with nftables' flowtable fast path for established
/// flows.
fn baselines(lab: &Lab, client: &str, window: Duration, ours: &Value) {
    let n1 = lab.node("n1").ns.clone();
    let run = |target: &str| {
        let load = Load::start(client, target.parse().unwrap());
        std::thread::sleep(window);
        throughput(&load.stop(), window)
    };
    // Each measurement from a client address of its own: one run's connections, still
    // tracked on the director (TIME_WAIT), must not clash with the next run's reused ports.
    let from = |src: &str, to: &str| {
        lab.exec(
            client,
            &["ip", "addr", "add", &format!("{src}/32"), "dev", "eth0"],
        );
        lab.exec(
            client,
            &[
                "ip",
                "route",
                "replace",
                to,
                "via",
                "198.51.100.11",
                "src",
                src,
            ],
        );
    };
    lab.exec(
        &n1,
        &["nft", "add table ip bench; add chain ip bench pre { type nat hook prerouting priority -110; }; \
           add rule ip bench pre ip daddr 198.51.100.60 tcp dport 80 dnat to numgen inc mod 2 map { 0 : 198.51.100.13 . 80, 1 : 198.51.100.14 . 80 }"],
    );
    from("203.0.113.101", "198.51.100.13/32");
    let routed = run("198.51.100.13:80");
    from("203.0.113.102", "198.51.100.60/32");
    let hand = run("198.51.100.60:80");
    lab.exec(
        &n1,
        &["nft", "add table inet benchft { flowtable f { hook ingress priority 0; devices = { eth0 }; }; \
           chain fwd { type filter hook forward priority 0; policy accept; meta l4proto tcp flow add @f; }; }"],
    );
    from("203.0.113.103", "198.51.100.13/32");
    let routed_ft = run("198.51.100.13:80");
    from("203.0.113.104", &format!("{VIP}/32"));
    let ours_ft = run(&format!("{VIP}:80"));
    lab.exec(
        &n1,
        &["nft", "delete table inet benchft; delete table ip bench"],
    );
    for to in ["198.51.100.13/32", "198.51.100.60/32"] {
        lab.exec(client, &["ip", "route", "del", to]);
    }
    vip_route(lab, client);
    let ratio = |a: &Value, b: &Value, k: &str| {
        (a[k].as_f64().unwrap_or(f64::NAN) / b[k].as_f64().unwrap_or(f64::NAN) * 100.0).round()
            / 100.0
    };
    println!(
        "{}",
        json!({"forwarding": "NAT", "event": "overhead against baselines",
            "plain_router": routed, "hand_written_dnat": hand, "kube_vrrp": ours,
            "p50_ratio_vs_router": ratio(ours, &routed, "p50_ms"),
            "rps_ratio_vs_router": ratio(ours, &routed, "rps"),
            "p50_ratio_vs_hand_dnat": ratio(ours, &hand, "p50_ms"),
            "rps_ratio_vs_hand_dnat": ratio(ours, &hand, "rps"),
            "flowtable": {"plain_router": routed_ft, "kube_vrrp": ours_ft,
                "rps_ratio_vs_router_without": ratio(&ours_ft, &routed, "rps")}})
    );
}

/// One GET on a new connection: the body (the real server's name).
fn get_body(target: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&target, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok();
    s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    Some(buf.split_once("\r\n\r\n")?.1.trim().to_string())
}

/// The spread per weight (weights 1 to 8 over 8 real servers, 2,000 connections) by
/// weighted round robin (NAT) and by direct routing's hashed table; then the cost of a
/// flapping real server: its check flips every 100 ms for 10 s, and the agent's children's
/// CPU (the `nft` runs it waited for) is divided by the flips.
fn spread_and_flaps() {
    const CONNS: usize = 2000;
    for forwarding in ["NAT", "DirectRouting"] {
        let mut lab = Lab::new(10);
        let reals: Vec<String> = (3..=10)
            .map(|i| format!("{{address: 198.51.100.{}, weight: {}}}", 10 + i, i - 2))
            .collect();
        let yaml = format!(
            "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: web}}\nspec:\n  addresses: [\"{VIP}/24\"]\n  \
             virtualRouterID: 51\n  advertInterval: 100ms\n  priorities: [{{node: n1, priority: 200}}]\n  \
             virtualServers:\n  - address: {VIP}\n    port: 80\n    forwarding: {forwarding}\n    scheduler: WeightedRoundRobin\n    \
             realServers: [{}]\n    check: {{delayLoop: 100ms, connectTimeout: 100ms, retry: 0, tcp: {{}}}}\n",
            reals.join(", ")
        );
        let bin = kube_vrrp_binary();
        let n1 = lab.spawn_agent(&bin, "n1", &yaml, true);
        lab.exec(
            &lab.node("n1").ns.clone(),
            &["sysctl", "-qw", "net.ipv4.ip_forward=1"],
        );
        for i in 3..=10 {
            let n = format!("n{i}");
            let ns = lab.node(&n).ns.clone();
            if forwarding == "DirectRouting" {
                lab.exec(
                    &ns,
                    &["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"],
                );
                lab.exec(&ns, &["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1"]);
                lab.exec(&ns, &["sysctl", "-qw", "net.ipv4.conf.all.arp_announce=2"]);
            } else {
                lab.exec(&ns, &["ip", "route", "replace", "default", "via", VIP]);
            }
            lab.spawn_nginx(&n, 80, None);
        }
        if forwarding == "NAT" {
            // The client on another subnet: replies come back through the director.
            let c = lab.client.ns.clone();
            lab.exec(
                &c,
                &["ip", "addr", "add", "203.0.113.100/24", "dev", "eth0"],
            );
            vip_route(&lab, &c);
            lab.exec(
                &lab.node("n1").ns.clone(),
                &["ip", "route", "add", "203.0.113.0/24", "dev", "eth0"],
            );
        }
        let ready = wait_for(Duration::from_secs(15), || {
            up(&lab, "n1") == "8/8" && lab.holds(&lab.node("n1").ns, VIP)
        });
        assert!(ready.is_some(), "not ready: {}", lab.log("agent-n1.log"));
        let client = lab.client.ns.clone();
        let target: SocketAddr = format!("{VIP}:80").parse().unwrap();
        let bodies: Vec<Option<String>> = std::thread::spawn(move || {
            let f = std::fs::File::open(format!("/run/netns/{client}")).unwrap();
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            (0..CONNS).map(|_| get_body(target)).collect()
        })
        .join()
        .unwrap();
        let total_w: f64 = (1..=8).map(f64::from).sum();
        let per: Vec<Value> = (1..=8u32)
            .map(|w| {
                let name = format!("n{}", w + 2);
                let got = bodies
                    .iter()
                    .filter(|b| b.as_deref() == Some(name.as_str()))
                    .count();
                let share = got as f64 / CONNS as f64 * 100.0;
                let want = f64::from(w) / total_w * 100.0;
                json!({"weight": w, "connections": got,
                    "share_pct": (share * 100.0).round() / 100.0,
                    "expected_pct": (want * 100.0).round() / 100.0,
                    "error_points": ((share - want) * 100.0).round() / 100.0})
            })
            .collect();
        let failed = bodies.iter().filter(|b| b.is_none()).count();
        println!(
            "{}",
            json!({"forwarding": forwarding, "event": "spread per weight (weighted round robin)",
                "connections": CONNS, "failed": failed, "servers": per})
        );

        // A flapping real server: n3's port refuses, then accepts, every 100 ms.
        let n3 = lab.node("n3").ns.clone();
        lab.exec(&n3, &["nft", "add table inet flap; add chain inet flap in { type filter hook input priority 0; }"]);
        let children_cpu = || -> f64 {
            let stat = std::fs::read_to_string(format!("/proc/{n1}/stat")).unwrap_or_default();
            let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or_default();
            let f: Vec<&str> = rest.split_whitespace().collect();
            // Fields 16 and 17 (cutime, cstime) are the 14th and 15th after the name.
            let ticks: f64 = f.get(13).and_then(|v| v.parse().ok()).unwrap_or(0.0)
                + f.get(14).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            ticks * 1000.0 / 100.0
        };
        let transitions = |lab: &Lab| -> u64 {
            let addr: SocketAddr = AGENT_STATUS.parse().unwrap();
            lab.http_get(&lab.node("n1").ns, addr, "/status")
                .ok()
                .and_then(|b| serde_json::from_str::<Value>(&b).ok())
                .and_then(|v| v["virtualServers"][0]["realServers"][0]["transitions"].as_u64())
                .unwrap_or(0)
        };
        let (cpu0, t0) = (children_cpu(), transitions(&lab));
        let start = Instant::now();
        let mut block = true;
        while start.elapsed() < Duration::from_secs(10) {
            let cmd = if block {
                "add rule inet flap in tcp dport 80 reject with tcp reset"
            } else {
                "flush chain inet flap in"
            };
            lab.exec(&n3, &["nft", cmd]);
            block = !block;
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        let (cpu1, t1) = (children_cpu(), transitions(&lab));
        let flips = t1.saturating_sub(t0);
        println!(
            "{}",
            json!({"forwarding": forwarding, "event": "real server flapping every 100 ms for 10 s",
                "transitions": flips, "nft_cpu_ms": cpu1 - cpu0,
                "nft_cpu_ms_per_flap": if flips > 0 { ((cpu1 - cpu0) / flips as f64 * 100.0).round() / 100.0 } else { f64::NAN }})
        );
    }
}

/// The longest time without a successful request among `samples` after `from`.
fn longest_gap(samples: &[Sample], from: Instant) -> Duration {
    let mut last_ok = from;
    let mut gap = Duration::ZERO;
    for (t, _, ok) in samples.iter().filter(|s| s.0 >= from) {
        if *ok {
            gap = gap.max(*t - last_ok);
            last_ok = *t;
        }
    }
    gap
}

/// Virtual servers: HTTP through the director against HTTP straight to one real server, per
/// forwarding (NAT, FullNAT, DirectRouting): the overhead, the failed requests when a real
/// server dies, the outage when the master director crashes. Prints JSON lines. Needs root,
/// nginx and nft.
#[derive(clap::Parser)]
struct Args {
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// NAT, FullNAT, DirectRouting or spread (the weights and flap cost) only.
    #[arg(long)]
    only: Option<String>,
}

fn main() {
    let Args { seconds, only } = clap::Parser::parse();
    kube_vrrp_e2e::require_root();
    let window = Duration::from_secs(seconds);
    let vip: SocketAddr = format!("{VIP}:80").parse().unwrap();
    let direct: SocketAddr = "198.51.100.13:80".parse().unwrap();
    for forwarding in ["NAT", "FullNAT", "DirectRouting"] {
        if only.as_deref().is_some_and(|o| o != forwarding) {
            continue;
        }
        let (mut lab, n1, mut nginx) = lab(forwarding);
        let ready = wait_for(Duration::from_secs(10), || {
            up(&lab, "n1") == "2/2" && lab.holds(&lab.node("n1").ns, VIP)
        });
        assert!(
            ready.is_some(),
            "director not ready: {}",
            lab.log("agent-n1.log")
        );
        let client = lab.client.ns.clone();

        let load = Load::start(&client, direct);
        std::thread::sleep(window);
        let straight = throughput(&load.stop(), window);
        let load = Load::start(&client, vip);
        std::thread::sleep(window);
        let through = throughput(&load.stop(), window);
        println!(
            "{}",
            json!({"forwarding": forwarding, "direct": straight, "director": through,
                "p50_ratio": (through["p50_ms"].as_f64().unwrap() / straight["p50_ms"].as_f64().unwrap() * 100.0).round() / 100.0,
                "rps_ratio": (through["rps"].as_f64().unwrap() / straight["rps"].as_f64().unwrap() * 100.0).round() / 100.0})
        );

        if forwarding == "NAT" {
            baselines(&lab, &client, window, &through);
        }

        // A real server dies under load.
        let load = Load::start(&client, vip);
        std::thread::sleep(Duration::from_millis(500));
        let killed = Instant::now();
        let pid = nginx.remove(1);
        lab.signal_tree(pid, Signal::SIGKILL);
        lab.signal(pid, Signal::SIGKILL);
        wait_for(Duration::from_secs(5), || up(&lab, "n1") == "1/2");
        let removed = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let samples = load.stop();
        let failed = |a: Instant, b: Instant| {
            samples
                .iter()
                .filter(|s| !s.2 && s.0 >= a && s.0 < b)
                .count()
        };
        println!(
            "{}",
            json!({"forwarding": forwarding, "event": "real server killed",
                "removed_after_ms": ms(removed - killed),
                "failed_until_removal": failed(killed, removed),
                "failed_after_removal": failed(removed, Instant::now()),
                "requests": samples.len()})
        );

        // Established connections across the crash: N kept alive, asked before and after.
        let mut kept = keep_alive(&client, vip, SURVIVORS);
        let before: Vec<Option<String>> = kept.iter_mut().map(|s| ask(s).ok()).collect();
        if forwarding != "DirectRouting" {
            // The backup holds the master's entries (conntrackd) before the crash.
            let n2 = lab.node("n2").ns.clone();
            let ports: Vec<String> = kept
                .iter()
                .filter_map(|s| s.local_addr().ok())
                .map(|a| format!("sport={} ", a.port()))
                .collect();
            let synced = wait_for(Duration::from_secs(5), || {
                let out = lab.exec(&n2, &["conntrack", "-L", "-p", "tcp", "--orig-dst", VIP]);
                let text = String::from_utf8_lossy(&out.stdout);
                ports.iter().all(|p| text.contains(p.as_str()))
            });
            eprintln!(
                "{forwarding}: the backup holds the {} entries: {synced:?}",
                ports.len()
            );
        }

        // The master director crashes under load.
        let load = Load::start(&client, vip);
        std::thread::sleep(Duration::from_millis(500));
        let crashed = Instant::now();
        lab.signal(n1, Signal::SIGKILL);
        let n = lab.node("n1").clone();
        lab.set_link(&n, false);
        std::thread::sleep(Duration::from_secs(2));
        let samples = load.stop();
        let after: Vec<Option<String>> = kept.iter_mut().map(|s| ask(s).ok()).collect();
        eprintln!("{forwarding}: established before {before:?}, after {after:?}");
        let survived = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b.is_some() && b == a)
            .count();
        println!(
            "{}",
            json!({"forwarding": forwarding, "event": "master director crashed (VRRPv3 100 ms)",
                "client_outage_ms": ms(longest_gap(&samples, crashed)),
                "failed": samples.iter().filter(|s| !s.2 && s.0 >= crashed).count(),
                "n2_holds": lab.holds(&lab.node("n2").ns.clone(), VIP),
                "established_kept": survived, "established": SURVIVORS,
                "shared_tracking": forwarding != "DirectRouting"})
        );
        let _ = nginx;
    }
    if only.as_deref().is_none_or(|o| o == "spread") {
        spread_and_flaps();
    }
    println!(
        "{}",
        json!({"note": "keepalived is not compared: its virtual servers are IPVS, which this kernel lacks; the baseline is the same requests straight to one real server"})
    );
}
