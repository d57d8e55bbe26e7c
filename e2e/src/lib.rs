//! The network-namespace lab: N node namespaces and a client namespace joined by a bridge
//! (198.51.100.0/24 + 2001:db8:1::/64), built with `ip` and torn down by name on drop.
//!
//! ```text
//!   <p>-n1 eth0 198.51.100.11 ─┐
//!   <p>-n2 eth0 198.51.100.12 ─┼─ br0 (in <p>-br, multicast snooping off)
//!   <p>-c  eth0 198.51.100.100 ┘
//! ```
//! Everything runs inside these namespaces; nothing touches the host's network.

pub mod standin;
pub mod stats;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static LABS: AtomicU32 = AtomicU32::new(0);

/// Where agents started with `listen` serve /status and /metrics, inside their namespace.
pub const AGENT_STATUS: &str = "127.0.0.1:9650";

/// Runs a command, panicking with its output when it fails.
pub fn sh(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", args[0]))
}

/// Fails loudly (never skips) when the lab cannot be built here.
pub fn require_root() {
    let uid = nix::unistd::geteuid();
    assert!(
        uid.is_root(),
        "the namespace lab needs root (ip netns, raw sockets): run the tests as root"
    );
}

/// A lab node (or the client).
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub ns: String,
    /// The bridge-side veth, in the bridge namespace.
    pub port: String,
    pub ipv4: String,
    pub ipv6: String,
}

pub struct Lab {
    pub prefix: String,
    pub bridge_ns: String,
    pub nodes: Vec<Node>,
    pub client: Node,
    dir: PathBuf,
    children: Vec<Child>,
    /// Namespaces beyond the nodes, client and bridge (e.g. the API stand-in's).
    extra_ns: Vec<String>,
}

impl Lab {
    /// Builds `n` nodes (n1..nN at .11, .12, ...) and a client (.100).
    pub fn new(n: usize) -> Lab {
        require_root();
        let id = LABS.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("kv{}x{}", std::process::id() % 100_000, id);
        let bridge_ns = format!("{prefix}-br");
        let dir = std::env::temp_dir().join(format!("kube-vrrp-lab-{prefix}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut lab = Lab {
            bridge_ns: bridge_ns.clone(),
            nodes: Vec::new(),
            client: Node {
                name: "client".into(),
                ns: format!("{prefix}-c"),
                port: "pc".into(),
                ipv4: "198.51.100.100".into(),
                ipv6: "2001:db8:1::100".into(),
            },
            prefix,
            dir,
            children: Vec::new(),
            extra_ns: Vec::new(),
        };
        sh(&["ip", "netns", "add", &bridge_ns]);
        sh(&["ip", "-n", &bridge_ns, "link", "set", "lo", "up"]);
        sh(&[
            "ip",
            "-n",
            &bridge_ns,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
            "forward_delay",
            "0",
        ]);
        sh(&["ip", "-n", &bridge_ns, "link", "set", "br0", "up"]);
        for i in 1..=n {
            let node = Node {
                name: format!("n{i}"),
                ns: format!("{}-n{i}", lab.prefix),
                port: format!("p{i}"),
                ipv4: format!("198.51.100.{}", 10 + i),
                ipv6: format!("2001:db8:1::{}", 10 + i),
            };
            // Owned before it exists: a failure while building it still deletes it.
            lab.nodes.push(node.clone());
            lab.attach(&node);
        }
        let client = lab.client.clone();
        lab.attach(&client);
        lab
    }

    fn attach(&self, node: &Node) {
        sh(&["ip", "netns", "add", &node.ns]);
        sh(&["ip", "-n", &node.ns, "link", "set", "lo", "up"]);
        let addrs = [format!("{}/24", node.ipv4), format!("{}/64", node.ipv6)];
        self.plug(&node.ns, "eth0", &node.port, "br0", &addrs);
    }

    /// A veth `dev` in namespace `ns`, its peer `port` enslaved to `bridge`, with `addrs`
    /// (IPv6 without duplicate address detection), up.
    fn plug(&self, ns: &str, dev: &str, port: &str, bridge: &str, addrs: &[String]) {
        let (br_ns, link) = (self.bridge_ns.as_str(), "link");
        sh(&[
            "ip", link, "add", dev, "netns", ns, "type", "veth", "peer", "name", port, "netns",
            br_ns,
        ]);
        sh(&[
            "ip", "-n", br_ns, link, "set", "dev", port, "master", bridge, "up",
        ]);
        for a in addrs {
            let mut args = vec!["ip", "-n", ns, "addr", "add", a.as_str(), "dev", dev];
            if a.contains(':') {
                args.push("nodad");
            }
            sh(&args);
        }
        sh(&["ip", "-n", ns, link, "set", "dev", dev, "up"]);
    }

    /// Adds the management segment 203.0.113.0/24 on a second bridge: an `api` namespace at
    /// 203.0.113.1 (where the Kubernetes API stand-in runs) and `eth1` on every node
    /// (203.0.113.1N) and on the client (203.0.113.100).
    pub fn add_management(&mut self) -> Node {
        sh(&[
            "ip",
            "-n",
            &self.bridge_ns,
            "link",
            "add",
            "br1",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        sh(&["ip", "-n", &self.bridge_ns, "link", "set", "br1", "up"]);
        let api = Node {
            name: "api".into(),
            ns: format!("{}-api", self.prefix),
            port: "mga".into(),
            ipv4: "203.0.113.1".into(),
            ipv6: "2001:db8:3::1".into(),
        };
        sh(&["ip", "netns", "add", &api.ns]);
        // Owned from here: a failure below must still delete it.
        self.extra_ns.push(api.ns.clone());
        sh(&["ip", "-n", &api.ns, "link", "set", "lo", "up"]);
        let mut members: Vec<(String, String, String)> =
            vec![(api.ns.clone(), "mga".into(), "203.0.113.1".into())];
        for (i, n) in self.nodes.iter().enumerate() {
            members.push((
                n.ns.clone(),
                format!("mg{}", i + 1),
                format!("203.0.113.{}", 11 + i),
            ));
        }
        members.push((self.client.ns.clone(), "mgc".into(), "203.0.113.100".into()));
        for (ns, port, addr) in members {
            let dev = if ns == api.ns { "eth0" } else { "eth1" };
            self.plug(&ns, dev, &port, "br1", &[format!("{addr}/24")]);
        }
        api
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// A scratch directory of this lab (configs, logs), removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs a command inside a node's namespace.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Starts a long-running process in a namespace; killed on drop.
    pub fn spawn(&mut self, ns: &str, args: &[&str], log: &str) -> u32 {
        let log = std::fs::File::create(self.dir.join(log)).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Starts keepalived (VRRP only, in the foreground, logging to `keepalived-NODE.log`) on a
    /// node with `conf`, with pid files of its own so several can run side by side.
    pub fn spawn_keepalived(&mut self, node: &str, conf: &str) -> u32 {
        let ns = self.node(node).ns.clone();
        let file = self.dir.join(format!("keepalived-{node}.conf"));
        std::fs::write(&file, conf).unwrap();
        let pid = |n: &str| {
            self.dir
                .join(format!("{node}-{n}.pid"))
                .display()
                .to_string()
        };
        let (main, vrrp, chk) = (pid("main"), pid("vrrp"), pid("chk"));
        let conf = file.display().to_string();
        let args = [
            "keepalived",
            "-n",
            "-l",
            "-D",
            "-G",
            "-P",
            "-f",
            &conf,
            "-p",
            &main,
            "-r",
            &vrrp,
            "-c",
            &chk,
        ];
        self.spawn(&ns, &args, &format!("keepalived-{node}.log"))
    }

    /// Starts `kube-vrrp agent --standalone` on a node with the VirtualIP YAML `yaml`, logging
    /// to `agent-NODE.log`; with `listen`, serving /status there (127.0.0.1:9650) and returning
    /// once it answers.
    pub fn spawn_agent(&mut self, bin: &Path, node: &str, yaml: &str, listen: bool) -> u32 {
        let file = self.dir.join(format!("vip-{node}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        self.spawn_agent_with_file(bin, node, &file.display().to_string(), listen)
    }

    /// As [`Lab::spawn_agent`], with a config file shared by several nodes.
    pub fn spawn_agent_with_file(
        &mut self,
        bin: &Path,
        node: &str,
        config: &str,
        listen: bool,
    ) -> u32 {
        let ns = self.node(node).ns.clone();
        let log = format!("agent-{node}.log");
        let bin = bin.display().to_string();
        let mut args = standalone_agent_argv(&bin, config, node);
        if !listen {
            args.truncate(args.len() - 2); // without the `--listen ADDRESS` pair
        }
        let pid = self.spawn(&ns, &args, &log);
        if listen {
            let addr: SocketAddr = AGENT_STATUS.parse().unwrap();
            let up = wait_for(Duration::from_secs(10), || {
                self.http_get(&ns, addr, "/status").is_ok()
            });
            assert!(
                up.is_some(),
                "agent on {node} did not start:\n{}",
                self.log(&log)
            );
        }
        pid
    }

    /// Starts a real nginx (foreground, its own config and pid file) in a node's namespace,
    /// answering `GET /` with 200 on `port` on every address; with `tls` (certificate, key
    /// files) it speaks HTTPS. Returns the master's pid; waits until it accepts connections.
    pub fn spawn_nginx(&mut self, node: &str, port: u16, tls: Option<(&Path, &Path)>) -> u32 {
        let ns = self.node(node).ns.clone();
        let dir = self.dir.join(format!("nginx-{node}-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        let listen = match tls {
            None => format!("listen {port}; listen [::]:{port};"),
            Some((cert, key)) => format!(
                "listen {port} ssl; listen [::]:{port} ssl; ssl_certificate {}; ssl_certificate_key {};",
                cert.display(),
                key.display()
            ),
        };
        let conf = format!(
            "daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; \
             fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
             server {{ {listen} location / {{ return 200 \"{node}\\n\"; }} }} }}\n"
        );
        let file = dir.join("nginx.conf");
        std::fs::write(&file, conf).unwrap();
        let file = file.display().to_string();
        let pid = self.spawn(
            &ns,
            &["/usr/sbin/nginx", "-c", &file],
            &format!("nginx-{node}-{port}.log"),
        );
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let up = wait_for(Duration::from_secs(5), || {
            let out = self.exec(
                &ns,
                &[
                    "bash",
                    "-c",
                    &format!("exec 3<>/dev/tcp/{}/{}", addr.ip(), addr.port()),
                ],
            );
            out.status.success()
        });
        assert!(
            up.is_some(),
            "nginx on {node} did not start:\n{}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        pid
    }

    /// Sends `sig` to a process and to its children (nginx's master and workers).
    pub fn signal_tree(&mut self, pid: u32, sig: nix::sys::signal::Signal) {
        // Stopped first: a parent that sees a child die may start another (nginx's master
        // respawns its worker), which would outlive it holding the listening socket.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGSTOP,
        );
        let out = run(&["pgrep", "-P", &pid.to_string()]);
        for child in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(c) = child.parse::<i32>() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c), sig);
            }
        }
        if !matches!(
            sig,
            nix::sys::signal::Signal::SIGKILL | nix::sys::signal::Signal::SIGSTOP
        ) {
            // Running again, to take the signal.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
        self.signal(pid, sig);
    }

    /// Sends `sig` to a process started with [`Lab::spawn`] and waits for it if it is fatal.
    pub fn signal(&mut self, pid: u32, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        if matches!(
            sig,
            nix::sys::signal::Signal::SIGKILL | nix::sys::signal::Signal::SIGTERM
        ) && let Some(c) = self.children.iter_mut().find(|c| c.id() == pid)
        {
            let _ = c.wait();
        }
    }

    /// The agent a warden runs (`kube-vrrp agent` is the warden; the agent is its child).
    pub fn agent_of(&self, warden: u32) -> u32 {
        let child = || {
            let out = run(&["pgrep", "-P", &warden.to_string()]);
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
        };
        wait_for(Duration::from_secs(10), || child().is_some());
        child().unwrap_or_else(|| panic!("warden {warden} runs no agent"))
    }

    /// Waits for a process started with [`Lab::spawn`] to end; its exit status.
    pub fn wait_exit(&mut self, pid: u32) -> std::process::ExitStatus {
        let c = self
            .children
            .iter_mut()
            .find(|c| c.id() == pid)
            .expect("a process of this lab");
        c.wait().expect("wait")
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Deletes a node's `eth0` and creates it again, same name and addresses, new index.
    pub fn recreate_eth0(&self, node: &Node) {
        sh(&["ip", "-n", &node.ns, "link", "del", "eth0"]);
        let addrs = [format!("{}/24", node.ipv4), format!("{}/64", node.ipv6)];
        self.plug(&node.ns, "eth0", &node.port, "br0", &addrs);
    }

    /// Cuts (false) or restores (true) a node's link at the bridge.
    pub fn set_link(&self, node: &Node, up: bool) {
        sh(&[
            "ip",
            "-n",
            &self.bridge_ns,
            "link",
            "set",
            &node.port,
            if up { "up" } else { "down" },
        ]);
    }

    /// Whether `address` (no prefix) is bound in the namespace on an interface that is
    /// administratively up (an agent's standby link holds addresses while down, answering
    /// for none of them).
    pub fn holds(&self, ns: &str, address: &str) -> bool {
        let out = self.exec(ns, &["ip", "-o", "addr", "show", "up"]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .any(|w| w.split('/').next() == Some(address))
    }

    /// Whether `address` is bound in the namespace at all (up or down).
    pub fn has_address(&self, ns: &str, address: &str) -> bool {
        let out = self.exec(ns, &["ip", "-o", "addr", "show"]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .any(|w| w.split('/').next() == Some(address))
    }

    /// The nodes holding `address`.
    pub fn holders(&self, address: &str) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| self.holds(&n.ns, address))
            .map(|n| n.name.clone())
            .collect()
    }

    /// An HTTP GET from inside a namespace (the calling thread enters it; nothing else does).
    pub fn http_get(&self, ns: &str, addr: SocketAddr, path: &str) -> Result<String, String> {
        let ns_path = format!("/run/netns/{ns}");
        let path = path.to_string();
        std::thread::spawn(move || {
            let f = std::fs::File::open(&ns_path).map_err(|e| e.to_string())?;
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| e.to_string())?;
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                .map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"
            )
            .map_err(|e| e.to_string())?;
            let mut body = String::new();
            s.read_to_string(&mut body).map_err(|e| e.to_string())?;
            let (head, body) = body.split_once("\r\n\r\n").ok_or("no HTTP header")?;
            if !head.starts_with("HTTP/1.1 200") {
                return Err(head.to_string());
            }
            Ok(body.to_string())
        })
        .join()
        .map_err(|_| "thread panicked".to_string())?
    }
}

/// Polls `f` every 10 ms until it holds or `timeout` passes; returns the time it took.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting a namespace kills nothing still inside it: make sure nothing is.
        let named = self
            .nodes
            .iter()
            .map(|n| n.ns.clone())
            .chain(self.extra_ns.clone());
        for ns in named.chain([self.client.ns.clone(), self.bridge_ns.clone()]) {
            let _ = Command::new("ip")
                .args(["netns", "pids", &ns])
                .output()
                .map(|o| {
                    for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                        let _ = Command::new("kill").args(["-9", pid]).status();
                    }
                });
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
        if std::env::var_os("KUBE_VRRP_KEEP_LAB_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Sends one raw VRRP message (IP protocol 112) from inside a namespace with the given TTL /
/// hop limit: how tests inject malformed or hostile packets.
pub fn send_vrrp(ns: &str, dst: std::net::IpAddr, ttl: u8, payload: &[u8]) {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let ns_path = format!("/run/netns/{ns}");
    let payload = payload.to_vec();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns_path).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let domain = if dst.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let s = Socket::new(domain, Type::RAW, Some(Protocol::from(112))).unwrap();
        s.bind_device(Some(b"eth0")).unwrap();
        if dst.is_ipv4() {
            s.set_multicast_ttl_v4(u32::from(ttl)).unwrap();
            s.set_ttl_v4(u32::from(ttl)).unwrap();
        } else {
            s.set_multicast_hops_v6(u32::from(ttl)).unwrap();
            s.set_unicast_hops_v6(u32::from(ttl)).unwrap();
        }
        s.send_to(&payload, &SockAddr::from(SocketAddr::new(dst, 0)))
            .unwrap();
    })
    .join()
    .unwrap();
}

/// What a run of probes saw around a failover.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outage {
    /// From the first unanswered probe to the first answered one after the last unanswered.
    pub outage: Duration,
    pub lost: usize,
    pub sent: usize,
}

/// ICMP echo probes to `target` every `interval` from inside namespace `ns`, on a thread of its
/// own. Call [`Prober::stop`] to collect.
pub struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<(Instant, bool)>>>,
}

impl Prober {
    pub fn start(ns: &str, target: std::net::Ipv4Addr, interval: Duration) -> Prober {
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let ns_path = format!("/run/netns/{ns}");
        let handle = std::thread::spawn(move || {
            let f = std::fs::File::open(&ns_path).unwrap();
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).unwrap();
            s.set_nonblocking(true).unwrap();
            let dst = SockAddr::from(SocketAddr::new(target.into(), 0));
            let ident = (std::process::id() & 0xffff) as u16;
            let mut sent: Vec<(Instant, bool)> = Vec::new();
            let start = Instant::now();
            let mut seq: u16 = 0;
            while !flag.load(Ordering::SeqCst) {
                let mut pkt = vec![8, 0, 0, 0];
                pkt.extend_from_slice(&ident.to_be_bytes());
                pkt.extend_from_slice(&seq.to_be_bytes());
                pkt.extend_from_slice(&[0u8; 16]);
                let sum = ones_complement(&pkt);
                pkt[2..4].copy_from_slice(&sum.to_be_bytes());
                let _ = s.send_to(&pkt, &dst);
                sent.push((Instant::now(), false));
                seq = seq.wrapping_add(1);
                let next = start + interval * sent.len() as u32;
                // Collect replies until the next probe is due.
                loop {
                    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
                    match s.recv(&mut buf) {
                        Ok(n) if n >= 28 => {
                            let b: Vec<u8> = buf[..n]
                                .iter()
                                .map(|x| unsafe { x.assume_init() })
                                .collect();
                            let ihl = usize::from(b[0] & 0x0f) * 4;
                            if b[ihl] == 0 && u16::from_be_bytes([b[ihl + 4], b[ihl + 5]]) == ident
                            {
                                let rseq = u16::from_be_bytes([b[ihl + 6], b[ihl + 7]]);
                                // Map the 16-bit sequence back to the newest probe with it.
                                let idx = (0..sent.len()).rev().find(|i| (*i as u16) == rseq);
                                if let Some(i) = idx {
                                    sent[i].1 = true;
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(_) => {
                            if Instant::now() >= next {
                                break;
                            }
                            std::thread::sleep(Duration::from_micros(500));
                        }
                    }
                }
            }
            sent
        });
        Prober {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops probing (answers still in flight for 200 ms count) and measures the outage.
    pub fn stop(mut self) -> Outage {
        std::thread::sleep(Duration::from_millis(200));
        self.stop.store(true, Ordering::SeqCst);
        let probes = self.handle.take().unwrap().join().unwrap();
        // The last 200 ms of probes may not have been answered yet: ignore them.
        let cutoff =
            probes.last().map(|p| p.0).unwrap_or_else(Instant::now) - Duration::from_millis(150);
        let probes: Vec<(Instant, bool)> = probes.into_iter().filter(|p| p.0 <= cutoff).collect();
        let first_lost = probes.iter().position(|p| !p.1);
        let last_lost = probes.iter().rposition(|p| !p.1);
        let outage = match (first_lost, last_lost) {
            (Some(f), Some(l)) => probes
                .get(l + 1)
                .map(|after| after.0 - probes[f].0)
                .unwrap_or_else(|| probes[l].0 - probes[f].0),
            _ => Duration::ZERO,
        };
        Outage {
            outage,
            lost: probes.iter().filter(|p| !p.1).count(),
            sent: probes.len(),
        }
    }
}

fn ones_complement(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The options of every benchmark that runs kube-vrrp against keepalived in trials.
#[derive(clap::Args)]
pub struct Versus {
    /// Trials per case and implementation.
    #[arg(long, default_value_t = 5)]
    pub trials: usize,
    /// kube-vrrp or keepalived only.
    #[arg(long)]
    pub only: Option<String>,
}

/// `promtool check metrics` (Prometheus' own linter: base units, names, types, help) on an
/// exposition; its complaints when it has any.
pub fn promtool_check(metrics: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run promtool (bash .ci/deps installs it): {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `kube-vrrp check [--cluster] FILE` before a demo runs it: its findings when it fails.
pub fn check_file(path: &Path, cluster: bool) -> Result<(), String> {
    let mut cmd = Command::new(kube_vrrp_binary());
    cmd.arg("check");
    if cluster {
        cmd.arg("--cluster");
    }
    let out = cmd
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run kube-vrrp check: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{} does not pass kube-vrrp check{}:\n{}",
        path.display(),
        if cluster { " --cluster" } else { "" },
        String::from_utf8_lossy(&out.stdout).trim_end()
    ))
}

/// The kube-vrrp binary built next to the running executable (`cargo build` puts them in the
/// same target directory).
/// `BIN agent --standalone --config CONFIG --node-name NODE --listen AGENT_STATUS`, for a
/// test that starts an agent its own way (another log, a user, a flag).
pub fn standalone_agent_argv<'a>(bin: &'a str, config: &'a str, node: &'a str) -> Vec<&'a str> {
    vec![
        bin,
        "agent",
        "--standalone",
        "--config",
        config,
        "--node-name",
        node,
        "--listen",
        AGENT_STATUS,
    ]
}

pub fn kube_vrrp_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("target dir");
    for candidate in [dir.join("kube-vrrp"), dir.join("../kube-vrrp")] {
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "kube-vrrp binary not found next to {}: run `cargo build --workspace` first",
        exe.display()
    );
}

/// The implementations the benchmarks compare in one lab.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Impl {
    KubeVrrp,
    Keepalived,
}

impl Impl {
    pub fn name(self) -> &'static str {
        match self {
            Impl::KubeVrrp => "kube-vrrp",
            Impl::Keepalived => "keepalived",
        }
    }
}

/// A VRRP advertisement seen on the segment.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub at: Instant,
    pub ipv6: bool,
    pub vrid: u8,
    pub priority: u8,
    pub src: std::net::IpAddr,
}

/// Captures VRRP (IPv4 and IPv6, multicast) on `eth0` of a namespace from a thread of its
/// own, as a switch port would see it: what actually went out on the wire. Call
/// [`Capture::stop`] to collect.
pub struct Capture {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handles: Vec<std::thread::JoinHandle<Vec<Seen>>>,
}

impl Capture {
    pub fn start(ns: &str) -> Capture {
        use socket2::{Domain, Protocol, Socket, Type};
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut handles = Vec::new();
        for ipv6 in [false, true] {
            let flag = stop.clone();
            let ns_path = format!("/run/netns/{ns}");
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            handles.push(std::thread::spawn(move || {
                let f = std::fs::File::open(&ns_path).unwrap();
                nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                // The instrument must not be what is late: real-time priority, above the
                // implementations measured (kube-vrrp's engine asks for 10).
                let param = libc::sched_param { sched_priority: 20 };
                // SAFETY: `param` is a valid sched_param for the call's duration; pid 0 is
                // this thread. Failure (no CAP_SYS_NICE) leaves it at normal priority.
                unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
                let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
                let s = Socket::new(domain, Type::RAW, Some(Protocol::from(112))).unwrap();
                s.bind_device(Some(b"eth0")).unwrap();
                s.set_recv_buffer_size(16 << 20).unwrap();
                let index = nix::net::if_::if_nametoindex("eth0").unwrap();
                if ipv6 {
                    s.join_multicast_v6(&"ff02::12".parse().unwrap(), index)
                        .unwrap();
                } else {
                    s.join_multicast_v4_n(
                        &"224.0.0.18".parse().unwrap(),
                        &socket2::InterfaceIndexOrAddress::Index(index),
                    )
                    .unwrap();
                }
                s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                ready_tx.send(()).unwrap();
                let mut seen = Vec::new();
                let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
                while !flag.load(Ordering::Relaxed) {
                    let Ok((n, from)) = s.recv_from(&mut buf) else {
                        continue;
                    };
                    let at = Instant::now();
                    let b: Vec<u8> = buf[..n]
                        .iter()
                        .map(|x| unsafe { x.assume_init() })
                        .collect();
                    // IPv4 raw sockets deliver the IP header, IPv6 ones do not.
                    let off = if ipv6 {
                        0
                    } else {
                        usize::from(b[0] & 0x0f) * 4
                    };
                    if b.len() < off + 8 {
                        continue;
                    }
                    let Some(src) = from.as_socket().map(|a| a.ip()) else {
                        continue;
                    };
                    seen.push(Seen {
                        at,
                        ipv6,
                        vrid: b[off + 1],
                        priority: b[off + 2],
                        src,
                    });
                }
                seen
            }));
            ready_rx.recv().unwrap();
        }
        Capture { stop, handles }
    }

    pub fn stop(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: Vec<Seen> = self
            .handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect();
        all.sort_by_key(|s| s.at);
        all
    }
}

/// A random number from the kernel's pool: benchmark phases that must not correlate with any
/// clock-driven timer of the implementations measured.
pub fn random_u64() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom");
    u64::from_le_bytes(b)
}

/// Raises the (host-wide) IPv6 neighbour table limits; puts the old values back on drop.
pub struct NeighbourRoom(Vec<(String, String)>);

impl NeighbourRoom {
    pub fn raise(entries: usize) -> NeighbourRoom {
        let mut old = Vec::new();
        for (k, mul) in [("gc_thresh1", 1), ("gc_thresh2", 2), ("gc_thresh3", 4)] {
            let path = format!("/proc/sys/net/ipv6/neigh/default/{k}");
            let was = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .trim()
                .to_string();
            let want = (entries * mul).max(was.parse().unwrap_or(0));
            if std::fs::write(&path, want.to_string()).is_ok() {
                old.push((path, was));
            }
        }
        NeighbourRoom(old)
    }
}

impl Drop for NeighbourRoom {
    fn drop(&mut self) {
        for (path, was) in &self.0 {
            let _ = std::fs::write(path, was);
        }
    }
}

/// From `start`, pings every address not yet answered since, round after round; returns when
/// each first answered (None for those that never did within `limit`).
pub fn until_all_answer(
    ns: &str,
    addrs: &[std::net::Ipv6Addr],
    start: Instant,
    limit: Duration,
) -> std::collections::BTreeMap<std::net::Ipv6Addr, Duration> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).unwrap();
    sock.set_nonblocking(true).unwrap();
    // A round's thousand replies must fit (the default buffer holds ~200: the rest would
    // be dropped and answer only rounds later, measuring the client, not the failover).
    {
        use std::os::fd::AsRawFd;
        let size: libc::c_int = 16 << 20;
        // SAFETY: a valid socket descriptor, an int option of the right size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
    }
    let mut waiting: std::collections::BTreeSet<std::net::Ipv6Addr> =
        addrs.iter().copied().collect();
    let mut answered = std::collections::BTreeMap::new();
    let mut seq: u16 = 0;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
    while !waiting.is_empty() && start.elapsed() < limit {
        seq = seq.wrapping_add(1);
        for a in &waiting {
            // Echo request: type 128, code 0, checksum by the kernel, id, sequence.
            let pkt = [128u8, 0, 0, 0, 0x4b, 0x56, (seq >> 8) as u8, seq as u8];
            let _ = sock.send_to(
                &pkt,
                &SockAddr::from(std::net::SocketAddrV6::new(*a, 0, 0, 0)),
            );
        }
        let round_end = Instant::now() + Duration::from_millis(10);
        while Instant::now() < round_end {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    // SAFETY: recv_from initialised the first n bytes.
                    let b: Vec<u8> = buf[..n]
                        .iter()
                        .map(|x| unsafe { x.assume_init() })
                        .collect();
                    if b.first() == Some(&129)
                        && let Some(src) = from.as_socket_ipv6().map(|s| *s.ip())
                        && waiting.remove(&src)
                    {
                        answered.insert(src, start.elapsed());
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    }
    answered
}

/// `n` keep-alive TCP connections from namespace `ns` to `target` (a socket stays in the
/// namespace it was opened in); those that could not connect are left out.
pub fn keep_alive(ns: &str, target: SocketAddr, n: usize) -> Vec<TcpStream> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(path).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        (0..n)
            .filter_map(|_| {
                let s = TcpStream::connect_timeout(&target, Duration::from_secs(3)).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(3))).ok();
                Some(s)
            })
            .collect()
    })
    .join()
    .unwrap()
}

/// One HTTP/1.1 GET on a kept-alive connection: the body (the lab's nginx answers its node's
/// name), or why none came.
pub fn ask(s: &mut TcpStream) -> Result<String, String> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".into());
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .ok_or("no Content-Length")?;
            if body.len() >= len {
                return Ok(body.trim().to_string());
            }
        }
    }
}
