//! The network-namespace lab: N node namespaces and a client namespace joined by a bridge
//! (198.51.100.0/24 + 2001:db8:1::/64), built with `ip` and torn down by name on drop.
//!
//! ```text
//!   <p>-n1 eth0 198.51.100.11 ─┐
//!   <p>-n2 eth0 198.51.100.12 ─┼─ br0 (in <p>-br, multicast snooping off)
//!   <p>-c  eth0 198.51.100.100 ┘
//! ```
//! Everything runs inside these namespaces; nothing touches the host's network.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::tools::standalone_agent_argv;
use crate::{AGENT_STATUS, run, sh, wait_for};

static LABS: AtomicU32 = AtomicU32::new(0);

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
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .envs(self.client_env())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", args[0]))
    }

    /// What clients in this lab keep apart from every other lab: kubectl's and helm's caches
    /// (every stand-in listens on 203.0.113.1:6443, so a shared discovery cache would hand one
    /// lab another's resources).
    fn client_env(&self) -> [(&'static str, PathBuf); 3] {
        [
            ("KUBECACHEDIR", self.dir.join("kube-cache")),
            ("HELM_CACHE_HOME", self.dir.join("helm-cache")),
            ("HELM_CONFIG_HOME", self.dir.join("helm-config")),
        ]
    }

    /// Starts a long-running process in a namespace; killed on drop.
    pub fn spawn(&mut self, ns: &str, args: &[&str], log: &str) -> u32 {
        let log = std::fs::File::create(self.dir.join(log)).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .envs(self.client_env())
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
