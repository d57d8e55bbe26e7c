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

use kube_vrrp_e2e::{AGENT_STATUS, Lab, kube_vrrp_binary, wait_for};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const VIP: &str = "198.51.100.50";
const THREADS: usize = 4;

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
    let n1 = lab.spawn_agent(&bin, "n1", &yaml, true);
    lab.spawn_agent(&bin, "n2", &yaml, true);
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
    sh(
        &client,
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
    for n in ["n1", "n2"] {
        let ns = lab.node(n).ns.clone();
        sh(&ns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
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
    /// NAT, FullNAT or DirectRouting only.
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

        // The master director crashes under load.
        let load = Load::start(&client, vip);
        std::thread::sleep(Duration::from_millis(500));
        let crashed = Instant::now();
        lab.signal(n1, Signal::SIGKILL);
        let n = lab.node("n1").clone();
        lab.set_link(&n, false);
        std::thread::sleep(Duration::from_secs(2));
        let samples = load.stop();
        println!(
            "{}",
            json!({"forwarding": forwarding, "event": "master director crashed (VRRPv3 100 ms)",
                "client_outage_ms": ms(longest_gap(&samples, crashed)),
                "failed": samples.iter().filter(|s| !s.2 && s.0 >= crashed).count(),
                "n2_holds": lab.holds(&lab.node("n2").ns.clone(), VIP)})
        );
        let _ = nginx;
    }
    println!(
        "{}",
        json!({"note": "keepalived is not compared: its virtual servers are IPVS, which this kernel lacks; the baseline is the same requests straight to one real server"})
    );
}
