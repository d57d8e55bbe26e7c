//! What the namespace lab tests of the standalone agent share: a config file, an agent on a
//! node, its `/status`, a VirtualIP document, two nodes running one file, who holds a VIP, and
//! what the client's neighbour table says.

use std::net::SocketAddr;
use std::time::Duration;

use kube_vrrp_e2e::{AGENT_STATUS, Lab, wait_for};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_kube-vrrp");
pub const VIP: &str = "198.51.100.50";
pub const WAIT: Duration = Duration::from_secs(6);

pub fn status_addr() -> SocketAddr {
    AGENT_STATUS.parse().unwrap()
}

/// Writes `yaml` into the lab's directory as `name`; returns its path.
pub fn write_config(lab: &Lab, name: &str, yaml: &str) -> String {
    let p = lab.dir().join(name);
    std::fs::write(&p, yaml).unwrap();
    p.display().to_string()
}

/// `kube-vrrp agent --standalone --config CONFIG --node-name NODE --listen` (the status
/// address), for a test that starts an agent its own way (another log, a user, a flag).
pub fn agent_argv<'a>(config: &'a str, node: &'a str) -> Vec<&'a str> {
    kube_vrrp_e2e::standalone_agent_argv(BIN, config, node)
}

/// openssl's arguments for a new P-256 key (`req -newkey`, unencrypted).
pub const EC_P256: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// Runs `openssl ARGS` in `dir`; panics with its stderr when it fails.
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A standalone agent on `node` reading `config`, its status listener on.
pub fn start_agent(lab: &mut Lab, node: &str, config: &str) -> u32 {
    lab.spawn_agent_with_file(std::path::Path::new(BIN), node, config, true)
}

/// The agent's `/status` on `node`.
pub fn status(lab: &Lab, node: &str) -> Value {
    let body = lab
        .http_get(&lab.node(node).ns, status_addr(), "/status")
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

/// A VirtualIP document, n1 preferred (200 over 150); `extra` is appended to the spec
/// (indented two spaces).
pub fn vip_yaml(name: &str, vrid: u8, addresses: &[&str], extra: &str) -> String {
    let addrs: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: {name}}}\nspec:\n  addresses: [{}]\n  \
         virtualRouterID: {vrid}\n  priorities: [{{node: n1, priority: 200}}, {{node: n2, priority: 150}}]\n{extra}",
        addrs.join(", ")
    )
}

/// `extra` with a 100 ms advertisement interval.
pub fn fast(extra: &str) -> String {
    format!("  advertInterval: 100ms\n{extra}")
}

/// A lab of two nodes, each running an agent on one file of `yaml`: (lab, file, pids).
pub fn two_nodes(yaml: &str) -> (Lab, String, u32, u32) {
    two_nodes_of(2, yaml)
}

/// A lab of `n` nodes, n1 and n2 running agents on one file of `yaml`.
pub fn two_nodes_of(n: usize, yaml: &str) -> (Lab, String, u32, u32) {
    let mut lab = Lab::new(n);
    let cfg = write_config(&lab, "vips.yaml", yaml);
    let p1 = start_agent(&mut lab, "n1", &cfg);
    let p2 = start_agent(&mut lab, "n2", &cfg);
    (lab, cfg, p1, p2)
}

/// Waits until exactly `expected` hold `vip`; panics with both agents' logs otherwise.
pub fn wait_holders(lab: &Lab, vip: &str, expected: &[&str]) {
    let ok = wait_for(WAIT, || lab.holders(vip) == expected);
    assert!(
        ok.is_some(),
        "holders of {vip}: {:?}, expected {expected:?}\n--- n1\n{}\n--- n2\n{}",
        lab.holders(vip),
        lab.log("agent-n1.log"),
        lab.log("agent-n2.log")
    );
}

/// What a command prints in namespace `ns`.
pub fn stdout(lab: &Lab, ns: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&lab.exec(ns, args).stdout).into_owned()
}

/// The MAC address of `node`'s eth0.
pub fn mac_of(lab: &Lab, node: &str) -> String {
    stdout(
        lab,
        &lab.node(node).ns,
        &["cat", "/sys/class/net/eth0/address"],
    )
    .trim()
    .to_string()
}

/// The MAC address the client's neighbour table has for `addr`.
pub fn neighbor_mac(lab: &Lab, addr: &str) -> Option<String> {
    let text = stdout(lab, &lab.client.ns, &["ip", "neigh", "show", addr]);
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == "lladdr")
        .map(|i| words[i + 1].to_string())
}
