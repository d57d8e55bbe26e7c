//! `kube-vrrp import-keepalived` on configurations written the way tutorials write them: the
//! output is valid for `kube-vrrp check`, accepted by the API stand-in's CRD validation, and
//! runs in the namespace lab (real nginx; stopping it on the master moves the VIP). Everything
//! not carried over is a warning with file and line; a bad address or an undefined script is an
//! error with its line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kube_vrrp_e2e::standin::Api;
use kube_vrrp_e2e::{Lab, kube_vrrp_binary, wait_for};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keepalived");
const CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds");
const VIP: &str = "198.51.100.50";

/// The tutorial pair in `dir`: node 1 as shipped (its maintenance file and notify script
/// placed in `dir`), node 2 its BACKUP twin.
fn pair(dir: &Path) -> [PathBuf; 2] {
    let text = std::fs::read_to_string(format!("{DIR}/tutorial-lb1.conf")).unwrap();
    let text = text
        .replace(
            "MAINTENANCE",
            &dir.join("maintenance").display().to_string(),
        )
        .replace("NOTIFY", &dir.join("notify.sh").display().to_string());
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::copy(
        format!("{DIR}/conf.d/sync.conf"),
        dir.join("conf.d/sync.conf"),
    )
    .unwrap();
    let lb1 = dir.join("lb1.conf");
    let lb2 = dir.join("lb2.conf");
    std::fs::write(&lb1, &text).unwrap();
    std::fs::write(
        &lb2,
        text.replace("router_id LB1", "router_id LB2")
            .replace("state MASTER", "state BACKUP")
            .replace("priority 101", "priority 100"),
    )
    .unwrap();
    [lb1, lb2]
}

fn import(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(kube_vrrp_binary())
        .arg("import-keepalived")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_tutorial_pair_imports_checks_applies_and_fails_over_in_the_lab() {
    let mut lab = Lab::new(2);
    let dir = lab.dir().to_path_buf();
    let [lb1, lb2] = pair(&dir);
    let (ok, yaml, stderr) = import(&[
        "--node",
        "n1",
        "--node",
        "n2",
        lb1.to_str().unwrap(),
        lb2.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    // One VirtualIP for both files, per-node priorities, the checks as native ones.
    let v: serde_json::Value = yaml_serde::from_str(&yaml).unwrap();
    assert_eq!(v["metadata"]["name"], "vi-1", "{yaml}");
    let spec = &v["spec"];
    assert_eq!(
        spec["priorities"],
        serde_json::json!([{"node": "n1", "priority": 101}, {"node": "n2", "priority": 100}])
    );
    assert_eq!(
        (spec["virtualRouterID"].as_u64(), spec["version"].as_u64()),
        (Some(51), Some(3))
    );
    assert_eq!(spec["advertInterval"], "100ms");
    assert_eq!(spec["addresses"], serde_json::json!(["198.51.100.50/24"]));
    // Bound with the VIP, not advertised: keepalived's virtual_ipaddress_excluded.
    assert_eq!(
        spec["excludedAddresses"],
        serde_json::json!(["198.51.100.51/24"])
    );
    assert_eq!(spec["healthChecks"][0]["http"]["port"], 80, "{yaml}");
    assert_eq!(spec["healthChecks"][1]["file"]["mode"], "Exists", "{yaml}");
    assert_eq!(spec["healthChecks"][1]["weight"], -50);
    assert_eq!(spec["notify"]["any"][1], "INSTANCE_ALL");
    // The LVS half: the virtual server on the instance's address.
    let vs = &spec["virtualServers"][0];
    assert_eq!(
        (vs["address"].as_str(), vs["port"].as_u64()),
        (Some("198.51.100.50"), Some(80)),
        "{yaml}"
    );
    assert_eq!(
        (vs["scheduler"].as_str(), vs["forwarding"].as_str()),
        (Some("WeightedRoundRobin"), Some("DirectRouting"))
    );
    assert_eq!(vs["realServers"][0]["check"]["delayLoop"], "6s", "{yaml}");
    // Nothing dropped silently: each of these is a warning with its file and line.
    let lb1s = lb1.display().to_string();
    for (line, what) in [
        (5, "global_defs notification_email is not carried over"),
        (9, "global_defs smtp_server is not carried over"),
        (37, "label eth0:1 is not carried over"),
    ] {
        let expected = format!("{lb1s}:{line}: warning: ");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&expected) && l.contains(what)),
            "no warning {expected}{what} in:\n{stderr}"
        );
    }
    let sync = dir.join("conf.d/sync.conf").display().to_string();
    assert!(
        stderr.contains(&format!(
            "{sync}:2: note: vrrp_sync_group VG_1: VI_1 alone: nothing to move with it"
        )),
        "{stderr}"
    );

    // kube-vrrp check accepts it as a standalone file, and as cluster YAML for agents that
    // allow its notify script and read its maintenance file (the chart's agent.allowExec and
    // agent.checkFiles); with the chart's defaults it says what they would refuse.
    let file = dir.join("imported.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let notify = dir.join("notify.sh").display().to_string();
    let dir_arg = dir.display().to_string();
    let allowed = [
        "--cluster",
        "--allow-exec",
        notify.as_str(),
        "--check-files",
        dir_arg.as_str(),
    ];
    let check = |mode: &[&str]| {
        Command::new(kube_vrrp_binary())
            .arg("check")
            .args(mode)
            .arg(&file)
            .output()
            .unwrap()
    };
    for mode in [&[][..], &allowed[..]] {
        let out = check(mode);
        assert!(
            out.status.success(),
            "{mode:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let out = check(&["--cluster"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success()
            && said.contains("field spec.notify: needs agent.allowExec in the chart")
            && said.contains(
                "field spec.healthChecks[chk-maint]: needs agent.checkFiles in the chart"
            ),
        "{said}"
    );
    // The API stand-in's CRD validation accepts it.
    {
        let api = Api::start_full(CRDS, &[]);
        let out = api.apply(&yaml, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // It runs: nginx on both nodes, agents on the imported file, n1 holds the VIP; nginx
    // stopped on n1 moves it to n2.
    let nginx1 = lab.spawn_nginx("n1", 80, None);
    lab.spawn_nginx("n2", 80, None);
    let f = file.display().to_string();
    lab.spawn_agent_with_file(&kube_vrrp_binary(), "n1", &f, false);
    lab.spawn_agent_with_file(&kube_vrrp_binary(), "n2", &f, false);
    assert!(
        wait_for(Duration::from_secs(8), || lab.holders(VIP) == ["n1"]).is_some(),
        "{}",
        lab.log("agent-n1.log")
    );
    lab.signal(nginx1, nix::sys::signal::Signal::SIGTERM);
    assert!(
        wait_for(Duration::from_secs(5), || lab.holders(VIP) == ["n2"]).is_some(),
        "{}\n{}",
        lab.log("agent-n1.log"),
        lab.log("agent-n2.log")
    );
    // The maintenance file (weight -50; one path, so on both nodes): n2 drops to 50 and keeps
    // the VIP while n1 is in FAULT. nginx back on n1: 101 - 50 = 51 > 50, n1 takes it back.
    std::fs::write(dir.join("maintenance"), "").unwrap();
    lab.spawn_nginx("n1", 80, None);
    assert!(
        wait_for(Duration::from_secs(5), || lab.holders(VIP) == ["n1"]).is_some(),
        "{}",
        lab.log("agent-n1.log")
    );
}

#[test]
fn a_bad_address_and_an_undefined_script_are_errors_with_their_lines() {
    let (ok, yaml, stderr) = import(&[&format!("{DIR}/broken.conf")]);
    assert!(!ok && yaml.is_empty(), "{yaml}");
    assert!(
        stderr.contains("broken.conf:6: error: 198.51.100.300/24: not an address"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("broken.conf:9: error: track_script names chk_missing, which is not defined"),
        "{stderr}"
    );
}
