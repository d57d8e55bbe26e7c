//! The generated VirtualIP CRD (crds/) served by the API stand-in and driven by kubectl: the
//! samples in config/ are accepted, `kubectl get virtualips` prints the columns, and objects
//! that can never work are refused by the schema and its CEL rules with a clear message.

use kube_vrrp_e2e::standin::Api;

const CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds");
const SAMPLE: &str = include_str!("../../config/web-vip.yaml");
const SAMPLE_CHECKS: &str = include_str!("../../config/web-vip-checks.yaml");

fn vip(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

#[test]
fn samples_apply_and_print_columns() {
    let api = Api::start_full(CRDS, &[]);
    let out = api.apply(SAMPLE, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = api.ok(&["get", "virtualips"]);
    let head: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        [
            "NAME",
            "ADDRESSES",
            "VRID",
            "MASTER",
            "PHASE",
            "NODES",
            "FAILING",
            "SERVERS",
            "AGE"
        ],
        "{table}"
    );
    let out = api.apply(
        &SAMPLE_CHECKS.replace("name: web\n", "name: web-checks\n"),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every other sample in config/ is accepted too.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config");
    for e in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") || name.starts_with("web-vip") {
            continue;
        }
        let out = api.apply(&std::fs::read_to_string(e.path()).unwrap(), &[]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(table.contains("web"), "{table}");
    let wide = api.ok(&["get", "vip", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap().contains("NODES") && wide.contains("VERSION"),
        "{wide}"
    );
    let explain = api.ok(&["explain", "virtualip.spec.virtualRouterID"]);
    assert!(explain.contains("unique per L2 segment"), "{explain}");
}

#[test]
fn impossible_objects_are_refused_with_the_reason() {
    let api = Api::start_full(CRDS, &[]);
    let cases = [
        (
            "  addresses: [\"198.51.100.300/24\"]\n",
            "every address must be ip/prefix",
        ),
        (
            "  addresses: [\"198.51.100.50/24\"]\n  virtualRouterID: 0\n",
            "spec.virtualRouterID",
        ),
        (
            "  addresses: [\"198.51.100.50/24\"]\n  virtualRouterID: 256\n",
            "spec.virtualRouterID",
        ),
        (
            "  addresses: [\"198.51.100.50/24\"]\n  version: 2\n  advertInterval: 500ms\n",
            "VRRPv2 advertisement intervals are whole seconds",
        ),
        (
            "  addresses: [\"198.51.100.50/24\"]\n  authentication: {password: s3cret}\n",
            "authentication exists only in VRRPv2",
        ),
        (
            "  addresses: [\"2001:db8::50/64\"]\n  version: 2\n",
            "VRRPv2 carries IPv4 only",
        ),
        (
            "  addresses: [\"198.51.100.50/24\"]\n  version: 4\n",
            "spec.version",
        ),
        ("  addresses: []\n", "spec.addresses"),
        (
            "  addresses: [\"198.51.100.50/24\"]\n  advertInterval: soon\n",
            "spec.advertInterval",
        ),
        (
            "  addresses: [\"198.51.100.50/24\"]\n  priorities: [{node: a, priority: 0}]\n",
            "spec.priorities[0].priority",
        ),
        (
            "  addresses: [\"198.51.100.50/24\"]\n  healthChecks: [{name: web}]\n",
            "a health check needs one of http, tcp, exec or file: none is set",
        ),
        (
            "  addresses: [\"198.51.100.50/24\"]\n  healthChecks: [{name: web, tcp: {port: 80}, exec: {command: [/bin/true]}}]\n",
            "this one sets tcp exec",
        ),
        (
            "  addresses: [\"198.51.100.50/24\"]\n  healthChecks: [{name: a, tcp: {port: 80}}, {name: a, tcp: {port: 81}}]\n",
            "Duplicate value",
        ),
        (
            "  addresses: [\"198.51.100.50/24\"]\n  healthChecks: [{name: a, weight: 300, tcp: {port: 80}}]\n",
            "spec.healthChecks[0].weight",
        ),
    ];
    for (i, (spec, expected)) in cases.iter().enumerate() {
        let out = api.apply(&vip(&format!("bad{i}"), spec), &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {spec}");
        assert!(
            err.contains(expected),
            "{spec}: expected {expected:?} in {err}"
        );
    }
    // A valid v2 object with a password is fine.
    let ok = "  addresses: [\"198.51.100.50/24\"]\n  version: 2\n  advertInterval: 1s\n  authentication: {password: s3cret}\n";
    let out = api.apply(&vip("good", ok), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One rule set: a refusal reads the same from `check --cluster`, `kubectl apply` (the CRD's
/// rule, through the stand-in as an API server runs it) and a standalone file (what the agent
/// reads), never the schema's regular expression.
#[test]
fn a_refusal_reads_the_same_from_check_kubectl_and_the_agent() {
    let api = Api::start_full(CRDS, &[]);
    let dir = std::env::temp_dir().join(format!("kube-vrrp-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (field, value) in [
        ("advertInterval", "1x"),
        ("advertInterval", "100"),
        ("preemptDelay", "soon"),
    ] {
        let sentence = format!(
            "\"{value}\" is not a duration: write numbers each with a unit, e.g. 1s, 100ms or 1m30s (units h, m, s, ms, us, ns)"
        );
        let spec = format!("  addresses: [\"198.51.100.50/24\"]\n  {field}: \"{value}\"\n");
        let out = api.apply(&vip("bad", &spec), &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(&sentence),
            "kubectl: {err}"
        );
        assert!(!err.contains("should match"), "{err}");
        let file = dir.join("bad.yaml");
        std::fs::write(&file, vip("bad", &format!("{spec}  virtualRouterID: 7\n"))).unwrap();
        for args in [vec!["check", "--cluster"], vec!["check"]] {
            let out = std::process::Command::new(kube_vrrp_e2e::kube_vrrp_binary())
                .args(&args)
                .arg(&file)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                !out.status.success() && text.contains(&format!("field spec.{field}: {sentence}")),
                "{args:?}: {text}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
