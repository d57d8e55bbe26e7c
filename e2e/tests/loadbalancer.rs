//! `type: LoadBalancer` Services end to end on the namespace lab: the API stand-in (with
//! Services, their status subresource and EndpointSlices), `kube-vrrp controller`, agents on
//! n1 and n2, kubectl as the user. Traffic to a Service address is forwarded to a backend on
//! the node (nginx, answering with the node's name) by an nftables `redirect` rule: a named
//! stand-in for kube-proxy, which cannot run here.

use std::time::{Duration, Instant};

use kube_vrrp_e2e::standin::{Api, KUBE_VRRP_CRDS};
use kube_vrrp_e2e::wait_for;
use serde_json::Value;

const POOL: &str = "apiVersion: kube-vrrp.io/v1alpha1
kind: VirtualIPPool
metadata:
  name: web
spec:
  addresses: [198.51.100.64/29, 2001:db8:1::1:0/125]
  vrrp:
    advertInterval: 100ms
";

/// The stand-in, nodes n1 and n2 with agents, one controller, the pool `web`; returns the
/// controller's and agents' pids.
fn cluster() -> (Api, u32, [u32; 2]) {
    let mut api = Api::start_lab(2, KUBE_VRRP_CRDS, &[]);
    assert!(
        !api.external,
        "these tests run agents in lab namespaces: they need the stand-in"
    );
    api.add_nodes();
    let controller = api.spawn_controller("c1", 9651);
    let agents = [api.spawn_cluster_agent("n1"), api.spawn_cluster_agent("n2")];
    api.wait_registered(&["n1", "n2"]);
    apply(&api, POOL);
    (api, controller, agents)
}

fn apply(api: &Api, yaml: &str) {
    let out = api.apply(yaml, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A LoadBalancer Service of class kube-vrrp.io/vrrp in `default`; `extra` is more spec
/// (indented by 2), `annotations` a flow map.
fn service(name: &str, annotations: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n  annotations: {{{annotations}}}\nspec:\n  type: LoadBalancer\n  loadBalancerClass: kube-vrrp.io/vrrp\n  selector: {{app: {name}}}\n  ports: [{{name: http, port: 80, protocol: TCP}}]\n{extra}"
    )
}

fn get_service(api: &Api, name: &str) -> Value {
    api.json(&["get", "service", name, "-n", "default"])
}

fn ingress(v: &Value) -> Vec<String> {
    v["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str().map(String::from))
        .collect()
}

fn announced(v: &Value) -> Option<&Value> {
    v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "kube-vrrp.io/Announced")
}

/// Waits until `f` holds for Service `name`; returns it, or panics with it and the logs.
fn wait_service(
    api: &Api,
    name: &str,
    timeout: Duration,
    what: &str,
    mut f: impl FnMut(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    let took = wait_for(timeout, || {
        last = get_service(api, name);
        f(&last)
    });
    assert!(
        took.is_some(),
        "Service {name}: {what} not reached in {timeout:?}; last seen:\n{}\n{}",
        serde_json::to_string_pretty(&last).unwrap(),
        api.logs()
    );
    last
}

/// Service Events as (reason, note).
fn events(api: &Api, name: &str) -> Vec<(String, String)> {
    let v = api.json(&["get", "events.events.k8s.io", "-n", "default"]);
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["regarding"]["name"] == name && e["regarding"]["kind"] == "Service")
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["note"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The named stand-in for kube-proxy: TCP to `address`:80 on a node goes to its local
/// backend on 8080.
fn forward(api: &Api, node: &str, address: &str) {
    let ns = api.lab.node(node).ns.clone();
    let (family, table) = if address.contains(':') {
        ("ip6", "kp6")
    } else {
        ("ip", "kp4")
    };
    let rules = format!(
        "table {family} {table} {{\n chain pre {{\n type nat hook prerouting priority -100;\n {family} daddr {address} tcp dport 80 redirect to :8080\n }}\n}}"
    );
    let file = api
        .lab
        .dir()
        .join(format!("kube-proxy-{node}-{table}-{address}.nft"));
    std::fs::write(&file, format!("{rules}\n")).unwrap();
    let out = api
        .lab
        .exec(&ns, &["nft", "-f", &file.display().to_string()]);
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One HTTP GET to address:80 from the client: the answering node's name, or the error.
fn who_answers(api: &Api, address: &str) -> Result<String, String> {
    let addr = if address.contains(':') {
        format!("[{address}]:80")
    } else {
        format!("{address}:80")
    };
    api.lab
        .http_get(&api.lab.client.ns, addr.parse().unwrap(), "/")
        .map(|b| b.trim().to_string())
}

fn ping(api: &Api, address: &str) -> bool {
    api.lab
        .exec(&api.lab.client.ns, &["ping", "-c", "1", "-W", "1", address])
        .status
        .success()
}

#[test]
fn a_service_gets_an_address_answers_and_moves_in_vrrp_time_with_the_api_paused() {
    let (mut api, _, agents) = cluster();
    api.lab.spawn_nginx("n1", 8080, None);
    api.lab.spawn_nginx("n2", 8080, None);
    apply(&api, &service("web", "", ""));
    let v = wait_service(&api, "web", Duration::from_secs(10), "an address", |v| {
        !ingress(v).is_empty()
    });
    let ip = ingress(&v)[0].clone();
    assert_eq!(ip, "198.51.100.64", "the pool's first address: {v}");
    assert_eq!(
        v["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP",
        "{v}"
    );
    for n in ["n1", "n2"] {
        forward(&api, n, &ip);
    }
    let v = wait_service(&api, "web", Duration::from_secs(10), "announced", |v| {
        announced(v).is_some_and(|c| c["status"] == "True")
    });
    let message = announced(&v).unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    let master = message.split_whitespace().next().unwrap().to_string();
    assert!(
        message.starts_with(&format!(
            "{master} answers for {ip} (VirtualIP web-ipv4-0, VRID "
        )),
        "{message}"
    );
    let held = wait_for(Duration::from_secs(5), || {
        api.lab.holders(&ip) == vec![master.clone()]
    });
    assert!(held.is_some(), "{ip} held by {:?}", api.lab.holders(&ip));
    assert!(ping(&api, &ip), "{ip} does not answer ICMP");
    assert_eq!(who_answers(&api, &ip).as_deref(), Ok(master.as_str()));
    let ev = events(&api, "web");
    assert!(
        ev.iter()
            .any(|(r, n)| r == "IPAllocated" && n == "198.51.100.64 from pool web"),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|(r, n)| r == "Announced" && n == &message),
        "{ev:?}"
    );
    // kubectl shows the pool at a glance.
    let table = api.ok(&["get", "virtualippools"]);
    assert!(
        table.contains("web") && table.contains("web-ipv4-0="),
        "{table}"
    );

    // The master crashes (agent killed, link cut) with the API paused: VRRP alone moves it.
    let other = if master == "n1" { "n2" } else { "n1" };
    api.control("/_standin/fault", r#"{"mode": "pause"}"#);
    let crashed = Instant::now();
    let pid = agents[if master == "n1" { 0 } else { 1 }];
    api.lab.signal(pid, nix::sys::signal::Signal::SIGKILL);
    api.lab.set_link(api.lab.node(&master), false);
    let moved = wait_for(Duration::from_secs(5), || {
        api.lab.holds(&api.lab.node(other).ns, &ip)
    })
    .unwrap_or_else(|| panic!("{other} did not take {ip}\n{}", api.logs()));
    let answered = wait_for(Duration::from_secs(5), || {
        who_answers(&api, &ip).as_deref() == Ok(other)
    })
    .unwrap_or_else(|| panic!("{ip} not answered by {other}"));
    // 3 × 100 ms + skew, plus polling.
    assert!(moved < Duration::from_secs(2), "{moved:?}");
    eprintln!(
        "crash of {master} with the API paused: {other} holds {ip} after {moved:?}, answers TCP after {answered:?} ({:?} since the cut)",
        crashed.elapsed()
    );
    api.control("/_standin/fault", r#"{"mode": "none"}"#);
    wait_service(
        &api,
        "web",
        Duration::from_secs(20),
        "the new master",
        |v| {
            announced(v).is_some_and(|c| {
                c["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(&format!("{other} answers for {ip}")))
            })
        },
    );
    api.lab.set_link(api.lab.node(&master), true);
    api.spawn_cluster_agent(&master);

    // Deleting the Service frees its address on every node.
    api.ok(&["delete", "service", "web", "-n", "default"]);
    let freed = wait_for(Duration::from_secs(10), || api.lab.holders(&ip).is_empty());
    assert!(
        freed.is_some(),
        "{ip} still held by {:?}\n{}",
        api.lab.holders(&ip),
        api.logs()
    );
    let gone = wait_for(Duration::from_secs(10), || {
        api.get_json("virtualip", "web-ipv4-0").is_none()
    });
    assert!(gone.is_some(), "the empty router stays\n{}", api.logs());
}
