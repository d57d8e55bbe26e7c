//! The README's "Quick start on a cluster", run as written: every shell command of its
//! sections, in order, against the API stand-in with the chart's RBAC, then a controller and
//! two agents in the lab (as the pods the install creates would run). What the README shows
//! (`kubectl get virtualips`, the Service's address and Events) must come out.
//!
//! One command is not run, and the test fails if the README's changes: building and pushing
//! the image needs a container engine (CI builds the same image with buildah: `.ci/image`).
//! `kubectl -n kube-vrrp-system get pods` runs but shows no pod: nothing starts the chart's
//! pods here, so the test starts the controller and the agents itself, as they would run.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use kube_vrrp_e2e::standin::{Api, KUBE_VRRP_CRDS};
use kube_vrrp_e2e::{kube_vrrp_binary, wait_for};

const README: &str = include_str!("../../README.md");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// The README's commands not run here, and why.
const NOT_RUN: [(&str, &str); 1] = [(
    "bash image/rootfs.sh && docker build",
    "no container engine on the machines this runs on; .ci/image builds the image",
)];

/// The shell commands of the README's cluster quick start, in order: `sh` blocks between
/// "## Quick start on a cluster" and the next section of its level, comments off and
/// continued lines joined.
fn commands() -> Vec<String> {
    let start = README
        .find("## Quick start on a cluster")
        .expect("the README has a cluster quick start");
    let rest = &README[start + 3..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in section.lines() {
        if line.starts_with("```") {
            in_sh = !in_sh && line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let line = match line.find("  #") {
            Some(i) => &line[..i],
            None => line,
        }
        .trim();
        if line.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(&format!("{} ", head.trim())),
            None => {
                out.push(format!("{pending}{line}"));
                pending.clear();
            }
        }
    }
    out
}

/// A command's words, with every word naming a file or directory of the repository made
/// absolute (the README's commands run from its top).
fn words(command: &str) -> Vec<String> {
    command
        .split_whitespace()
        .map(|w| {
            let path = Path::new(ROOT).join(w);
            if !w.starts_with('-') && w.contains('/') && path.exists() {
                path.display().to_string()
            } else {
                w.to_string()
            }
        })
        .collect()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs kubectl until its output shows what `shown` looks for (20 s at most); panics with the
/// last output and the logs.
fn until_shown(api: &Api, args: &[&str], shown: impl Fn(&str) -> bool) {
    let mut last = String::new();
    let seen = wait_for(Duration::from_secs(20), || {
        last = text(&api.kubectl(args));
        shown(&last)
    });
    assert!(seen.is_some(), "kubectl {args:?}:\n{last}\n{}", api.logs());
}

/// The README's sample of `kubectl get virtualips`: header and row.
fn readme_table() -> (Vec<String>, Vec<String>) {
    let at = README
        .find("\nNAME   ADDRESSES")
        .expect("the README shows the table");
    let mut lines = README[at + 1..].lines();
    let cols = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    (cols(lines.next().unwrap()), cols(lines.next().unwrap()))
}

#[test]
fn the_readme_s_cluster_quick_start_runs_as_written() {
    let commands = commands();
    assert!(commands.len() >= 10, "{commands:#?}");
    for (prefix, _) in NOT_RUN {
        assert!(
            commands.iter().any(|c| c.starts_with(prefix)),
            "the README no longer says {prefix:?}: update NOT_RUN"
        );
    }
    // The cluster before the install: no kube-vrrp namespace, the nodes registered.
    let mut api = Api::start_lab(2, KUBE_VRRP_CRDS, &[("STANDIN_ACCOUNT_NAMESPACES", "0")]);
    assert!(!api.external, "the lab's agents need the stand-in");
    api.add_some_nodes(&["n1", "n2"]);
    // What the nodes run beside the agent: the kubelet the pool's check asks (127.0.0.1:10250;
    // a Python listener stands in for it).
    for n in ["n1", "n2"] {
        let ns = api.lab.node(n).ns.clone();
        api.lab.spawn(
            &ns,
            &[
                "python3",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "10250",
            ],
            &format!("kubelet-{n}.log"),
        );
    }
    let (header, row) = readme_table();
    let mut started = false;
    // The outputs the README promises, each checked once its command ran.
    let mut checked: Vec<&str> = Vec::new();
    for command in &commands {
        if NOT_RUN.iter().any(|(p, _)| command.starts_with(p)) {
            eprintln!("not run: {command}");
            continue;
        }
        eprintln!("$ {command}");
        let w = words(command);
        let args: Vec<&str> = w[1..].iter().map(String::as_str).collect();
        let out = match w[0].as_str() {
            "kubectl" => api.kubectl(&args),
            "helm" => {
                let mut full = vec!["helm", "--kubeconfig", &api.kubeconfig];
                full.extend(&args);
                api.lab.exec(&api.lab.client.ns, &full)
            }
            "kube-vrrp" => std::process::Command::new(kube_vrrp_binary())
                .args(&args)
                .output()
                .unwrap(),
            other => {
                panic!("the README runs {other:?}: teach this test how, or list it in NOT_RUN")
            }
        };
        assert!(out.status.success(), "{command}\n{}", text(&out));
        eprint!("{}", String::from_utf8_lossy(&out.stdout));
        if command.starts_with("helm install") && !started {
            // The chart's pods, as the kubelet would start them: a controller and an agent on
            // each node, with the chart's ServiceAccounts.
            api.spawn_controller("c1", 9651);
            api.spawn_cluster_agent("n1");
            api.spawn_cluster_agent("n2");
            api.wait_registered(&["n1", "n2"]);
            started = true;
        }
        if command == "kubectl get virtualips" {
            // What the README shows, once the election has spoken (AGE aside).
            until_shown(&api, &["get", "virtualips"], |o| {
                let rows: Vec<Vec<&str>> =
                    o.lines().map(|l| l.split_whitespace().collect()).collect();
                rows.len() == 2
                    && rows[0] == header
                    && rows[1][..rows[1].len() - 1] == row[..row.len() - 1]
            });
            checked.push("get virtualips");
        }
        if command == "kubectl get service web" {
            // EXTERNAL-IP from the pool.
            until_shown(&api, &["get", "service", "web"], |o| {
                o.contains("198.51.100.200")
            });
            checked.push("service address");
        }
        if command == "kubectl describe service web" {
            // Events: IPAllocated, Announced "n2 answers for ...".
            until_shown(&api, &["describe", "service", "web"], |o| {
                o.contains("IPAllocated") && o.contains("Announced") && o.contains("answers for")
            });
            checked.push("service events");
        }
    }
    assert!(started, "the README installs the chart: {commands:#?}");
    assert_eq!(
        checked,
        ["get virtualips", "service address", "service events"],
        "a command whose output the README shows changed: update this test ({commands:#?})"
    );
    if let Some(report) = api.rbac_report() {
        assert_eq!(report["denied"], serde_json::json!([]), "{report}");
    }
}
