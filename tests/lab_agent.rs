//! The standalone agent on real sockets and addresses, in network namespaces (needs root).

use std::net::SocketAddr;
use std::time::Duration;

use kube_vrrp_e2e::{Lab, wait_for};
use nix::sys::signal::Signal;

const BIN: &str = env!("CARGO_BIN_EXE_kube-vrrp");
const VIP: &str = "198.51.100.50";

fn status_addr() -> SocketAddr {
    "127.0.0.1:9650".parse().unwrap()
}

fn write_config(lab: &Lab, name: &str, yaml: &str) -> String {
    let p = lab.dir().join(name);
    std::fs::write(&p, yaml).unwrap();
    p.display().to_string()
}

fn start_agent(lab: &mut Lab, node: &str, config: &str) -> u32 {
    let ns = lab.node(node).ns.clone();
    let log = format!("agent-{node}.log");
    let pid = lab.spawn(
        &ns,
        &[
            BIN,
            "agent",
            "--standalone",
            "--config",
            config,
            "--node-name",
            node,
            "--listen",
            "127.0.0.1:9650",
        ],
        &log,
    );
    // Ready when /status answers.
    let ok = wait_for(Duration::from_secs(10), || {
        lab.http_get(&ns, status_addr(), "/status").is_ok()
    });
    assert!(
        ok.is_some(),
        "agent on {node} did not start:\n{}",
        lab.log(&log)
    );
    pid
}

fn two_node_config(interval: &str, preempt: bool) -> String {
    format!(
        r#"apiVersion: kube-vrrp.io/v1alpha1
kind: VirtualIP
metadata: {{name: web}}
spec:
  addresses: ["198.51.100.50/24"]
  virtualRouterID: 51
  advertInterval: {interval}
  preempt: {preempt}
  priorities: [{{node: n1, priority: 200}}, {{node: n2, priority: 150}}]
"#
    )
}

#[test]
fn election_and_crash_failover() {
    let mut lab = Lab::new(2);
    let cfg = write_config(&lab, "web.yaml", &two_node_config("100ms", true));
    let p1 = start_agent(&mut lab, "n1", &cfg);
    start_agent(&mut lab, "n2", &cfg);
    assert!(
        wait_for(Duration::from_secs(5), || lab.holders(VIP) == ["n1"]).is_some(),
        "holders: {:?}",
        lab.holders(VIP)
    );
    let status = lab
        .http_get(&lab.node("n2").ns, status_addr(), "/status")
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let web = &v["instances"]["web/ipv4"];
    assert_eq!(web["state"], "Backup", "{status}");
    assert_eq!(web["master"], "198.51.100.11", "{status}");
    assert_eq!(web["masterPriority"], 200);
    // Crash: the agent dies and its link is cut.
    lab.signal(p1, Signal::SIGKILL);
    let n1 = lab.node("n1").clone();
    lab.set_link(&n1, false);
    let took = wait_for(Duration::from_secs(5), || {
        lab.holds(&lab.node("n2").ns, VIP)
    });
    assert!(
        took.is_some(),
        "n2 never took over:\n{}",
        lab.log("agent-n2.log")
    );
    let metrics = lab
        .http_get(&lab.node("n2").ns, status_addr(), "/metrics")
        .unwrap();
    assert!(
        metrics.contains(
            "kube_vrrp_instance_state{instance=\"web/ipv4\",vrid=\"51\",state=\"master\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        lab.log("agent-n2.log")
            .contains("master down timer expired")
    );
}
