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
    // Announced names the node that answers: once the pool's preferred node has preempted
    // (the first agent up may hold the address for a moment), the two agree.
    let said = |v: &serde_json::Value| -> Option<String> {
        let c = announced(v)?;
        (c["status"] == "True").then(|| c["message"].as_str().unwrap_or_default().to_string())
    };
    let v = wait_service(
        &api,
        "web",
        Duration::from_secs(10),
        "announced by its holder",
        |v| {
            said(v).is_some_and(|m| {
                let master = m.split_whitespace().next().unwrap_or_default().to_string();
                api.lab.holders(&ip) == vec![master]
            })
        },
    );
    let message = said(&v).unwrap();
    let master = message.split_whitespace().next().unwrap().to_string();
    assert!(
        message.starts_with(&format!(
            "{master} answers for {ip} (VirtualIP web-ipv4-0, VRID "
        )),
        "{message}"
    );
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

fn holder_of(api: &Api, ip: &str) -> Vec<String> {
    api.lab.holders(ip)
}

#[test]
fn sharing_requests_dual_stack_exhaustion_and_a_controller_restart_that_changes_nothing() {
    let (mut api, controller, _) = cluster();
    // Dual stack: one address per family, both held and answering.
    apply(
        &api,
        &service(
            "dual",
            "",
            "  ipFamilies: [IPv4, IPv6]\n  ipFamilyPolicy: RequireDualStack\n",
        ),
    );
    let v = wait_service(
        &api,
        "dual",
        Duration::from_secs(10),
        "two addresses",
        |v| ingress(v).len() == 2,
    );
    let dual = ingress(&v);
    assert_eq!(dual, ["198.51.100.64", "2001:db8:1::1:0"], "{v}");
    for ip in &dual {
        let held = wait_for(Duration::from_secs(10), || holder_of(&api, ip).len() == 1);
        assert!(
            held.is_some(),
            "{ip}: {:?}\n{}",
            holder_of(&api, ip),
            api.logs()
        );
        assert!(ping(&api, ip), "{ip} does not answer ICMP");
    }

    // Sharing: the same key and other ports share; a colliding port does not.
    let shared = "kube-vrrp.io/allow-shared-ip: k";
    apply(&api, &service("share-a", shared, ""));
    let a = wait_service(
        &api,
        "share-a",
        Duration::from_secs(10),
        "an address",
        |v| !ingress(v).is_empty(),
    );
    let b_yaml = service("share-b", shared, "")
        .replace("port: 80", "port: 443")
        .replace("name: http", "name: https");
    apply(&api, &b_yaml);
    let b = wait_service(
        &api,
        "share-b",
        Duration::from_secs(10),
        "an address",
        |v| !ingress(v).is_empty(),
    );
    assert_eq!(ingress(&a), ingress(&b), "other ports share");
    apply(&api, &service("share-c", shared, ""));
    let c = wait_service(
        &api,
        "share-c",
        Duration::from_secs(10),
        "an address",
        |v| !ingress(v).is_empty(),
    );
    assert_ne!(ingress(&a), ingress(&c), "port 80 collides: not shared");
    // Without the key, an address in use is refused with the reason.
    let taken = ingress(&a)[0].clone();
    apply(
        &api,
        &service(
            "thief",
            &format!("kube-vrrp.io/loadBalancerIPs: \"{taken}\""),
            "",
        ),
    );
    let t = wait_service(&api, "thief", Duration::from_secs(10), "refused", |v| {
        announced(v).is_some_and(|c| c["reason"] == "AllocationFailed")
    });
    assert!(ingress(&t).is_empty(), "{t}");
    let msg = announced(&t).unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains(&format!("{taken} cannot be given")) && msg.contains("allow-shared-ip"),
        "{msg}"
    );
    assert!(
        events(&api, "thief")
            .iter()
            .any(|(r, n)| r == "AllocationFailed" && n == &msg),
        "{:?}",
        events(&api, "thief")
    );
    // A request for a free address is met.
    apply(
        &api,
        &service(
            "asks",
            "kube-vrrp.io/loadBalancerIPs: \"198.51.100.70\"",
            "",
        ),
    );
    wait_service(&api, "asks", Duration::from_secs(10), "its address", |v| {
        ingress(v) == ["198.51.100.70"]
    });

    // Exhaustion: 8 IPv4 addresses; dual, share-a/b, share-c and asks hold 4.
    for i in 0..4 {
        apply(&api, &service(&format!("fill-{i}"), "", ""));
    }
    for i in 0..4 {
        wait_service(
            &api,
            &format!("fill-{i}"),
            Duration::from_secs(10),
            "an address",
            |v| !ingress(v).is_empty(),
        );
    }
    apply(&api, &service("one-too-many", "", ""));
    let v = wait_service(
        &api,
        "one-too-many",
        Duration::from_secs(10),
        "refused",
        |v| announced(v).is_some_and(|c| c["reason"] == "AllocationFailed"),
    );
    let msg = announced(&v).unwrap()["message"].as_str().unwrap();
    assert!(
        msg.contains("no free IPv4 address in pool \"web\""),
        "{msg}"
    );
    let pool = api.json(&["get", "virtualippool", "web"]);
    assert_eq!(
        pool["status"]["used"],
        8 + 1,
        "8 IPv4 and 1 IPv6 in use: {pool}"
    );
    // Few virtual routers, whatever the number of Services: 2 per family here.
    let routers = api.json(&["get", "virtualips", "-l", "kube-vrrp.io/pool=web"]);
    let names: Vec<&str> = routers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["web-ipv4-0", "web-ipv4-1", "web-ipv6-0"],
        "{routers}"
    );
    let vrids: Vec<&Value> = routers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["status"]["virtualRouterID"])
        .collect();
    eprintln!("routers {names:?}, VRIDs {vrids:?}");

    // A freed address goes to the waiting Service.
    api.ok(&["delete", "service", "fill-3", "-n", "default"]);
    wait_service(
        &api,
        "one-too-many",
        Duration::from_secs(10),
        "the freed address",
        |v| !ingress(v).is_empty(),
    );

    // A controller restart (and a new replica) changes no allocation and writes nothing.
    let before = api.json(&["get", "services", "-n", "default"]);
    let allocations = |list: &Value| -> Vec<(String, Vec<String>)> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["metadata"]["name"].as_str().unwrap().to_string(),
                    ingress(s),
                )
            })
            .collect()
    };
    let routers_before = api.json(&["get", "virtualips", "-l", "kube-vrrp.io/pool=web"]);
    api.lab
        .signal(controller, nix::sys::signal::Signal::SIGKILL);
    api.spawn_controller("c2", 9652);
    // The old lease runs out (5 s), then c2 leads and passes over everything.
    std::thread::sleep(Duration::from_secs(9));
    let led = wait_for(Duration::from_secs(10), || {
        api.lab.log("controller-c2.log").contains("caches ready")
    });
    assert!(led.is_some(), "{}", api.logs());
    let after = api.json(&["get", "services", "-n", "default"]);
    assert_eq!(allocations(&before), allocations(&after));
    let routers_after = api.json(&["get", "virtualips", "-l", "kube-vrrp.io/pool=web"]);
    let specs = |l: &Value| -> Vec<(Value, Value)> {
        l["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["spec"].clone(), r["metadata"]["resourceVersion"].clone()))
            .collect()
    };
    assert_eq!(
        specs(&routers_before),
        specs(&routers_after),
        "routers rewritten"
    );
}

#[test]
fn external_traffic_policy_local_follows_the_ready_endpoints() {
    let (mut api, _, _) = cluster();
    api.lab.spawn_nginx("n1", 8080, None);
    api.lab.spawn_nginx("n2", 8080, None);
    let slice = |nodes: &[(&str, bool)]| {
        let eps: Vec<String> = nodes
            .iter()
            .enumerate()
            .map(|(i, (n, ready))| {
                format!("  - {{addresses: [\"10.0.0.{}\"], nodeName: {n}, conditions: {{ready: {ready}}}}}", i + 1)
            })
            .collect();
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: local-abc\n  namespace: default\n  labels: {{kubernetes.io/service-name: local}}\naddressType: IPv4\nports: [{{name: http, port: 8080, protocol: TCP}}]\nendpoints:\n{}\n",
            if eps.is_empty() {
                "  []".to_string()
            } else {
                eps.join("\n")
            }
        )
    };
    apply(&api, &slice(&[("n2", true)]));
    apply(
        &api,
        &service("local", "", "  externalTrafficPolicy: Local\n"),
    );
    let v = wait_service(
        &api,
        "local",
        Duration::from_secs(10),
        "announced by n2",
        |v| {
            announced(v).is_some_and(|c| {
                c["status"] == "True" && c["message"].as_str().unwrap().starts_with("n2 answers")
            })
        },
    );
    let ip = ingress(&v)[0].clone();
    for n in ["n1", "n2"] {
        forward(&api, n, &ip);
    }
    let held = wait_for(Duration::from_secs(5), || holder_of(&api, &ip) == ["n2"]);
    assert!(held.is_some(), "{:?}", holder_of(&api, &ip));
    assert_eq!(who_answers(&api, &ip).as_deref(), Ok("n2"));
    let router = api.json(&["get", "virtualips", "-l", "kube-vrrp.io/pool=web"]);
    let name = router["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(name.starts_with("web-ipv4-local-"), "{router}");

    // The endpoint moves to n1: n2 hands over by tracker (same router, no restart).
    let moved_at = Instant::now();
    apply(&api, &slice(&[("n1", true), ("n2", false)]));
    let moved = wait_for(Duration::from_secs(5), || {
        who_answers(&api, &ip).as_deref() == Ok("n1")
    })
    .unwrap_or_else(|| {
        panic!(
            "not moved to n1: {:?}\n{}",
            holder_of(&api, &ip),
            api.logs()
        )
    });
    eprintln!(
        "ETP Local: endpoint moved to n1, n1 answers after {moved:?} ({:?} since the apply)",
        moved_at.elapsed()
    );
    let n2 = api.wait_vip(&name, Duration::from_secs(10), "n2 drained", |v| {
        v["status"]["nodes"].as_array().is_some_and(|ns| {
            ns.iter().any(|e| {
                e["node"] == "n2"
                    && e["checks"].as_array().is_some_and(|c| {
                        c.iter().any(|c| {
                            c["name"] == "node"
                                && c["result"].as_str().is_some_and(|r| {
                                    r.contains("no ready endpoint of Service default/local")
                                })
                        })
                    })
            })
        })
    });
    assert_eq!(n2["status"]["master"], "n1", "{n2}");

    // No ready endpoint anywhere: announced nowhere, and the status says so.
    apply(&api, &slice(&[("n1", false)]));
    // The master hands over gracefully (it keeps the address up to 3 advertisement intervals
    // waiting for a successor, and none comes), after the controller's pass through the
    // Python stand-in: 5 s failed 2 runs in 14 here with the three tests in parallel.
    let gone = wait_for(Duration::from_secs(10), || holder_of(&api, &ip).is_empty());
    assert!(gone.is_some(), "{:?}", holder_of(&api, &ip));
    let v = wait_service(
        &api,
        "local",
        Duration::from_secs(10),
        "announced nowhere",
        |v| announced(v).is_some_and(|c| c["reason"] == "NoReadyEndpoints"),
    );
    let msg = announced(&v).unwrap()["message"].as_str().unwrap();
    assert!(msg.contains(&format!("{ip} is announced nowhere")), "{msg}");
    assert_eq!(ingress(&v), vec![ip], "the address stays allocated");
}

/// Grants of the chart (deploy/kube-vrrp.yaml) that the lifecycle below never uses, and why
/// each stays. Every other grant must be used: an unused one is dropped from the chart.
const UNUSED_AND_WHY: &[(&str, &str)] = &[];

/// The stand-in enforces the chart's RBAC (ServiceAccount tokens, Roles, bindings) for every
/// test here and in cluster.rs; a refused request fails the test that made it. This one walks
/// the whole lifecycle (a VirtualIP with a Secret, a Service with externalTrafficPolicy Local,
/// deletions of both and of a Node, leader election) and then asks which grants nothing used.
#[test]
fn the_charts_rbac_grants_what_the_controller_and_agents_use_and_no_more() {
    let (mut api, _, _) = cluster();
    assert!(
        api.rbac.is_some(),
        "the stand-in must enforce the chart's RBAC"
    );
    // A VRRPv2 password from a Secret in the release namespace (the chart's default).
    apply(
        &api,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: vrrp, namespace: kube-vrrp-system}\ndata: {password: czNjcmV0}\n",
    );
    apply(
        &api,
        "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata:\n  name: plain\nspec:\n  addresses: [\"198.51.100.80/24\"]\n  version: 2\n  authentication:\n    passwordSecretRef: {name: vrrp, namespace: kube-vrrp-system, key: password}\n",
    );
    api.wait_vip("plain", Duration::from_secs(20), "Ready", |v| {
        v["status"]["phase"] == "Ready"
    });
    // A Service whose endpoints are on n2 only.
    apply(
        &api,
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: local-abc\n  namespace: default\n  labels: {kubernetes.io/service-name: local}\naddressType: IPv4\nports: [{name: http, port: 8080, protocol: TCP}]\nendpoints:\n  - {addresses: [\"10.0.0.1\"], nodeName: n2, conditions: {ready: true}}\n",
    );
    apply(
        &api,
        &service("local", "", "  externalTrafficPolicy: Local\n"),
    );
    wait_service(&api, "local", Duration::from_secs(10), "announced", |v| {
        announced(v).is_some_and(|c| c["status"] == "True")
    });
    // Deleting the Service deletes its router; deleting the VirtualIP releases its finalizer;
    // deleting a Node deletes its configuration.
    api.ok(&["delete", "service", "local", "-n", "default"]);
    let gone = wait_for(Duration::from_secs(10), || {
        api.json(&["get", "virtualips", "-l", "kube-vrrp.io/pool=web"])["items"]
            .as_array()
            .is_some_and(|a| a.is_empty())
    });
    assert!(
        gone.is_some(),
        "the router outlived its Service\n{}",
        api.logs()
    );
    api.ok(&["delete", "virtualip", "plain", "--wait=false"]);
    let gone = wait_for(Duration::from_secs(20), || {
        api.get_json("virtualip", "plain").is_none()
    });
    assert!(gone.is_some(), "plain was not released\n{}", api.logs());
    api.ok(&["delete", "node", "n2"]);
    let gone = wait_for(Duration::from_secs(10), || {
        api.get_json("virtualipnodeconfig", "n2").is_none()
    });
    assert!(gone.is_some(), "n2's configuration stayed\n{}", api.logs());
    // An agent's token reads no VirtualIP: kubectl shows kube-apiserver's refusal.
    let agent = api.kubeconfig_of("agent");
    let out = api.lab.exec(
        &api.lab.client.ns,
        &["kubectl", "--kubeconfig", &agent, "get", "virtualips"],
    );
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error from server (Forbidden): virtualips.kube-vrrp.io is forbidden: User \"system:serviceaccount:kube-vrrp-system:kube-vrrp-agent\" cannot list resource \"virtualips\" in API group \"kube-vrrp.io\" at the cluster scope"
    );
    api.expected_denials
        .push("cannot list resource \"virtualips\"".into());
    // The 5 s lease has been renewed by now (the lifecycle takes longer).
    let report = api.rbac_report().unwrap();
    let list = |k: &str| -> Vec<String> {
        report[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    eprintln!("RBAC used:\n  {}", list("used").join("\n  "));
    eprintln!("RBAC granted, unused:\n  {}", list("unused").join("\n  "));
    assert_eq!(list("denied").len(), 1, "{:?}", list("denied"));
    let explained: Vec<String> = UNUSED_AND_WHY.iter().map(|(g, _)| g.to_string()).collect();
    assert_eq!(
        list("unused"),
        explained,
        "every grant of the chart is used, or stays for the reason UNUSED_AND_WHY gives"
    );
}
