//! The Helm chart (charts/kube-vrrp): `helm lint`, `helm template` checked offline against the
//! Kubernetes 1.32 schemas by kubernetes-validate (strict), and what the operator depends on:
//! the chart's CRDs are the generated ones, the agent runs on the host network with NET_ADMIN
//! and NET_RAW and knows its node, the controller runs two replicas that know their Lease
//! namespace. `.ci/deps` installs helm and kubernetes-validate; without them this fails.

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/kube-vrrp");
const CRDS: &str = include_str!("../../crds/kube-vrrp.yaml");

/// Runs a tool `.ci/deps` installs, panicking with its output when it fails.
fn run(program: &str, args: &[&str]) -> String {
    let mut full = vec![program];
    full.extend_from_slice(args);
    kube_vrrp_e2e::sh(&full)
}

fn render(extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec![
        "template",
        "vips",
        CHART,
        "-n",
        "kube-vrrp-system",
        "--include-crds",
        "--set",
        "image.repository=registry.example/kube-vrrp",
    ];
    args.extend_from_slice(extra);
    let text = run("helm", &args);
    // Tests render in parallel: one file each.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let file =
        std::env::temp_dir().join(format!("kube-vrrp-chart-{}-{n}.yaml", std::process::id()));
    std::fs::write(&file, &text).unwrap();
    let report = run(
        "kubernetes-validate",
        &["-k", "1.32.0", "--strict", file.to_str().unwrap()],
    );
    std::fs::remove_file(&file).ok();
    assert!(!report.contains("ERROR"), "{report}");
    text.split("\n---").filter_map(yaml_doc).collect()
}

fn yaml_doc(doc: &str) -> Option<serde_json::Value> {
    let v: serde_json::Value = yaml_serde::from_str(doc).ok()?;
    (!v.is_null()).then_some(v)
}

fn find<'a>(docs: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name} not rendered"))
}

#[test]
fn the_chart_lints_renders_valid_manifests_and_ships_the_generated_crds() {
    run("helm", &["lint", "--strict", CHART]);
    let shipped = std::fs::read_to_string(format!("{CHART}/crds/kube-vrrp.yaml")).unwrap();
    assert_eq!(
        shipped, CRDS,
        "charts/kube-vrrp/crds/kube-vrrp.yaml differs from crds/kube-vrrp.yaml: copy it"
    );
    let docs = render(&[]);
    for crd in [
        "virtualips.kube-vrrp.io",
        "virtualipnodeconfigs.kube-vrrp.io",
    ] {
        find(&docs, "CustomResourceDefinition", crd);
    }
    let ds = find(&docs, "DaemonSet", "vips-agent");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    let agent = &pod["containers"][0];
    assert_eq!(agent["args"][0], "agent");
    assert_eq!(
        agent["securityContext"]["capabilities"]["add"],
        serde_json::json!(["NET_ADMIN", "NET_RAW"])
    );
    assert!(
        agent["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "NODE_NAME"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"),
        "{agent}"
    );
    // Every pod under the runtime's seccomp profile; /metrics on the node's own address,
    // not every address (the VIPs included).
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(pod["hostPID"].is_null());
    assert!(
        agent["args"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("--metrics-listen=$(HOST_IP):9652")),
        "{agent}"
    );
    assert!(
        agent["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "HOST_IP"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"),
        "{agent}"
    );
    let deploy = find(&docs, "Deployment", "vips-controller");
    assert_eq!(deploy["spec"]["replicas"], 2);
    let spread = &deploy["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname", "{deploy}");
    assert_eq!(
        deploy["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let controller = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(controller["args"][0], "controller");
    assert!(
        controller["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "POD_NAMESPACE"),
        "{controller}"
    );
    // Secrets: only a namespaced Role grants them (get by name), never a ClusterRole.
    for d in docs.iter().filter(|d| d["kind"] == "ClusterRole") {
        assert!(!d.to_string().contains("secrets"), "{d}");
    }
    let secrets = find(&docs, "Role", "vips-controller-secrets");
    assert_eq!(secrets["metadata"]["namespace"], "kube-vrrp-system");
    assert_eq!(secrets["rules"][0]["verbs"], serde_json::json!(["get"]));
    find(&docs, "Service", "vips-agent-metrics");
    // The alerts: the rules file promtool tests, whole, in a PrometheusRule.
    let docs = render(&["--set", "prometheusRule.enabled=true"]);
    let rule = find(&docs, "PrometheusRule", "vips");
    let alerts: Vec<&str> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    assert_eq!(
        alerts,
        [
            "KubeVrrpNoMaster",
            "KubeVrrpSplitBrain",
            "KubeVrrpAgentNotReady",
            "KubeVrrpRealServerDown",
            "KubeVrrpAllRealServersDown",
            "KubeVrrpCheckFailing"
        ]
    );
    assert!(render(&[]).iter().all(|d| d["kind"] != "PrometheusRule"));
    let docs = render(&["--set", "grafanaDashboard.enabled=true"]);
    let cm = find(&docs, "ConfigMap", "vips-dashboard");
    let dashboard: serde_json::Value =
        serde_json::from_str(cm["data"]["kube-vrrp.json"].as_str().unwrap()).unwrap();
    assert_eq!(dashboard["uid"], "kube-vrrp");
    let docs = render(&[]);
    find(&docs, "Service", "vips-controller-metrics");
    let role = find(&docs, "Role", "vips-controller-lease");
    assert_eq!(role["metadata"]["namespace"], "kube-vrrp-system");
    // Real-time priority and the host's processes are choices, off by default.
    let docs = render(&[
        "--set",
        "agent.realtime=true",
        "--set",
        "agent.hostPID=true",
    ]);
    let pod = &find(&docs, "DaemonSet", "vips-agent")["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["securityContext"]["capabilities"]["add"],
        serde_json::json!(["NET_ADMIN", "NET_RAW", "SYS_NICE"])
    );
    assert_eq!(pod["hostPID"], true);
    // VirtualIPs with a virtual MAC need writable sysctls: privileged on request.
    let docs = render(&["--set", "agent.privileged=true"]);
    let ds = find(&docs, "DaemonSet", "vips-agent");
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"],
        true
    );
}

/// The chart's alerts fire on recorded series, each after its `for` and not before
/// (`promtool test rules`, Prometheus' own rule tester; `.ci/deps` installs it).
#[test]
fn the_alerts_pass_promtool_on_recorded_series() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/kube-vrrp/rules");
    for args in [
        &["check", "rules", "kube-vrrp.rules.yaml"][..],
        &["test", "rules", "kube-vrrp.rules.test.yaml"][..],
    ] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("promtool (bash .ci/deps installs it)");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs helm expecting failure; returns its stderr.
fn helm_fails(args: &[&str]) -> String {
    let out = kube_vrrp_e2e::run(&[&["helm"], args].concat());
    assert!(!out.status.success(), "helm {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_chart_needs_an_image_refuses_typos_and_runs_commands_only_when_allowed() {
    // No image is published: an install without one fails at once and says what to set.
    let err = helm_fails(&["template", "vips", CHART]);
    assert!(
        err.contains("image.repository is required") && err.contains("docker build"),
        "{err}"
    );
    // values.schema.json: a typo is an error, not a silently ignored value.
    let err = helm_fails(&[
        "template",
        "vips",
        CHART,
        "--set",
        "image.repository=r/k",
        "--set",
        "agent.alowExec={/bin/true}",
    ]);
    assert!(err.contains("alowExec"), "{err}");
    let docs = render(&[]);
    let agent =
        &find(&docs, "DaemonSet", "vips-agent")["spec"]["template"]["spec"]["containers"][0];
    // The image runs as nobody; the agent container asks for root with two capabilities.
    assert_eq!(agent["securityContext"]["runAsUser"], 0, "{agent}");
    let args: Vec<&str> = agent["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        !args.iter().any(|a| a.starts_with("--allow-exec")),
        "{args:?}"
    );
    assert!(
        args.contains(&"--exec-user=65534:65534")
            && args.contains(&"--check-files=/etc/kube-vrrp/checks"),
        "{args:?}"
    );
    let mount = &agent["volumeMounts"][0];
    assert_eq!(
        (mount["mountPath"].as_str(), mount["readOnly"].as_bool()),
        (Some("/etc/kube-vrrp/checks"), Some(true))
    );
    // Allowed programs: listed, and the capabilities to run them as another user and kill them.
    let docs = render(&[
        "--set",
        "agent.allowExec={/usr/bin/pgrep,/usr/local/bin/notify}",
    ]);
    let agent =
        &find(&docs, "DaemonSet", "vips-agent")["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = agent["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        args.contains(&"--allow-exec=/usr/bin/pgrep")
            && args.contains(&"--allow-exec=/usr/local/bin/notify"),
        "{args:?}"
    );
    assert_eq!(
        agent["securityContext"]["capabilities"]["add"],
        serde_json::json!(["NET_ADMIN", "NET_RAW", "SETUID", "SETGID", "KILL"])
    );
}

/// `kube-vrrp manifest static-pod` for the control-plane sample: a valid Pod (strict schema
/// check), host network, two capabilities, no service account; no warning for the sample, a
/// warning for a weight-0 /readyz check.
#[test]
fn the_static_pod_manifest_is_a_valid_pod() {
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/control-plane-vip.yaml"
    );
    let out = std::process::Command::new(kube_vrrp_e2e::kube_vrrp_binary())
        .args([
            "manifest",
            "static-pod",
            "--config",
            sample,
            "--image",
            "registry.example/kube-vrrp:0.1.0",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file =
        std::env::temp_dir().join(format!("kube-vrrp-static-pod-{}.yaml", std::process::id()));
    std::fs::write(&file, &out.stdout).unwrap();
    let report = run(
        "kubernetes-validate",
        &["-k", "1.32.0", "--strict", file.to_str().unwrap()],
    );
    std::fs::remove_file(&file).ok();
    assert!(
        report.contains("passed") && !report.contains("ERROR"),
        "{report}"
    );
    let pod: serde_json::Value = yaml_serde::from_slice(&out.stdout).unwrap();
    assert_eq!(pod["spec"]["hostNetwork"], true);
    assert_eq!(pod["spec"]["containers"][0]["args"][1], "--standalone");
    let zero = std::env::temp_dir().join(format!("kube-vrrp-cp-{}.yaml", std::process::id()));
    std::fs::write(
        &zero,
        std::fs::read_to_string(sample)
            .unwrap()
            .replace("weight: -50", "weight: 0"),
    )
    .unwrap();
    let out = std::process::Command::new(kube_vrrp_e2e::kube_vrrp_binary())
        .args(["manifest", "static-pod", "--config", zero.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::remove_file(&zero).ok();
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("weight 0: the first node would never take the address")
    );
}

/// `deploy/kube-vrrp.yaml` (what `kube-vrrp manifest daemonset` prints) is the chart rendered
/// with its defaults, and what the tool prints is valid with the image given.
#[test]
fn the_manifest_for_users_without_helm_is_the_chart() {
    let rendered = run(
        "helm",
        &[
            "template",
            "kube-vrrp",
            CHART,
            "-n",
            "kube-vrrp-system",
            "--include-crds",
            "--set",
            "image.repository=REGISTRY/kube-vrrp",
        ],
    );
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/kube-vrrp.yaml"
    ))
    .unwrap();
    let body = committed
        .split_once("---\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert!(
        body == rendered,
        "deploy/kube-vrrp.yaml is stale: regenerate it with the helm template command at its top"
    );
    let out = std::process::Command::new(kube_vrrp_e2e::kube_vrrp_binary())
        .args([
            "manifest",
            "daemonset",
            "--image",
            "registry.example/kube-vrrp:0.1.0",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("image: registry.example/kube-vrrp:0.1.0")
            && !text.contains("REGISTRY/kube-vrrp:")
    );
    let file = std::env::temp_dir().join(format!("kube-vrrp-deploy-{}.yaml", std::process::id()));
    std::fs::write(&file, &text).unwrap();
    let report = run(
        "kubernetes-validate",
        &["-k", "1.32.0", "--strict", file.to_str().unwrap()],
    );
    std::fs::remove_file(&file).ok();
    assert!(!report.contains("ERROR"), "{report}");
    let kinds: Vec<serde_json::Value> = text.split("\n---").filter_map(yaml_doc).collect();
    for (kind, name) in [
        ("Namespace", "kube-vrrp-system"),
        ("DaemonSet", "kube-vrrp-agent"),
        ("Deployment", "kube-vrrp-controller"),
    ] {
        find(&kinds, kind, name);
    }
}
