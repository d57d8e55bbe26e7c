//! The Kubernetes API stand-in (e2e/kube-standin) driven by a real kubectl 1.32, one test per
//! behaviour. The stand-in runs in the lab's `api` namespace on the management segment, kubectl
//! in the client namespace. Needs root, python3 with PyYAML and kubectl; fails without them.

use std::time::Duration;

use kube_vrrp_e2e::standin::{Api, widget};
use nix::sys::signal::Signal;

#[test]
fn discovery_lists_crds_and_builtins() {
    let api = Api::start();
    let res = api.ok(&["api-resources"]);
    let widgets = res
        .lines()
        .find(|l| l.starts_with("widgets"))
        .unwrap_or_else(|| panic!("{res}"));
    let cols: Vec<&str> = widgets.split_whitespace().collect();
    assert_eq!(
        cols,
        ["widgets", "wd", "test.kube-vrrp.io/v1", "false", "Widget"],
        "{widgets}"
    );
    for builtin in [
        "leases",
        "nodes",
        "namespaces",
        "events",
        "secrets",
        "configmaps",
    ] {
        assert!(
            res.lines().any(|l| l.starts_with(builtin)),
            "{builtin} missing:\n{res}"
        );
    }
    let version: serde_json::Value =
        serde_json::from_str(&api.ok(&["get", "--raw", "/version"])).unwrap();
    assert_eq!(version["minor"], "32");
    let crd = api.json(&["get", "crd", "widgets.test.kube-vrrp.io"]);
    assert_eq!(crd["spec"]["names"]["kind"], "Widget");
}

#[test]
fn apply_get_and_printer_columns() {
    let api = Api::start();
    let out = api.apply(
        &widget("w1", "{size: 3, color: red, parts: [{name: a}, {name: b}]}"),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = api.ok(&["get", "widgets"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "SIZE", "COLOR", "OWNER", "AGE"],
        "{table}"
    );
    assert!(lines[1].starts_with("w1"), "{table}");
    assert_eq!(
        &lines[1].split_whitespace().collect::<Vec<_>>()[..3],
        ["w1", "3", "red"]
    );
    let wide = api.ok(&["get", "wd", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("PARTS"), "{wide}");
    assert!(wide.contains("a,b"), "{wide}");
    let obj = api.json(&["get", "widget", "w1"]);
    assert_eq!(obj["metadata"]["generation"], 1);
    assert!(obj["metadata"]["uid"].as_str().unwrap().len() >= 32);
    assert!(obj["metadata"]["creationTimestamp"].is_string());
    let err = api.fails(&["get", "widget", "nope"]);
    assert!(
        err.contains("widgets.test.kube-vrrp.io \"nope\" not found"),
        "{err}"
    );
}

#[test]
fn schema_violations_are_rejected_with_field_paths() {
    let api = Api::start();
    let cases = [
        (
            "{size: 11}",
            "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10",
        ),
        (
            "{size: 0}",
            "spec.size in body should be greater than or equal to 1",
        ),
        (
            "{size: 2, color: pink}",
            "spec.color: Unsupported value: \"pink\"",
        ),
        (
            "{size: 2, code: ABC}",
            "spec.code in body should match '^[a-z]+$'",
        ),
        (
            "{size: 2, address: 198.51.100.300}",
            "spec.address in body must be of type ipv4",
        ),
        ("{color: red}", "spec.size: Required value"),
        ("{size: two}", "spec.size in body must be of type integer"),
        (
            "{size: 2, parts: [{name: a}, {name: a}]}",
            "Duplicate value",
        ),
    ];
    for (i, (spec, expected)) in cases.iter().enumerate() {
        let out = api.apply(&widget(&format!("bad{i}"), spec), &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{spec} was accepted");
        assert!(
            err.contains(expected),
            "{spec}: expected {expected:?} in {err}"
        );
    }
    // Unknown fields: rejected under kubectl's default strict validation.
    let out = api.apply(&widget("bad-unknown", "{size: 2, flavour: vanilla}"), &[]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown field \"spec.flavour\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ... and pruned when validation is off.
    let out = api.apply(
        &widget("pruned", "{size: 2, flavour: vanilla}"),
        &["--validate=false"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        api.json(&["get", "widget", "pruned"])["spec"]
            .get("flavour")
            .is_none()
    );
    assert!(api.ok(&["get", "widgets", "-o", "name"]).trim() == "widget.test.kube-vrrp.io/pruned");
}

#[test]
fn generation_status_subresource_and_patches() {
    let api = Api::start();
    assert!(api.apply(&widget("w", "{size: 3}"), &[]).status.success());
    api.ok(&[
        "patch",
        "widget",
        "w",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":4}}"#,
    ]);
    let w = api.json(&["get", "widget", "w"]);
    assert_eq!(
        (
            w["spec"]["size"].as_i64(),
            w["metadata"]["generation"].as_i64()
        ),
        (Some(4), Some(2))
    );
    // Status through the main resource is ignored; through /status it lands without a
    // generation bump.
    api.ok(&[
        "patch",
        "widget",
        "w",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"owner":"main"}}"#,
    ]);
    assert!(api.json(&["get", "widget", "w"]).get("status").is_none());
    api.ok(&[
        "patch",
        "widget",
        "w",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"owner":"n1"}}"#,
    ]);
    let w = api.json(&["get", "widget", "w"]);
    assert_eq!(w["status"]["owner"], "n1");
    assert_eq!(w["metadata"]["generation"], 2);
    // Spec through /status is ignored.
    api.ok(&[
        "patch",
        "widget",
        "w",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":9}}"#,
    ]);
    assert_eq!(api.json(&["get", "widget", "w"])["spec"]["size"], 4);
    // JSON patch, and a failing JSON patch test.
    api.ok(&[
        "patch",
        "widget",
        "w",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/size","value":5}]"#,
    ]);
    assert_eq!(api.json(&["get", "widget", "w"])["spec"]["size"], 5);
    let err = api.fails(&[
        "patch",
        "widget",
        "w",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/spec/size","value":1}]"#,
    ]);
    assert!(err.contains("test operation failed"), "{err}");
    // A patch that breaks the schema is refused.
    let err = api.fails(&[
        "patch",
        "widget",
        "w",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":50}}"#,
    ]);
    assert!(err.contains("less than or equal to 10"), "{err}");
}

#[test]
fn update_with_a_stale_resource_version_conflicts() {
    let api = Api::start();
    assert!(api.apply(&widget("w", "{size: 3}"), &[]).status.success());
    let mut stale = api.json(&["get", "widget", "w"]);
    api.ok(&[
        "patch",
        "widget",
        "w",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":4}}"#,
    ]);
    stale["spec"]["size"] = 6.into();
    let file = api.lab.dir().join("stale.json");
    std::fs::write(&file, stale.to_string()).unwrap();
    let err = api.fails(&["replace", "-f", file.to_str().unwrap()]);
    assert!(err.contains("the object has been modified"), "{err}");
    assert_eq!(api.json(&["get", "widget", "w"])["spec"]["size"], 4);
}

/// `kubectl apply --server-side` of a widget as `manager`.
fn ssa(api: &Api, spec: &str, manager: &str, force: bool) -> std::process::Output {
    let mut args = vec!["--server-side", "--field-manager", manager];
    if force {
        args.push("--force-conflicts");
    }
    api.apply(&widget("w", spec), &args)
}

fn ssa_ok(api: &Api, spec: &str, manager: &str, force: bool) {
    let out = ssa(api, spec, manager, force);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn part_names(api: &Api) -> Vec<String> {
    let w = api.json(&["get", "widget", "w"]);
    let parts = w["spec"]["parts"].as_array().cloned().unwrap_or_default();
    parts
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn server_side_apply_owns_fields_and_detects_conflicts() {
    let api = Api::start();
    ssa_ok(
        &api,
        "{size: 3, color: red, parts: [{name: a, count: 1}]}",
        "alice",
        false,
    );
    // Bob sets another list-map entry: no conflict, both entries kept (merged by key).
    ssa_ok(
        &api,
        "{size: 3, parts: [{name: b, count: 2}]}",
        "bob",
        false,
    );
    assert_eq!(part_names(&api), ["a", "b"]);
    // Bob changing Alice's color conflicts...
    let out = ssa(&api, "{size: 3, color: blue}", "bob", false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("conflict with \"alice\""),
        "{err}"
    );
    // ... unless forced, which moves the field to Bob.
    ssa_ok(
        &api,
        "{size: 3, color: blue, parts: [{name: b, count: 2}]}",
        "bob",
        true,
    );
    let w = api.json(&["get", "widget", "w", "--show-managed-fields"]);
    assert_eq!(w["spec"]["color"], "blue");
    let managers: Vec<&str> = w["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(
        managers.contains(&"alice") && managers.contains(&"bob"),
        "{managers:?}"
    );
    // Alice stops applying her part "a": it is removed; Bob's "b" stays.
    ssa_ok(&api, "{size: 3}", "alice", false);
    assert_eq!(part_names(&api), ["b"]);
    assert_eq!(
        api.json(&["get", "widget", "w"])["spec"]["color"],
        "blue",
        "Bob's field stays"
    );
}

#[test]
fn selectors_filter_lists() {
    let api = Api::start();
    for (name, tier) in [("a", "web"), ("b", "db"), ("c", "web")] {
        let y = format!(
            "apiVersion: test.kube-vrrp.io/v1\nkind: Widget\nmetadata:\n  name: {name}\n  labels: {{tier: {tier}}}\nspec: {{size: 1}}\n"
        );
        assert!(api.apply(&y, &[]).status.success());
    }
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["get", "widgets", "-o", "name"];
        a.extend_from_slice(args);
        api.ok(&a)
            .lines()
            .map(|l| l.rsplit('/').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&["-l", "tier=web"]), ["a", "c"]);
    assert_eq!(names(&["-l", "tier!=web"]), ["b"]);
    assert_eq!(names(&["-l", "tier in (db,cache)"]), ["b"]);
    assert_eq!(names(&["-l", "!tier"]), Vec::<String>::new());
    assert_eq!(names(&["--field-selector", "metadata.name=c"]), ["c"]);
    let err = api.fails(&["get", "widgets", "--field-selector", "spec.size=1"]);
    assert!(err.contains("field label not supported"), "{err}");
}

#[test]
fn finalizers_hold_deletion() {
    let api = Api::start();
    let y = "apiVersion: test.kube-vrrp.io/v1\nkind: Widget\nmetadata:\n  name: f\n  finalizers: [test/hold]\nspec: {size: 1}\n";
    assert!(api.apply(y, &[]).status.success());
    api.ok(&["delete", "widget", "f", "--wait=false"]);
    let w = api.json(&["get", "widget", "f"]);
    assert!(w["metadata"]["deletionTimestamp"].is_string(), "{w}");
    api.ok(&[
        "patch",
        "widget",
        "f",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    let err = api.fails(&["get", "widget", "f"]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn watch_streams_changes() {
    let api = Api::start();
    assert!(api.apply(&widget("w", "{size: 1}"), &[]).status.success());
    let kc = api.kubeconfig.clone();
    let ns = api.lab.client.ns.clone();
    let cache = api.lab.dir().join("kube-cache");
    let watcher = std::thread::spawn(move || {
        std::process::Command::new("ip")
            .env("KUBECACHEDIR", cache)
            .args([
                "netns",
                "exec",
                &ns,
                "timeout",
                "4",
                "kubectl",
                "--kubeconfig",
                &kc,
                "get",
                "widgets",
                "-w",
                "--output-watch-events",
                "--no-headers",
            ])
            .output()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(1500));
    api.ok(&[
        "patch",
        "widget",
        "w",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":2}}"#,
    ]);
    api.ok(&["delete", "widget", "w"]);
    let out = watcher.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let events: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(events, ["ADDED", "MODIFIED", "DELETED"], "{text}");
}

#[test]
fn too_old_resource_version_is_gone() {
    let api = Api::start_with(&[("STANDIN_EVENT_WINDOW", "5")]);
    for i in 0..10 {
        assert!(
            api.apply(&widget(&format!("w{i}"), "{size: 1}"), &[])
                .status
                .success()
        );
    }
    let out = api.ok(&[
        "get",
        "--raw",
        "/apis/test.kube-vrrp.io/v1/widgets?watch=true&resourceVersion=2&timeoutSeconds=1",
    ]);
    assert!(
        out.contains("\"code\": 410") && out.contains("too old resource version"),
        "{out}"
    );
    let list = api.json(&["get", "widgets"]);
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let out = api.ok(&["get", "--raw", &format!("/apis/test.kube-vrrp.io/v1/widgets?watch=true&resourceVersion={rv}&timeoutSeconds=2&allowWatchBookmarks=true")]);
    assert!(out.contains("\"BOOKMARK\""), "{out}");
}

#[test]
fn leases_use_optimistic_concurrency() {
    let api = Api::start();
    let lease = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: leader\n  namespace: default\nspec:\n  holderIdentity: a\n  leaseDurationSeconds: 15\n";
    assert!(api.apply(lease, &[]).status.success());
    let mut l = api.json(&["get", "lease", "leader", "-n", "default"]);
    api.ok(&[
        "patch",
        "lease",
        "leader",
        "-n",
        "default",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"holderIdentity":"b"}}"#,
    ]);
    l["spec"]["holderIdentity"] = "c".into();
    let file = api.lab.dir().join("lease.json");
    std::fs::write(&file, l.to_string()).unwrap();
    let err = api.fails(&["replace", "-f", file.to_str().unwrap()]);
    assert!(err.contains("the object has been modified"), "{err}");
    assert_eq!(
        api.json(&["get", "lease", "leader", "-n", "default"])["spec"]["holderIdentity"],
        "b"
    );
}

#[test]
fn faults_pause_fail_and_restart_keeps_state() {
    let mut api = Api::start();
    if api.external {
        eprintln!("real cluster: fault injection and restart are stand-in only");
        return;
    }
    assert!(
        api.apply(&widget("keep", "{size: 7}"), &[])
            .status
            .success()
    );
    api.control("/_standin/fault", r#"{"mode":"fail","code":503}"#);
    let err = api.fails(&["get", "widgets"]);
    assert!(err.contains("injected failure"), "{err}");
    api.control("/_standin/fault", r#"{"mode":"pause"}"#);
    let out = api.kubectl(&["get", "widgets", "--request-timeout=1s"]);
    assert!(!out.status.success(), "a paused server answered");
    api.control("/_standin/fault", r#"{"mode":"none"}"#);
    api.ok(&["get", "widgets"]);
    // Restart from the state file: objects and resourceVersions survive.
    let before = api.json(&["get", "widget", "keep"]);
    let pid = api.pid;
    api.lab.signal(pid, Signal::SIGKILL);
    std::fs::remove_file(&api.kubeconfig).unwrap();
    api.pid = api.spawn(&[]);
    let after = api.json(&["get", "widget", "keep"]);
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
}

#[test]
fn cel_rules_are_enforced() {
    let api = Api::start();
    let err =
        String::from_utf8_lossy(&api.apply(&widget("c1", "{size: 2, code: abc}"), &[]).stderr)
            .into_owned();
    assert!(
        err.contains("spec: Invalid value: \"object\": a code needs size 3 or more"),
        "{err}"
    );
    let err = String::from_utf8_lossy(
        &api.apply(&widget("c2", "{size: 2, network: 192.0.2.0/33}"), &[])
            .stderr,
    )
    .into_owned();
    assert!(
        err.contains("spec.network: Invalid value: \"object\": network must be a CIDR"),
        "{err}"
    );
    assert!(
        api.apply(
            &widget("c3", "{size: 3, code: abc, network: 192.0.2.0/24}"),
            &[]
        )
        .status
        .success()
    );
    // Transition rule: checked on update only.
    let err = api.fails(&[
        "patch",
        "widget",
        "c3",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":2,"code":null}}"#,
    ]);
    assert!(err.contains("size may only grow"), "{err}");
    api.ok(&[
        "patch",
        "widget",
        "c3",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":4}}"#,
    ]);
}

#[test]
fn schema_defaults_are_applied() {
    let api = Api::start();
    assert!(
        api.apply(
            &widget("d", "{size: 1, parts: [{name: a}, {name: b, count: 5}]}"),
            &[]
        )
        .status
        .success()
    );
    let w = api.json(&["get", "widget", "d"]);
    let counts: Vec<i64> = w["spec"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [1, 5], "{w}");
}

/// kubectl's typed commands send protobuf (`kubectl create namespace`, `create service`,
/// `create secret`, `create configmap`, as the README and guide show them): the stand-in
/// decodes them as the API server does, and `kubectl get service` prints the API server's
/// columns. Before, the protobuf body crashed the request (kubectl saw EOF).
#[test]
fn kubectl_create_sends_protobuf_and_get_service_prints_the_servers_columns() {
    let api = Api::start();
    assert_eq!(
        api.ok(&["create", "namespace", "shop"]).trim(),
        "namespace/shop created"
    );
    assert_eq!(
        api.ok(&["create", "service", "loadbalancer", "web", "--tcp=80:8080"])
            .trim(),
        "service/web created"
    );
    let svc = api.json(&["get", "service", "web"]);
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["selector"]["app"], "web");
    let table = api.ok(&["get", "service", "web"]);
    let head: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{table}"
    );
    assert!(
        table.contains("LoadBalancer") && table.contains("<pending>") && table.contains("80/TCP"),
        "{table}"
    );
    api.ok(&[
        "create",
        "secret",
        "generic",
        "vrrp",
        "--from-literal=password=s3cret",
    ]);
    let secret = api.json(&["get", "secret", "vrrp"]);
    assert_eq!(secret["data"]["password"], "czNjcmV0", "{secret}");
    api.ok(&["create", "configmap", "x", "--from-literal=a=b"]);
    assert_eq!(api.json(&["get", "configmap", "x"])["data"]["a"], "b");
}

/// As kube-apiserver's NamespaceLifecycle admission: nothing is made in a Namespace that does
/// not exist, and `/api/v1/namespaces/NAME` is the Namespace itself (`kubectl label`).
#[test]
fn objects_are_made_only_in_a_namespace_that_exists() {
    let api = Api::start();
    let e = api.fails(&["create", "configmap", "c", "-n", "nowhere"]);
    assert!(e.contains("namespaces \"nowhere\" not found"), "{e}");
    api.ok(&["create", "namespace", "somewhere"]);
    api.ok(&["create", "configmap", "c", "-n", "somewhere"]);
    api.ok(&["label", "namespace", "somewhere", "team=vrrp"]);
    let ns = api.json(&["get", "namespace", "somewhere"]);
    assert_eq!(ns["metadata"]["labels"]["team"], "vrrp", "{ns}");
}

/// `kubectl drain` (the guide's way to move a VIP off a node): the node's Pods are listed by
/// `spec.nodeName`, evicted, and the node cordoned.
#[test]
fn a_node_is_drained_as_kubectl_drains_it() {
    let api = Api::start();
    api.apply("apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n", &[]);
    api.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\n  namespace: default\nspec:\n  nodeName: n1\n  containers: [{name: c, image: x}]\n",
        &[],
    );
    let on_n1 = api.ok(&["get", "pods", "-A", "--field-selector", "spec.nodeName=n1"]);
    assert!(on_n1.contains("p1"), "{on_n1}");
    api.ok(&[
        "drain",
        "n1",
        "--ignore-daemonsets",
        "--force",
        "--timeout=10s",
    ]);
    let node = api.json(&["get", "node", "n1"]);
    assert_eq!(node["spec"]["unschedulable"], true, "{node}");
    api.fails(&["get", "pod", "p1", "-n", "default"]);
}
