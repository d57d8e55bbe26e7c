//! `kube-vrrp check` as a script uses it: every sample in config/ is valid (standalone and as
//! cluster YAML), a bad file exits 1 naming document, field and hint.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_kube-vrrp");

fn samples() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().display().to_string())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

#[test]
fn every_sample_is_valid() {
    // Every sample is valid cluster YAML; those that name no Secret and leave no VRID to the
    // controller are valid standalone files too.
    let standalone: Vec<String> = samples()
        .into_iter()
        .filter(|f| {
            let t = std::fs::read_to_string(f).unwrap();
            !t.contains("SecretRef")
                && t.contains("virtualRouterID")
                && !t.contains("kind: VirtualIPPool")
        })
        .collect();
    assert!(standalone.len() >= 6, "{standalone:?}");
    for (mode, files) in [(&["--cluster"][..], samples()), (&[][..], standalone)] {
        let out = Command::new(BIN)
            .arg("check")
            .args(mode)
            .args(&files)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pools = files
            .iter()
            .filter(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .contains("kind: VirtualIPPool")
            })
            .count();
        assert!(
            text.contains(&format!("{} VirtualIP(s) valid", files.len() - pools)),
            "{text}"
        );
        if !mode.is_empty() {
            assert!(
                pools >= 1 && text.contains(&format!("{pools} VirtualIPPool(s) valid")),
                "{text}"
            );
        }
    }
}

#[test]
fn a_bad_file_exits_1_with_every_problem() {
    let f = std::env::temp_dir().join(format!("kube-vrrp-check-cli-{}.yaml", std::process::id()));
    std::fs::write(
        &f,
        "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: a}\nspec:\n  addresses: [198.51.100.50/24]\n  \
         virtualRouterID: 51\n  defaultPriority: 300\n---\napiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: b}\n\
         spec:\n  addresses: [198.51.100.60/24]\n  virtualRouterID: 52\n  preemt: false\n",
    )
    .unwrap();
    let out = Command::new(BIN).arg("check").arg(&f).output().unwrap();
    std::fs::remove_file(&f).ok();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("document 1 (\"a\"), field spec.defaultPriority: 300 is out of range: priorities are 1 to 255"), "{text}");
    assert!(
        text.contains(
            "document 2 (\"b\"), field spec.preemt: unknown field `preemt`: did you mean `preempt`?"
        ),
        "{text}"
    );
    assert!(text.contains("2 problem(s)"), "{text}");
}

#[test]
fn a_check_named_like_an_agent_entry_is_refused() {
    let f = std::env::temp_dir().join(format!(
        "kube-vrrp-check-cli-reserved-{}.yaml",
        std::process::id()
    ));
    std::fs::write(
        &f,
        "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: a}\nspec:\n  addresses: [198.51.100.50/24]\n  \
         virtualRouterID: 51\n  healthChecks: [{name: node, tcp: {port: 80}}]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--cluster"])
        .arg(&f)
        .output()
        .unwrap();
    std::fs::remove_file(&f).ok();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("document 1 (\"a\"), field spec.healthChecks: name \"node\" is reserved"),
        "{text}"
    );
    assert!(text.contains("1 problem(s)"), "{text}");
}

/// Every program of the repository answers `--help` with its usage (exit 0), and none starts
/// a run or reads `--help` as a file.
#[test]
fn every_program_answers_help() {
    let e2e_bins = [
        "lab-demo",
        "cluster-demo",
        "apply-bench",
        "bulk-bench",
        "failover-bench",
        "health-bench",
        "lb-bench",
        "reload-bench",
        "resource-bench",
        "vs-bench",
        "scale-bench",
    ];
    let dir = std::path::Path::new(env!("CARGO_BIN_EXE_kube-vrrp"))
        .parent()
        .unwrap()
        .to_path_buf();
    // The e2e programs are built by the workspace (`cargo test --workspace` builds them).
    let mut programs = vec![env!("CARGO_BIN_EXE_kube-vrrp").to_string()];
    programs.extend(e2e_bins.map(|b| dir.join(b).display().to_string()));
    for p in programs {
        let out = std::process::Command::new(&p)
            .arg("--help")
            .output()
            .unwrap_or_else(|e| panic!("{p}: {e} (build the workspace: cargo build --workspace)"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Usage:") && text.contains("--help"),
            "{p}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
