//! Virtual servers (keepalived's `virtual_server`) in the namespace lab: n1 and n2 are the
//! directors (n1 preferred), n3..n5 run real nginx real servers, the client sends real HTTP to
//! the VIP. Needs root, nginx and nft; fails, never skips, without them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use kube_vrrp_e2e::{Lab, wait_for};
use nix::sys::signal::Signal;
use serde_json::Value;

mod common;
use common::lab::*;

const PORT: u16 = 80;

fn vip_addr() -> SocketAddr {
    SocketAddr::new(VIP.parse().unwrap(), PORT)
}

/// A VirtualIP at 100 ms with one virtual server on VIP:80; `vs` is appended to it.
fn config(vs: &str) -> String {
    vip_yaml(
        "web",
        51,
        &["198.51.100.50/24"],
        &fast(&format!(
            "  virtualServers:\n  - address: {VIP}\n    port: {PORT}\n{vs}"
        )),
    )
}

/// Real servers n3, n4, n5 on port 80, each answering its name.
fn real_servers(lab: &mut Lab) -> BTreeMap<&'static str, u32> {
    ["n3", "n4", "n5"]
        .into_iter()
        .map(|n| (n, lab.spawn_nginx(n, PORT, None)))
        .collect()
}

/// Forwarding on in the directors (NAT routes every connection through them).
fn forward(lab: &Lab) {
    for n in ["n1", "n2"] {
        lab.exec(&lab.node(n).ns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    }
}

/// `n` requests from the client to the VIP: how many each real server answered, and the
/// failures.
fn requests(lab: &Lab, n: usize) -> (BTreeMap<String, usize>, Vec<String>) {
    requests_to(lab, vip_addr(), n)
}

/// `n` requests from the client to `target`: how many each real server answered, and the
/// failures.
fn requests_to(lab: &Lab, target: SocketAddr, n: usize) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut seen = BTreeMap::new();
    let mut failed = Vec::new();
    for _ in 0..n {
        match lab.http_get(&lab.client.ns, target, "/") {
            Ok(body) => *seen.entry(body.trim().to_string()).or_default() += 1,
            Err(e) => failed.push(e),
        }
    }
    (seen, failed)
}

fn virtual_server(lab: &Lab, node: &str) -> Value {
    status(lab, node)["virtualServers"][0].clone()
}

fn wait_up(lab: &Lab, node: &str, up: &str) -> Value {
    let mut last = Value::Null;
    let ok = wait_for(Duration::from_secs(10), || {
        last = virtual_server(lab, node);
        last["up"] == up && last["programmed"] == true
    });
    assert!(
        ok.is_some(),
        "{node}: not {up} up: {last:#}\n{}",
        lab.log(&format!("agent-{node}.log"))
    );
    last
}

/// Round robin reaches every real server in turn; a stopped nginx is taken out within its
/// check's time and then no request fails; it comes back; with none left, the sorry server
/// answers. Full NAT: everything on one segment.
#[test]
fn round_robin_takes_a_dead_real_server_out_and_the_sorry_server_answers_when_none_is_left() {
    let yaml = config(
        "    forwarding: FullNAT\n    realServers: [{address: 198.51.100.13}, {address: 198.51.100.14}, {address: 198.51.100.15}]\n    \
         check: {delayLoop: 200ms, connectTimeout: 100ms, retry: 1, delayBeforeRetry: 100ms, http: {path: /}}\n    \
         sorryServer: {address: 198.51.100.16, port: 8080}\n",
    );
    let (mut lab, _, p1, _) = two_nodes_of(6, &yaml);
    forward(&lab);
    // Someone else's table on the director: never touched.
    let n1ns = lab.node("n1").ns.clone();
    let foreign = "table inet theirs {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 9999 counter accept\n\t}\n}";
    lab.exec(&n1ns, &["nft", foreign]);
    let theirs = |lab: &Lab| stdout(lab, &n1ns, &["nft", "list", "table", "inet", "theirs"]);
    let before = theirs(&lab);
    assert!(before.contains("tcp dport 9999"), "{before}");
    let mut nginx = real_servers(&mut lab);
    lab.spawn_nginx("n6", 8080, None);
    wait_holders(&lab, VIP, &["n1"]);
    let vs = wait_up(&lab, "n1", "3/3");
    assert_eq!(vs["name"], "198.51.100.50:80/TCP");
    assert!(vs["error"].is_null(), "{vs:#}");

    let (seen, failed) = requests(&lab, 30);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(
        seen,
        [("n3", 10), ("n4", 10), ("n5", 10)]
            .map(|(n, c)| (n.to_string(), c))
            .into(),
        "round robin"
    );

    // The director itself reaches the service too (the output chain).
    let from_director = lab.http_get(&n1ns, vip_addr(), "/");
    assert!(from_director.is_ok(), "{from_director:?}");

    // nginx on n4 stops: out after two failed attempts 100 ms apart. (Its count of
    // transitions may already include the start, when the checks ran before nginx did.)
    let n4_before = virtual_server(&lab, "n1")["realServers"][1]["transitions"]
        .as_u64()
        .unwrap();
    let pid = nginx.remove("n4").unwrap();
    lab.signal_tree(pid, Signal::SIGKILL);
    lab.signal(pid, Signal::SIGKILL);
    let vs = wait_up(&lab, "n1", "2/3");
    let n4 = &vs["realServers"][1];
    assert_eq!(
        (&n4["address"], &n4["healthy"], n4["transitions"].as_u64()),
        (
            &Value::from("198.51.100.14:80"),
            &Value::from(false),
            Some(n4_before + 1)
        ),
        "{vs:#}"
    );
    assert!(n4["weight"].is_null(), "taken out: {vs:#}");
    let (seen, failed) = requests(&lab, 20);
    assert!(failed.is_empty(), "after the removal: {failed:?}");
    assert!(!seen.contains_key("n4"), "{seen:?}");
    assert_eq!(seen.values().sum::<usize>(), 20);
    let metrics = lab
        .http_get(&lab.node("n1").ns, status_addr(), "/metrics")
        .unwrap();
    assert!(
        metrics.contains("kube_vrrp_real_server_up{virtual_ip=\"web\",virtual_server=\"198.51.100.50:80/TCP\",real_server=\"198.51.100.14:80\"} 0"),
        "{metrics}"
    );

    // It comes back.
    nginx.insert("n4", lab.spawn_nginx("n4", PORT, None));
    wait_up(&lab, "n1", "3/3");
    let (seen, failed) = requests(&lab, 30);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(seen.get("n4"), Some(&10), "{seen:?}");

    // None left: the sorry server answers.
    for (_, pid) in nginx {
        lab.signal_tree(pid, Signal::SIGKILL);
        lab.signal(pid, Signal::SIGKILL);
    }
    let vs = wait_up(&lab, "n1", "0/3");
    assert_eq!(vs["serving"], "sorry server", "{vs:#}");
    let (seen, failed) = requests(&lab, 5);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(seen, [("n6".to_string(), 5)].into());

    // Stopped, the agent removes its table and only its table.
    assert!(stdout(&lab, &n1ns, &["nft", "list", "tables"]).contains("kube_vrrp"));
    lab.signal(p1, Signal::SIGTERM);
    let gone = wait_for(Duration::from_secs(10), || {
        !stdout(&lab, &n1ns, &["nft", "list", "tables"]).contains("kube_vrrp")
    });
    assert!(gone.is_some(), "{}", lab.log("agent-n1.log"));
    assert_eq!(theirs(&lab), before);
}

/// NAT proper: the client is on another subnet and the real servers route it through the
/// VIP, so replies come back through the director; weights are followed (1:3); the backup
/// director has the same rules ready and carries the service when the master crashes.
#[test]
fn nat_follows_weights_and_a_director_crash_moves_the_service() {
    let yaml = config(
        "    scheduler: WeightedRoundRobin\n    realServers: [{address: 198.51.100.13, weight: 1}, {address: 198.51.100.14, weight: 3}]\n    \
         check: {delayLoop: 500ms, tcp: {}}\n",
    );
    let (mut lab, _, p1, _) = two_nodes_of(4, &yaml);
    forward(&lab);
    real_servers_on(&mut lab, &["n3", "n4"]);
    nat_routes(&lab, &["n3", "n4"]);
    wait_holders(&lab, VIP, &["n1"]);
    wait_up(&lab, "n1", "2/2");
    wait_up(&lab, "n2", "2/2");
    let (seen, failed) = requests(&lab, 40);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(
        seen,
        [("n3".to_string(), 10), ("n4".to_string(), 30)].into(),
        "weights 1:3"
    );
    // The real servers saw the client's own address (NAT, not full NAT).
    let log = lab.exec(&lab.node("n4").ns, &["ss", "-tn", "state", "time-wait"]);
    assert!(
        String::from_utf8_lossy(&log.stdout).contains("203.0.113.100"),
        "{}",
        String::from_utf8_lossy(&log.stdout)
    );

    // A real server is a client of its own service (a hairpin): its connections are
    // masqueraded, so the reply comes back through the director whichever real server (n4,
    // or n3 itself) answers.
    let n3 = lab.node("n3").ns.clone();
    let mut hairpin = BTreeMap::<String, usize>::new();
    for _ in 0..8 {
        let body = lab.http_get(&n3, vip_addr(), "/");
        *hairpin.entry(format!("{body:?}")).or_default() += 1;
    }
    assert_eq!(
        hairpin,
        [
            (r#"Ok("n3\n")"#.to_string(), 2),
            (r#"Ok("n4\n")"#.to_string(), 6)
        ]
        .into(),
        "from real server n3"
    );

    // The master director crashes (its agent killed, its link cut): n2 takes the VIP and
    // serves at once.
    let agent = lab.agent_of(p1);
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent as i32), Signal::SIGKILL);
    let n1 = lab.node("n1").clone();
    lab.set_link(&n1, false);
    wait_holders(&lab, VIP, &["n2"]);
    let served = wait_for(Duration::from_secs(5), || {
        lab.http_get(&lab.client.ns, vip_addr(), "/").is_ok()
    });
    assert!(served.is_some(), "{}", lab.log("agent-n2.log"));
    let (seen, failed) = requests(&lab, 8);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(seen.values().sum::<usize>(), 8);
}

/// NAT proper: the client at 203.0.113.100 reaches the VIP on the segment, the directors
/// reach the client on the segment, and the real servers send the client's replies to the VIP.
fn nat_routes(lab: &Lab, reals: &[&str]) {
    let client = lab.client.ns.clone();
    lab.exec(
        &client,
        &["ip", "addr", "add", "203.0.113.100/24", "dev", "eth0"],
    );
    lab.exec(
        &client,
        &[
            "ip",
            "route",
            "replace",
            "198.51.100.50/32",
            "dev",
            "eth0",
            "src",
            "203.0.113.100",
        ],
    );
    for n in ["n1", "n2"] {
        lab.exec(
            &lab.node(n).ns,
            &["ip", "route", "add", "203.0.113.0/24", "dev", "eth0"],
        );
    }
    for n in reals {
        lab.exec(
            &lab.node(n).ns,
            &[
                "ip",
                "route",
                "add",
                "203.0.113.0/24",
                "via",
                "198.51.100.50",
            ],
        );
    }
}

fn real_servers_on(lab: &mut Lab, nodes: &[&str]) {
    for n in nodes {
        lab.spawn_nginx(n, PORT, None);
    }
}

/// keepalived.conf of a classic director pair (the tutorials' LVS-DR in front of nginx, the
/// real servers holding the VIP on `lo` with `arp_ignore`), imported with `import-keepalived`
/// and run unchanged: direct routing carries the HTTP, the checks take a dead real server out.
#[test]
fn a_keepalived_director_pair_is_imported_and_runs() {
    let conf = |state: &str, priority: u8| {
        format!(
            "vrrp_instance VI_1 {{\n  state {state}\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  advert_int 1\n  \
             virtual_ipaddress {{\n    198.51.100.50/24\n  }}\n}}\n\
             virtual_server 198.51.100.50 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n\
             real_server 198.51.100.13 80 {{\n    weight 1\n    HTTP_GET {{\n      url {{\n        path /\n        status_code 200\n      }}\n      connect_timeout 1\n      retry 1\n      delay_before_retry 1\n    }}\n  }}\n\
             real_server 198.51.100.14 80 {{\n    weight 1\n    HTTP_GET {{\n      url {{\n        path /\n        status_code 200\n      }}\n      connect_timeout 1\n      retry 1\n      delay_before_retry 1\n    }}\n  }}\n}}\n"
        )
    };
    let dir = std::env::temp_dir().join(format!("kube-vrrp-lvs-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (lb1, lb2) = (dir.join("lb1.conf"), dir.join("lb2.conf"));
    std::fs::write(&lb1, conf("MASTER", 150)).unwrap();
    std::fs::write(&lb2, conf("BACKUP", 100)).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["import-keepalived", "--node", "n1", "--node", "n2"])
        .args([&lb1, &lb2])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("lb_kind"), "DR is carried: {stderr}");
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("forwarding: DirectRouting"), "{yaml}");
    let (mut lab, _, _, _) = two_nodes_of(4, &yaml);
    let mut nginx = dr_real_servers(&mut lab, &["n3", "n4"]);
    let n1ns = lab.node("n1").ns.clone();
    assert!(wait_for(WAIT, || lab.holds(&n1ns, VIP)).is_some());
    wait_up(&lab, "n1", "2/2");
    let (seen, failed) = requests(&lab, 20);
    assert!(failed.is_empty(), "{failed:?}");
    assert!(seen.len() == 2, "both real servers take flows: {seen:?}");
    let pid = nginx.remove(1);
    lab.signal_tree(pid, Signal::SIGKILL);
    lab.signal(pid, Signal::SIGKILL);
    wait_up(&lab, "n1", "1/2");
    let (seen, failed) = requests(&lab, 6);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(seen, [("n3".to_string(), 6)].into());
    // The real servers' metrics pass Prometheus' linter too.
    let metrics = lab
        .http_get(&lab.node("n1").ns, status_addr(), "/metrics")
        .unwrap();
    assert!(metrics.contains("kube_vrrp_real_server_up"), "{metrics}");
    kube_vrrp_e2e::promtool_check(&metrics).unwrap();
}

/// Direct routing: the real servers hold the VIP on `lo` (answering no ARP for it) and reply
/// to the client themselves; the director only rewrites each frame's MACs, by a hash of the
/// flow, and sends it straight out. The switch keeps learning the client's MAC on the client's
/// port (the source MAC is rewritten too). A dead real server's flows move to the others.
#[test]
fn direct_routing_carries_http_and_the_switch_never_learns_the_client_on_the_director() {
    let (mut lab, mut nginx) = dr_pair();
    // (n3 and n4 hold the VIP too, on lo.)
    let n1ns = lab.node("n1").ns.clone();
    assert!(wait_for(WAIT, || lab.holds(&n1ns, VIP)).is_some());
    let vs = wait_up(&lab, "n1", "2/2");
    // Both MACs known: both take flows.
    let weights: Vec<&Value> = vs["realServers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["weight"])
        .collect();
    assert_eq!(weights, [&Value::from(1), &Value::from(1)], "{vs:#}");
    let (seen, failed) = requests(&lab, 30);
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        seen.get("n3").is_some_and(|c| *c > 0) && seen.get("n4").is_some_and(|c| *c > 0),
        "{seen:?}"
    );
    let table = stdout(
        &lab,
        &lab.node("n1").ns,
        &["nft", "list", "table", "netdev", "kube_vrrp"],
    );
    assert!(table.contains("ether saddr set"), "{table}");
    // The bridge learned the client's MAC on the client's own port only.
    let client_mac = stdout(
        &lab,
        &lab.client.ns,
        &["cat", "/sys/class/net/eth0/address"],
    );
    let fdb = stdout(
        &lab,
        &lab.bridge_ns,
        &["bridge", "fdb", "show", "br", "br0"],
    );
    let ports: Vec<&str> = fdb
        .lines()
        .filter(|l| l.starts_with(client_mac.trim()))
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(ports, [lab.client.port.as_str()], "{fdb}");
    // The directors' own connections (a hairpin: they never cross the ingress) are NATed in
    // their output chain and reach the real servers too.
    for from in ["n1", "n2"] {
        let ns = lab.node(from).ns.clone();
        let mut bodies = Vec::new();
        for _ in 0..4 {
            bodies.push(lab.http_get(&ns, vip_addr(), "/"));
        }
        assert!(
            bodies
                .iter()
                .all(|b| matches!(b.as_deref(), Ok("n3\n" | "n4\n"))),
            "from {from}: {bodies:?}"
        );
    }

    // n4 dies: its flows go to n3.
    let pid = nginx.remove(1);
    lab.signal_tree(pid, Signal::SIGKILL);
    lab.signal(pid, Signal::SIGKILL);
    wait_up(&lab, "n1", "1/2");
    let (seen, failed) = requests(&lab, 10);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(seen, [("n3".to_string(), 10)].into());
}

/// Directors n1 and n2 by direct routing in front of nginx on n3 and n4 (TCP check every
/// 200 ms): the lab and the nginx pids.
fn dr_pair() -> (Lab, Vec<u32>) {
    let yaml = config(
        "    forwarding: DirectRouting\n    realServers: [{address: 198.51.100.13}, {address: 198.51.100.14}]\n    \
         check: {delayLoop: 200ms, connectTimeout: 100ms, retry: 0, tcp: {}}\n",
    );
    let (mut lab, _, _, _) = two_nodes_of(4, &yaml);
    let nginx = dr_real_servers(&mut lab, &["n3", "n4"]);
    (lab, nginx)
}

/// Real servers for direct routing: the VIP on `lo`, answering no ARP for it, and nginx.
fn dr_real_servers(lab: &mut Lab, nodes: &[&str]) -> Vec<u32> {
    nodes
        .iter()
        .map(|n| {
            let ns = lab.node(n).ns.clone();
            lab.exec(
                &ns,
                &["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"],
            );
            lab.exec(&ns, &["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1"]);
            lab.exec(&ns, &["sysctl", "-qw", "net.ipv4.conf.all.arp_announce=2"]);
            lab.spawn_nginx(n, PORT, None)
        })
        .collect()
}

/// IPv6: a full NAT virtual server on an IPv6 VIP spreads over the real servers' IPv6
/// addresses, and takes a dead one out.
#[test]
fn an_ipv6_virtual_server_spreads_and_takes_a_dead_real_server_out() {
    const VIP6: &str = "2001:db8:1::50";
    let yaml = vip_yaml(
        "web6",
        61,
        &["2001:db8:1::50/64"],
        &fast(&format!(
            "  virtualServers:\n  - address: \"{VIP6}\"\n    port: {PORT}\n    forwarding: FullNAT\n    \
             realServers: [{{address: \"2001:db8:1::13\"}}, {{address: \"2001:db8:1::14\"}}]\n    \
             check: {{delayLoop: 200ms, connectTimeout: 100ms, retry: 0, http: {{path: /}}}}\n"
        )),
    );
    let (mut lab, _, _, _) = two_nodes_of(4, &yaml);
    for n in ["n1", "n2"] {
        lab.exec(
            &lab.node(n).ns,
            &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
        );
    }
    let mut nginx: Vec<u32> = ["n3", "n4"]
        .iter()
        .map(|n| lab.spawn_nginx(n, PORT, None))
        .collect();
    wait_holders(&lab, VIP6, &["n1"]);
    let vs = wait_up(&lab, "n1", "2/2");
    assert_eq!(vs["name"], "[2001:db8:1::50]:80/TCP", "{vs:#}");
    let target = SocketAddr::new(VIP6.parse().unwrap(), PORT);
    let ask = |lab: &Lab, n: usize| {
        let (seen, failed) = requests_to(lab, target, n);
        assert!(failed.is_empty(), "{failed:?}");
        seen
    };
    assert_eq!(
        ask(&lab, 10),
        [("n3".to_string(), 5), ("n4".to_string(), 5)].into()
    );
    let pid = nginx.remove(1);
    lab.signal_tree(pid, Signal::SIGKILL);
    lab.signal(pid, Signal::SIGKILL);
    wait_up(&lab, "n1", "1/2");
    assert_eq!(ask(&lab, 6), [("n3".to_string(), 6)].into());
}

/// UDP: a full NAT virtual server on UDP port 53 spreads datagrams round robin over two UDP
/// responders (each answers with its node's name).
#[test]
fn a_udp_virtual_server_spreads_datagrams() {
    let yaml = config(
        "    protocol: UDP\n    forwarding: FullNAT\n    realServers: [{address: 198.51.100.13, port: 5353}, {address: 198.51.100.14, port: 5353}]\n",
    )
    .replace(&format!("port: {PORT}\n    protocol"), "port: 53\n    protocol");
    let (mut lab, _, _, _) = two_nodes_of(4, &yaml);
    forward(&lab);
    for n in ["n3", "n4"] {
        let ns = lab.node(n).ns.clone();
        let code = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',5353))\nwhile True:\n  d,a=s.recvfrom(512)\n  s.sendto(b'{n}',a)\n"
        );
        lab.spawn(&ns, &["python3", "-c", &code], &format!("udp-{n}.log"));
    }
    wait_holders(&lab, VIP, &["n1"]);
    let vs = wait_up(&lab, "n1", "2/2");
    assert_eq!(vs["name"], "198.51.100.50:53/UDP", "{vs:#}");
    // Each datagram from a new source port is a new flow.
    let client = lab.client.ns.clone();
    let script = format!(
        "import socket,collections,time\n# The responders are up first (python starts in tens of ms).\nfor rs in ['198.51.100.13','198.51.100.14']:\n  for t in range(50):\n    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n    s.settimeout(0.1)\n    s.sendto(b'q',(rs,5353))\n    try:\n      s.recv(64)\n      break\n    except Exception:\n      pass\nc=collections.Counter()\nfor i in range(10):\n  s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n  s.settimeout(1)\n  s.sendto(b'q',('{VIP}',53))\n  try:\n    c[s.recv(64).decode()]+=1\n  except Exception as e:\n    c['lost']+=1\nprint(sorted(c.items()))\n"
    );
    let out = stdout(&lab, &client, &["python3", "-c", &script]);
    assert_eq!(out.trim(), "[('n3', 5), ('n4', 5)]", "{out}");
}

/// `GET path` over HTTPS (certificate not verified) from namespace `ns`: the body.
fn https_get(lab: &Lab, ns: &str, addr: SocketAddr, path: &str) -> Result<String, String> {
    let out = lab.exec(
        ns,
        &[
            "bash",
            "-c",
            &format!(
                "printf 'GET {path} HTTP/1.0\\r\\nHost: lab\\r\\n\\r\\n' | timeout 5 openssl s_client -quiet -connect {addr} 2>/dev/null"
            ),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.trim().to_string()),
        _ => Err(format!("{text:?} ({})", out.status)),
    }
}

/// A self-signed certificate and its key in the lab's directory.
fn self_signed(lab: &Lab) -> (std::path::PathBuf, std::path::PathBuf) {
    let ec = EC_P256;
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend(["-days", "2", "-subj", "/CN=kube-apiserver"]);
    args.extend(["-keyout", "api.key", "-out", "api.crt"]);
    openssl(lab.dir(), &args);
    (lab.dir().join("api.crt"), lab.dir().join("api.key"))
}

/// kube-vip's control-plane load balancing, from a standalone file as the static pod runs it:
/// the address spreads HTTPS over every control-plane node's API server (HTTPS nginx on 6443
/// stands in for kube-apiserver), each checked with `/readyz`; the directors are real servers
/// too, and a real server that is a client of the address (a kubelet, a controller manager on
/// a control-plane node) reaches it, the director itself included. One that fails `/readyz`
/// is taken out.
#[test]
fn a_control_plane_address_balances_over_every_api_server_the_directors_included() {
    const API: u16 = 6443;
    let api = SocketAddr::new(VIP.parse().unwrap(), API);
    let yaml = vip_yaml(
        "control-plane",
        52,
        &["198.51.100.50/24"],
        &fast(&format!(
            "{}  virtualServers:\n  - address: {VIP}\n    port: {API}\n    forwarding: FullNAT\n    allowNodeAddresses: true\n    \
             realServers: [{{address: 198.51.100.11}}, {{address: 198.51.100.12}}, {{address: 198.51.100.13}}]\n    \
             check: {{delayLoop: 200ms, connectTimeout: 150ms, retry: 0, http: {{scheme: HTTPS, path: /readyz}}}}\n",
            kube_vrrp::manifest::READYZ_CHECK
        )),
    );
    let (mut lab, cfg, _, _) = two_nodes_of(3, &yaml);
    // The file is what `manifest static-pod` accepts for a control-plane address.
    let manifest = std::process::Command::new(BIN)
        .args(["manifest", "static-pod", "--config", &cfg])
        .output()
        .unwrap();
    assert!(
        manifest.status.success(),
        "{}",
        String::from_utf8_lossy(&manifest.stderr)
    );
    forward(&lab);
    let (crt, key) = self_signed(&lab);
    let mut servers: BTreeMap<&str, u32> = ["n1", "n2", "n3"]
        .into_iter()
        .map(|n| (n, lab.spawn_nginx(n, API, Some((&crt, &key)))))
        .collect();
    wait_holders(&lab, VIP, &["n1"]);
    wait_up(&lab, "n1", "3/3");
    let spread = |lab: &Lab, ns: &str, n: usize| {
        let mut seen = BTreeMap::<String, usize>::new();
        for _ in 0..n {
            let r = https_get(lab, ns, api, "/readyz");
            *seen.entry(r.unwrap_or_else(|e| e)).or_default() += 1;
        }
        seen
    };
    let each = |n: usize, nodes: &[&str]| -> BTreeMap<String, usize> {
        nodes.iter().map(|x| (x.to_string(), n)).collect()
    };
    let client = lab.client.ns.clone();
    assert_eq!(
        spread(&lab, &client, 6),
        each(2, &["n1", "n2", "n3"]),
        "client"
    );
    for from in ["n1", "n2", "n3"] {
        let ns = lab.node(from).ns.clone();
        assert_eq!(
            spread(&lab, &ns, 3),
            each(1, &["n1", "n2", "n3"]),
            "from {from}\n{}",
            lab.log("agent-n1.log")
        );
    }
    // n3's API server stops: out after one failed /readyz; nobody notices.
    let pid = servers.remove("n3").unwrap();
    lab.signal_tree(pid, Signal::SIGKILL);
    lab.signal(pid, Signal::SIGKILL);
    wait_up(&lab, "n1", "2/3");
    assert_eq!(spread(&lab, &client, 4), each(2, &["n1", "n2"]));
    let n2 = lab.node("n2").ns.clone();
    assert_eq!(spread(&lab, &n2, 4), each(2, &["n1", "n2"]));
}

/// keepalived's `digest`: the page must also have this MD5. Each nginx answers its own name, so
/// a digest of "n3\n" keeps only n3; n4's result says why it is out.
#[test]
fn a_digest_check_keeps_only_the_real_servers_whose_page_matches() {
    let yaml = config(&format!(
        "    forwarding: FullNAT\n    realServers: [{{address: 198.51.100.13}}, {{address: 198.51.100.14}}]\n    \
         check: {{delayLoop: 200ms, connectTimeout: 100ms, retry: 0, http: {{path: /, digest: {}}}}}\n",
        md5_of("n3\n")
    ));
    let (mut lab, _, _, _) = two_nodes_of(4, &yaml);
    forward(&lab);
    real_servers_on(&mut lab, &["n3", "n4"]);
    wait_holders(&lab, VIP, &["n1"]);
    // (A real server counts as up until its first check fails, and a check may run before
    // nginx listens: wait for n3 up and n4 down for its page, not for a refused connection.)
    let mut vs = Value::Null;
    let settled = wait_for(WAIT, || {
        vs = virtual_server(&lab, "n1");
        vs["up"] == "1/2"
            && vs["realServers"][0]["healthy"] == true
            && vs["realServers"][1]["result"]
                .as_str()
                .is_some_and(|t| t.contains("the page's MD5 is"))
    });
    assert!(settled.is_some(), "{vs:#}");
    let n4 = &vs["realServers"][1];
    assert_eq!(n4["healthy"], false, "{vs:#}");
    assert!(
        n4["result"]
            .as_str()
            .is_some_and(|t| t.contains("the page's MD5 is")),
        "{vs:#}"
    );
    let (seen, failed) = requests(&lab, 6);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(seen, [("n3".to_string(), 6)].into());
}

/// MD5 in hex, by `md5sum` (not our code).
fn md5_of(text: &str) -> String {
    let out = std::process::Command::new("bash")
        .args(["-c", &format!("printf '%s' '{text}' | md5sum")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)[..32].to_string()
}

/// Direct routing over IPv6: the real servers hold the address on `lo` (Linux answers neighbour
/// solicitations only for addresses of the interface asked on, so no `arp_ignore` is needed);
/// the director learns their MACs from the neighbour table and rewrites the frames.
#[test]
fn ipv6_direct_routing_carries_http_and_takes_a_dead_real_server_out() {
    const VIP6: &str = "2001:db8:1::51";
    let yaml = vip_yaml(
        "web6",
        62,
        &["2001:db8:1::51/64"],
        &fast(&format!(
            "  virtualServers:\n  - address: \"{VIP6}\"\n    port: {PORT}\n    forwarding: DirectRouting\n    \
             realServers: [{{address: \"2001:db8:1::13\"}}, {{address: \"2001:db8:1::14\"}}]\n    \
             check: {{delayLoop: 200ms, connectTimeout: 100ms, retry: 0, tcp: {{}}}}\n"
        )),
    );
    let (mut lab, _, _, _) = two_nodes_of(4, &yaml);
    let mut nginx: Vec<u32> = ["n3", "n4"]
        .iter()
        .map(|n| {
            let ns = lab.node(n).ns.clone();
            let a = format!("{VIP6}/128");
            lab.exec(&ns, &["ip", "-6", "addr", "add", &a, "dev", "lo", "nodad"]);
            lab.spawn_nginx(n, PORT, None)
        })
        .collect();
    // (n3 and n4 hold the address too, on lo.)
    let n1ns = lab.node("n1").ns.clone();
    assert!(wait_for(WAIT, || lab.holds(&n1ns, VIP6)).is_some());
    let vs = wait_up(&lab, "n1", "2/2");
    // Direct routing needs no IP forwarding (it is off here): no warning says it does.
    assert!(vs["error"].is_null(), "{vs:#}");
    let target = SocketAddr::new(VIP6.parse().unwrap(), PORT);
    let ask = |lab: &Lab, n: usize| {
        let (seen, failed) = requests_to(lab, target, n);
        assert!(failed.is_empty(), "{failed:?}");
        seen
    };
    let seen = ask(&lab, 20);
    assert!(
        seen.keys().all(|k| k == "n3" || k == "n4") && seen.len() == 2,
        "{seen:?}"
    );
    let table = stdout(
        &lab,
        &lab.node("n1").ns,
        &["nft", "list", "table", "netdev", "kube_vrrp"],
    );
    assert!(table.contains("ip6 daddr 2001:db8:1::51"), "{table}");
    let pid = nginx.remove(1);
    lab.signal_tree(pid, Signal::SIGKILL);
    lab.signal(pid, Signal::SIGKILL);
    wait_up(&lab, "n1", "1/2");
    assert_eq!(ask(&lab, 6), [("n3".to_string(), 6)].into());
}

/// `n` keep-alive connections from the client to the VIP.
fn keep_alive(lab: &Lab, n: usize) -> Vec<std::net::TcpStream> {
    let conns = kube_vrrp_e2e::keep_alive(&lab.client.ns, vip_addr(), n);
    assert_eq!(conns.len(), n, "every connection opens");
    conns
}

use kube_vrrp_e2e::ask;

/// IPVS keeps established connections on their real server when the set changes: so does
/// direct routing (each flow pinned in a map with a timeout). A real server that fails only
/// its check (it still serves) keeps its connections while it is out, and connections opened
/// meanwhile keep theirs when it comes back. Before the pinning, every connection of the
/// server taken out was reset (9 of 9), and 7 of 30 opened meanwhile reset on its return.
#[test]
fn direct_routing_keeps_established_connections_while_the_real_servers_change() {
    let yaml = config(
        "    forwarding: DirectRouting\n    realServers: [{address: 198.51.100.13}, {address: 198.51.100.14}, {address: 198.51.100.15}]\n    \
         check: {delayLoop: 200ms, connectTimeout: 100ms, retry: 0, port: 9000, tcp: {}}\n",
    );
    let (mut lab, _, _, _) = two_nodes_of(5, &yaml);
    dr_real_servers(&mut lab, &["n3", "n4", "n5"]);
    let check_ports: BTreeMap<&str, u32> = ["n3", "n4", "n5"]
        .into_iter()
        .map(|n| (n, lab.spawn_nginx(n, 9000, None)))
        .collect();
    let n1ns = lab.node("n1").ns.clone();
    assert!(wait_for(WAIT, || lab.holds(&n1ns, VIP)).is_some());
    wait_up(&lab, "n1", "3/3");
    let mut first = keep_alive(&lab, 24);
    let owners: Vec<String> = first.iter_mut().map(|s| ask(s).expect("first")).collect();
    let on_n4 = owners.iter().filter(|o| *o == "n4").count();
    assert!(on_n4 > 0, "{owners:?}");
    // n4 fails its check only: out of the table, still serving its connections.
    let pid = check_ports["n4"];
    lab.signal_tree(pid, Signal::SIGKILL);
    lab.signal(pid, Signal::SIGKILL);
    wait_up(&lab, "n1", "2/3");
    let again: Vec<Result<String, String>> = first.iter_mut().map(ask).collect();
    let kept = owners
        .iter()
        .zip(&again)
        .filter(|(o, a)| a.as_ref().ok() == Some(*o))
        .count();
    assert_eq!(kept, owners.len(), "{owners:?} then {again:?}");
    // Opened while n4 is out: none goes to it; and when it comes back, none moves.
    let mut second = keep_alive(&lab, 24);
    let owners2: Vec<String> = second.iter_mut().map(|s| ask(s).expect("second")).collect();
    assert!(!owners2.iter().any(|o| o == "n4"), "{owners2:?}");
    lab.spawn_nginx("n4", 9000, None);
    wait_up(&lab, "n1", "3/3");
    for (conns, owners) in [(&mut first, &owners), (&mut second, &owners2)] {
        let now: Vec<Result<String, String>> = conns.iter_mut().map(ask).collect();
        let same = owners
            .iter()
            .zip(&now)
            .filter(|(o, a)| a.as_ref().ok() == Some(*o))
            .count();
        assert_eq!(same, owners.len(), "{owners:?} then {now:?}");
    }
}

/// The classic two-node LVS-DR: the two directors are each other's real servers. The master
/// delivers its own share locally and forwards the rest to the backup, which takes it (no
/// notify script binds the address there) and never forwards it again: before, each director
/// rewrote the frames to the other's MAC for ever (about 296,000 frames/s from one SYN) while
/// both said `up: 2/2`.
#[test]
fn directors_that_are_each_others_real_servers_serve_without_a_loop() {
    let yaml = config(
        "    forwarding: DirectRouting\n    allowNodeAddresses: true\n    realServers: [{address: 198.51.100.11}, {address: 198.51.100.12}]\n    \
         check: {delayLoop: 200ms, connectTimeout: 100ms, retry: 0, tcp: {}}\n",
    );
    let (mut lab, _, _, _) = two_nodes_of(2, &yaml);
    for n in ["n1", "n2"] {
        lab.spawn_nginx(n, PORT, None);
    }
    wait_holders(&lab, VIP, &["n1"]);
    wait_up(&lab, "n1", "2/2");
    wait_up(&lab, "n2", "2/2");
    let frames = |lab: &Lab| -> u64 {
        let out = stdout(
            lab,
            &lab.bridge_ns,
            &["cat", "/sys/class/net/p2/statistics/tx_packets"],
        );
        out.trim().parse().unwrap_or(0)
    };
    let before = frames(&lab);
    let (seen, failed) = requests(&lab, 30);
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        seen.get("n1").is_some_and(|c| *c > 0) && seen.get("n2").is_some_and(|c| *c > 0),
        "both directors serve: {seen:?}"
    );
    // Frames towards n2 over 30 requests (its share, the checks, VRRP): hundreds, not the
    // hundreds of thousands of a loop.
    std::thread::sleep(Duration::from_millis(500));
    let sent = frames(&lab) - before;
    assert!(sent < 2000, "{sent} frames to n2");
}

/// Long-lived connections through a director pair whose master crashes (agent killed, link
/// cut): every one keeps its real server after the backup takes over. NAT and full NAT share
/// connection tracking (`--sync-connections eth0`: conntrackd injects the master's entries
/// into the backup's kernel ahead); direct routing needs nothing shared, both directors
/// compute the same table. Before: NAT lost 14 of 20, full NAT 20 of 20.
fn connections_survive_a_director_crash(forwarding: &str) {
    let dr = forwarding == "DirectRouting";
    let yaml = config(&format!(
        "    forwarding: {forwarding}\n    realServers: [{{address: 198.51.100.13}}, {{address: 198.51.100.14}}, {{address: 198.51.100.15}}]\n    \
         check: {{delayLoop: 200ms, connectTimeout: 100ms, retry: 1, delayBeforeRetry: 100ms, tcp: {{}}}}\n",
    ));
    let mut lab = Lab::new(5);
    let cfg = write_config(&lab, "vips.yaml", &yaml);
    let mut pids = Vec::new();
    for n in ["n1", "n2"] {
        let ns = lab.node(n).ns.clone();
        let mut argv = agent_argv(&cfg, n);
        if !dr {
            argv.extend(["--sync-connections", "eth0"]);
        }
        pids.push(lab.spawn(&ns, &argv, &format!("agent-{n}.log")));
        let up = wait_for(WAIT, || lab.http_get(&ns, status_addr(), "/status").is_ok());
        assert!(up.is_some(), "{}", lab.log(&format!("agent-{n}.log")));
    }
    if dr {
        dr_real_servers(&mut lab, &["n3", "n4", "n5"]);
    } else {
        forward(&lab);
        real_servers(&mut lab);
    }
    if forwarding == "NAT" {
        nat_routes(&lab, &["n3", "n4", "n5"]);
    }
    // (Direct routing's real servers hold the VIP too, on lo.)
    let holds = |lab: &Lab, n: &str| {
        let ns = lab.node(n).ns.clone();
        wait_for(WAIT, || lab.holds(&ns, VIP)).is_some()
    };
    assert!(holds(&lab, "n1"));
    wait_up(&lab, "n1", "3/3");
    wait_up(&lab, "n2", "3/3");
    if forwarding == "FullNAT" {
        // The directors' own connections come from their own address (the virtual one is
        // the backup's for no reply), so both reach the service.
        for n in ["n1", "n2"] {
            let ns = lab.node(n).ns.clone();
            let got = lab.http_get(&ns, vip_addr(), "/");
            assert!(got.is_ok(), "from {n}: {got:?}");
        }
    }
    let mut conns = keep_alive(&lab, 20);
    let owners: Vec<String> = conns.iter_mut().map(|s| ask(s).expect("before")).collect();
    if !dr {
        // The backup's kernel holds the master's 20 entries before the crash.
        let n2 = lab.node("n2").ns.clone();
        let synced = wait_for(WAIT, || {
            let out = stdout(
                &lab,
                &n2,
                &[
                    "conntrack",
                    "-L",
                    "-p",
                    "tcp",
                    "--orig-dst",
                    VIP,
                    "--state",
                    "ESTABLISHED",
                ],
            );
            out.lines().count() >= 20
        });
        assert!(synced.is_some(), "{}", lab.log("agent-n2.log"));
    }
    lab.signal(pids[0], Signal::SIGKILL);
    let n1 = lab.node("n1").clone();
    lab.set_link(&n1, false);
    assert!(holds(&lab, "n2"), "{}", lab.log("agent-n2.log"));
    let after: Vec<Result<String, String>> = conns.iter_mut().map(ask).collect();
    let kept = owners
        .iter()
        .zip(&after)
        .filter(|(o, a)| a.as_ref().ok() == Some(*o))
        .count();
    assert_eq!(
        kept,
        owners.len(),
        "{forwarding}: {owners:?} then {after:?}\n{}",
        lab.log("agent-n2.log")
    );
}

#[test]
fn nat_connections_survive_a_director_crash() {
    connections_survive_a_director_crash("NAT");
}

#[test]
fn full_nat_connections_survive_a_director_crash() {
    connections_survive_a_director_crash("FullNAT");
}

#[test]
fn direct_routing_connections_survive_a_director_crash() {
    connections_survive_a_director_crash("DirectRouting");
}

/// keepalived's `persistence_timeout`: a client's connections all go to one real server
/// (round robin would spread them); when that server goes down its clients choose again,
/// and stick to their new one. Before, the importer carried it as SourceHash without a
/// timeout, and the CRD had no field for it.
#[test]
fn persistence_keeps_a_client_on_one_real_server_until_it_goes_down() {
    let yaml = config(
        "    forwarding: FullNAT\n    persistenceTimeout: 30s\n    realServers: [{address: 198.51.100.13}, {address: 198.51.100.14}, {address: 198.51.100.15}]\n    \
         check: {delayLoop: 200ms, connectTimeout: 100ms, retry: 0, tcp: {}}\n",
    );
    let (mut lab, _, _, _) = two_nodes_of(5, &yaml);
    forward(&lab);
    let mut nginx = real_servers(&mut lab);
    wait_holders(&lab, VIP, &["n1"]);
    wait_up(&lab, "n1", "3/3");
    let (seen, failed) = requests(&lab, 12);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(seen.len(), 1, "one client, one real server: {seen:?}");
    let first = seen.keys().next().unwrap().clone();
    let pid = nginx.remove(first.as_str()).unwrap();
    lab.signal_tree(pid, Signal::SIGKILL);
    lab.signal(pid, Signal::SIGKILL);
    wait_up(&lab, "n1", "2/3");
    let (seen, failed) = requests(&lab, 12);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(!seen.contains_key(&first), "{seen:?}");
}

/// After SIGKILL the tables stay (and keep serving) until the node's next agent starts: its
/// first programming removes them, whatever its configuration.
#[test]
fn a_killed_agents_tables_are_removed_by_the_next_agent() {
    let yaml = config(
        "    forwarding: DirectRouting\n    realServers: [{address: 198.51.100.13}]\n    \
         check: {delayLoop: 200ms, connectTimeout: 100ms, retry: 0, tcp: {}}\n",
    );
    let (mut lab, _, p1, _) = two_nodes_of(3, &yaml);
    dr_real_servers(&mut lab, &["n3"]);
    wait_up(&lab, "n1", "1/1");
    let n1 = lab.node("n1").ns.clone();
    let tables = |lab: &Lab| stdout(lab, &n1, &["nft", "list", "tables"]);
    assert!(tables(&lab).contains("inet kube_vrrp") && tables(&lab).contains("netdev kube_vrrp"));
    lab.signal(p1, Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        tables(&lab).contains("kube_vrrp"),
        "left until the next agent"
    );
    // The next agent runs no virtual server at all.
    let plain = write_config(
        &lab,
        "plain.yaml",
        &vip_yaml("web", 51, &["198.51.100.50/24"], &fast("")),
    );
    start_agent(&mut lab, "n1", &plain);
    let gone = wait_for(WAIT, || !tables(&lab).contains("kube_vrrp"));
    assert!(
        gone.is_some(),
        "{}\n{}",
        tables(&lab),
        lab.log("agent-n1.log")
    );
}

/// One GET from the client's namespace on a new connection from source port `sport`: the
/// real server that answered.
fn get_from_port(lab: &Lab, sport: u16) -> Result<String, String> {
    let ns_path = format!("/run/netns/{}", lab.client.ns);
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        use std::os::fd::AsFd;
        let f = std::fs::File::open(&ns_path).map_err(|e| e.to_string())?;
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| e.to_string())?;
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .map_err(|e| e.to_string())?;
        s.set_reuse_address(true).map_err(|e| e.to_string())?;
        let from: SocketAddr = format!("198.51.100.100:{sport}").parse().unwrap();
        s.bind(&from.into()).map_err(|e| e.to_string())?;
        s.connect_timeout(&vip_addr().into(), Duration::from_secs(1))
            .map_err(|e| e.to_string())?;
        let mut s: std::net::TcpStream = s.into();
        s.set_read_timeout(Some(Duration::from_secs(2))).ok();
        s.write_all(b"GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut body = String::new();
        s.read_to_string(&mut body).map_err(|e| e.to_string())?;
        Ok(body
            .split_once("\r\n\r\n")
            .ok_or("no header")?
            .1
            .trim()
            .to_string())
    })
    .join()
    .map_err(|_| "panicked".to_string())?
}

/// A client reuses a source port whose last connection went to a real server that has died
/// since: the new connection (its SYN) is chosen afresh, not sent to the dead server the old
/// flow was pinned to. (A heavy client, or many behind one NAT, reuses ports within seconds.)
#[test]
fn direct_routing_chooses_a_reused_ports_new_connection_afresh() {
    let (mut lab, mut nginx) = dr_pair();
    let n1ns = lab.node("n1").ns.clone();
    assert!(wait_for(WAIT, || lab.holds(&n1ns, VIP)).is_some());
    wait_up(&lab, "n1", "2/2");
    // Ports whose flows went to n4.
    let on_n4: Vec<u16> = (41000..41040)
        .filter(|p| get_from_port(&lab, *p).as_deref() == Ok("n4"))
        .collect();
    assert!(!on_n4.is_empty());
    let pid = nginx.remove(1);
    lab.signal_tree(pid, Signal::SIGKILL);
    lab.signal(pid, Signal::SIGKILL);
    wait_up(&lab, "n1", "1/2");
    let again: Vec<Result<String, String>> =
        on_n4.iter().map(|p| get_from_port(&lab, *p)).collect();
    assert!(
        again.iter().all(|r| r.as_deref() == Ok("n3")),
        "{on_n4:?}: {again:?}"
    );
}

/// `kube-vrrp status` in a director's namespace against a running pair, with a known number
/// of connections: 6 kept open (2 per real server by round robin) and 3 closed. The text
/// and JSON say ActiveConn 2 for each real server, Conns 9 in all, packets and bytes both
/// ways; `-c` lists the 6; the backup shows the same service on standby and counts nothing.
#[test]
fn kube_vrrp_status_shows_what_ipvsadm_would_with_counts_of_known_connections() {
    let yaml = config(
        "    forwarding: FullNAT\n    realServers: [{address: 198.51.100.13}, {address: 198.51.100.14}, {address: 198.51.100.15}]\n    \
         check: {delayLoop: 1s, connectTimeout: 500ms, tcp: {}}\n",
    );
    let (mut lab, _, _, _) = two_nodes_of(5, &yaml);
    forward(&lab);
    real_servers(&mut lab);
    wait_holders(&lab, VIP, &["n1"]);
    wait_up(&lab, "n1", "3/3");
    let mut open = keep_alive(&lab, 6);
    for s in &mut open {
        assert!(ask(s).is_ok());
    }
    let (seen, failed) = requests(&lab, 3);
    assert!(failed.is_empty() && seen.len() == 3, "{seen:?} {failed:?}");
    let bin = kube_vrrp_e2e::kube_vrrp_binary();
    let bin = bin.to_str().unwrap();
    let run = |node: &str, args: &[&str]| {
        let mut argv = vec![bin, "status"];
        argv.extend_from_slice(args);
        let out = lab.exec(&lab.node(node).ns, &argv);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The agent samples every 2 s: wait for a sample that has seen all 9.
    let mut json = Value::Null;
    let sampled = wait_for(Duration::from_secs(10), || {
        json = serde_json::from_str(&run("n1", &["--json"])).unwrap();
        json["virtualServers"][0]["totals"]["conns"] == 9
    });
    assert!(sampled.is_some(), "{json:#}");
    // And a second sample: rates (what passed in its 2 s; no new connection since).
    let mut rated = Value::Null;
    let second = wait_for(Duration::from_secs(10), || {
        rated = serde_json::from_str(&run("n1", &["--json"])).unwrap();
        rated["virtualServers"][0]["rates"].is_object()
    });
    assert!(second.is_some(), "{rated:#}");
    assert_eq!(
        rated["virtualServers"][0]["rates"]["conns"], 0.0,
        "{rated:#}"
    );
    let vs = &json["virtualServers"][0];
    assert_eq!(
        (
            &vs["name"],
            &vs["scheduler"],
            &vs["forwarding"],
            &vs["serving"]
        ),
        (
            &Value::from("198.51.100.50:80/TCP"),
            &Value::from("rr"),
            &Value::from("FullNat"),
            &Value::from(true)
        ),
        "{json:#}"
    );
    assert_eq!(vs["connections"]["active"], 6, "{json:#}");
    for r in vs["realServers"].as_array().unwrap() {
        assert_eq!(r["connections"]["active"], 2, "{json:#}");
        assert_eq!(r["totals"]["conns"], 3, "{json:#}");
        assert!(
            r["totals"]["inPackets"].as_u64().unwrap() >= 3 * 3,
            "{json:#}"
        );
        assert!(
            r["totals"]["outPackets"].as_u64().unwrap() >= 3 * 2,
            "{json:#}"
        );
        assert!(
            r["totals"]["outBytes"].as_u64().unwrap()
                > r["totals"]["outPackets"].as_u64().unwrap() * 40,
            "{json:#}"
        );
    }
    let text = run("n1", &[]);
    assert!(text.contains("TCP  198.51.100.50:80 rr serving"), "{text}");
    assert!(
        text.contains("  -> 198.51.100.13:80            FullNat  1      2"),
        "{text}"
    );
    let stats = run("n1", &["--stats"]);
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("TCP  198.51.100.50:80")
                && l.split_whitespace().nth(2) == Some("9")),
        "{stats}"
    );
    let listing = run("n1", &["-c"]);
    assert_eq!(
        listing
            .lines()
            .filter(|l| l.contains("ESTABLISHED"))
            .count(),
        6,
        "{listing}"
    );
    // /metrics: the same figures per real server, and the checks' latency as a histogram
    // (the checks go from the director itself: never counted as served connections).
    let metrics = lab
        .http_get(&lab.node("n1").ns, status_addr(), "/metrics")
        .unwrap();
    kube_vrrp_e2e::promtool_check(&metrics).unwrap();
    let real = "real_server=\"198.51.100.13:80\"";
    let sample = |name: &str, extra: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l.contains(real) && l.contains(extra))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert_eq!(
        sample("kube_vrrp_real_server_connections{", "state=\"active\""),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        sample("kube_vrrp_real_server_connections_total{", ""),
        Some(3.0),
        "{metrics}"
    );
    assert!(
        sample("kube_vrrp_real_server_packets_total{", "direction=\"out\"").unwrap() >= 6.0,
        "{metrics}"
    );
    assert!(
        sample("kube_vrrp_real_server_check_duration_seconds_count{", "").unwrap() >= 1.0,
        "{metrics}"
    );
    assert!(
        sample(
            "kube_vrrp_real_server_check_duration_seconds_bucket{",
            "le=\"+Inf\""
        )
        .unwrap()
            >= 1.0,
        "{metrics}"
    );
    // Shown with --nocapture (the closing note quotes it).
    eprintln!("{text}\n{stats}\n{}\n{listing}", run("n1", &["--rate"]));
    // The backup: on standby, nothing through it.
    let backup: Value = serde_json::from_str(&run("n2", &["--json"])).unwrap();
    assert_eq!(backup["virtualServers"][0]["serving"], false, "{backup:#}");
    assert_eq!(
        backup["virtualServers"][0]["totals"]["conns"], 0,
        "{backup:#}"
    );
    drop(open);
}

/// A two-armed NAT director pair as one VirtualIP: the service address on the front network
/// (eth0, where VRRP runs) and the real servers' gateway on the back one
/// (`203.0.113.254/24 dev eth1`, keepalived's `dev`). The real servers are on the back
/// network only, routed through the gateway, so every reply comes back through the master.
/// The back interface is tracked: when it goes down the master hands both addresses over; and
/// when the master crashes (its agent and warden killed, both links cut) the backup takes
/// both, announces the gateway on the back network from its own MAC, and serves.
#[test]
fn a_two_armed_nat_director_pair_serves_a_back_network_and_survives_a_crash() {
    const GATEWAY: &str = "203.0.113.254";
    let yaml = vip_yaml(
        "web",
        51,
        &["198.51.100.50/24", "203.0.113.254/24 dev eth1"],
        &fast(&format!(
            "  virtualServers:\n  - address: {VIP}\n    port: {PORT}\n    \
             realServers: [{{address: 203.0.113.13}}, {{address: 203.0.113.14}}]\n    \
             check: {{delayLoop: 500ms, connectTimeout: 300ms, retry: 0, tcp: {{}}}}\n"
        )),
    );
    let mut lab = Lab::new(4);
    lab.add_management();
    // The real servers: on the back network only, their gateway the VirtualIP's.
    for n in ["n3", "n4"] {
        let ns = lab.node(n).ns.clone();
        sh(&lab, &ns, &["ip", "link", "set", "eth0", "down"]);
        sh(
            &lab,
            &ns,
            &["ip", "route", "replace", "default", "via", GATEWAY],
        );
    }
    // The client: on the front network only.
    let client = lab.client.ns.clone();
    sh(&lab, &client, &["ip", "link", "set", "eth1", "down"]);
    forward(&lab);
    let cfg = write_config(&lab, "vips.yaml", &yaml);
    let p1 = start_agent(&mut lab, "n1", &cfg);
    start_agent(&mut lab, "n2", &cfg);
    real_servers_on(&mut lab, &["n3", "n4"]);
    wait_holders(&lab, VIP, &["n1"]);
    wait_holders(&lab, GATEWAY, &["n1"]);
    // Bound on its own interface, not on the one VRRP runs on.
    let n1 = lab.node("n1").ns.clone();
    let on =
        |ns: &str, dev: &str| stdout(&lab, ns, &["ip", "-4", "-o", "addr", "show", "dev", dev]);
    assert!(on(&n1, "eth1").contains(GATEWAY), "{}", on(&n1, "eth1"));
    assert!(!on(&n1, "eth0").contains(GATEWAY), "{}", on(&n1, "eth0"));
    wait_up(&lab, "n1", "2/2");
    let (seen, failed) = requests(&lab, 20);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(
        seen,
        [("n3".to_string(), 10), ("n4".to_string(), 10)].into(),
        "round robin over the back network"
    );
    // NAT: the real servers saw the client's own address.
    let seen_by = stdout(
        &lab,
        &lab.node("n3").ns,
        &["ss", "-tn", "state", "time-wait"],
    );
    assert!(seen_by.contains("198.51.100.100"), "{seen_by}");

    // The back interface goes down on the master: it is tracked, so both addresses move.
    sh(&lab, &n1, &["ip", "link", "set", "eth1", "down"]);
    wait_holders(&lab, VIP, &["n2"]);
    wait_holders(&lab, GATEWAY, &["n2"]);
    wait_up(&lab, "n2", "2/2");
    let (seen, failed) = requests(&lab, 4);
    assert!(
        failed.is_empty() && seen.values().sum::<usize>() == 4,
        "{seen:?} {failed:?}"
    );
    // Back up: n1 (priority 200) takes both back.
    sh(&lab, &n1, &["ip", "link", "set", "eth1", "up"]);
    wait_holders(&lab, VIP, &["n1"]);
    wait_holders(&lab, GATEWAY, &["n1"]);
    let served = wait_for(Duration::from_secs(5), || {
        lab.http_get(&client, vip_addr(), "/").is_ok()
    });
    assert!(served.is_some(), "{}", lab.log("agent-n1.log"));

    // The master crashes: agent and warden killed, both links cut.
    lab.signal_tree(p1, Signal::SIGKILL);
    lab.signal(p1, Signal::SIGKILL);
    let n1_node = lab.node("n1").clone();
    lab.set_link(&n1_node, false);
    sh(&lab, &n1, &["ip", "link", "set", "eth1", "down"]);
    // (The dead n1 keeps its copies, cut off, until their lifetime ends.)
    let n2 = lab.node("n2").ns.clone();
    let took = wait_for(WAIT, || lab.holds(&n2, VIP) && lab.holds(&n2, GATEWAY));
    assert!(took.is_some(), "{}", lab.log("agent-n2.log"));
    // The real servers learn the gateway's new MAC from n2's announcement on the back network.
    let served = wait_for(Duration::from_secs(5), || {
        lab.http_get(&client, vip_addr(), "/").is_ok()
    });
    assert!(served.is_some(), "{}", lab.log("agent-n2.log"));
    let (seen, failed) = requests(&lab, 10);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(
        seen,
        [("n3".to_string(), 5), ("n4".to_string(), 5)].into(),
        "n2 serves both real servers"
    );
    let n2_eth1 = mac_of_dev(&lab, "n2", "eth1");
    let neigh = stdout(&lab, &lab.node("n3").ns, &["ip", "neigh", "show", GATEWAY]);
    assert!(neigh.contains(&n2_eth1), "{neigh} (n2's eth1: {n2_eth1})");
}

/// An interface's MAC in a node.
fn mac_of_dev(lab: &Lab, node: &str, dev: &str) -> String {
    let out = stdout(
        lab,
        &lab.node(node).ns,
        &["cat", &format!("/sys/class/net/{dev}/address")],
    );
    out.trim().to_string()
}

/// Runs a command in a namespace, asserting success.
fn sh(lab: &Lab, ns: &str, args: &[&str]) {
    let out = lab.exec(ns, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
