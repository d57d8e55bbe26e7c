//! `kube-vrrp check FILE...` (keepalived `-t`): validates standalone files, or VirtualIP YAML
//! meant for a cluster (`--cluster`), and prints every problem with its file, document, field
//! and a hint. The documents are read by [`crate::yaml`], as the standalone agent reads them.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::api::KIND;
use crate::checks::Policy;
use crate::model::spec::{ValidatedVirtualIp, VridRule};
use crate::yaml::{ConfigError, Document, Seen, documents};

/// Problems a valid VirtualIP may still have on every node.
fn placement_problems(v: &ValidatedVirtualIp) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (a, text) in v.addresses.iter().zip(&v.spec.addresses) {
        if !text.contains('/') && v.spec.interface.is_none() {
            let example = match a.address {
                std::net::IpAddr::V4(_) => format!("{}/24", a.address),
                std::net::IpAddr::V6(_) => format!("{}/64", a.address),
            };
            out.push((
                "spec.addresses".to_string(),
                format!(
                    "{text} has no prefix, so /{} is assumed (as keepalived does), and no interface has an address in a /{} of it: \
                     nodes cannot find the interface by subnet. Write the subnet's prefix (e.g. {example}) or set spec.interface",
                    a.prefix_len, a.prefix_len
                ),
            ));
        }
    }
    out
}

/// The outcome of checking files.
#[derive(Debug, Default)]
pub(crate) struct CheckReport {
    pub text: String,
    pub errors: usize,
    pub objects: usize,
    /// VirtualIPPools checked and valid (cluster YAML).
    pub pools: usize,
}

fn line(out: &mut String, file: &str, e: &ConfigError) {
    let _ = writeln!(out, "{file}: {e}");
}

/// Checks each file; `cluster`: VirtualIP YAML for the API server (VRIDs and Secrets may be
/// left to the controller; other kinds are skipped), else standalone agent files.
#[cfg(test)]
pub(crate) fn run(files: &[PathBuf], cluster: bool) -> CheckReport {
    run_with(
        files,
        cluster,
        &chart_policy(Vec::new(), Some(CHART_CHECK_FILES.into())),
    )
}

/// Where the chart's agents read check files from (`agent.checkFiles`).
pub(crate) const CHART_CHECK_FILES: &str = "/etc/kube-vrrp/checks";

/// What a cluster's agents run: the chart's `agent.allowExec` and `agent.checkFiles`.
pub(crate) fn chart_policy(allow_exec: Vec<PathBuf>, check_files: Option<PathBuf>) -> Policy {
    Policy {
        cluster: true,
        allow_exec,
        run_as: None,
        files_dir: check_files,
    }
}

/// [`run`], with what the cluster's agents allow (`--cluster`: a command or file they would
/// refuse is a problem, found before `kubectl apply` rather than in the status after).
pub(crate) fn run_with(files: &[PathBuf], cluster: bool, agents: &Policy) -> CheckReport {
    let mut out = CheckReport::default();
    for path in files {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => check_text(&mut out, &file, &text, cluster, agents),
            Err(e) => {
                let _ = writeln!(out.text, "{file}: cannot read: {e}");
                out.errors += 1;
            }
        }
    }
    out
}

/// [`run`] on one file's text, named `file` in what it says.
pub(crate) fn run_text(file: &str, text: &str, cluster: bool) -> CheckReport {
    let mut out = CheckReport::default();
    let agents = chart_policy(Vec::new(), Some(CHART_CHECK_FILES.into()));
    check_text(&mut out, file, text, cluster, &agents);
    out
}

/// Checks the text of one file, adding what it found to `out`.
fn check_text(out: &mut CheckReport, file: &str, text: &str, cluster: bool, agents: &Policy) {
    let rule = if cluster {
        VridRule::Allocated
    } else {
        VridRule::Required
    };
    let mut good = if cluster {
        Seen::cluster()
    } else {
        Seen::default()
    };
    let mut seen = 0;
    // Standalone: which documents the API server would take, read once when first asked.
    let mut cluster_ok: Option<Vec<usize>> = None;
    for d in documents(text, rule) {
        // Each document by its kind: a pool is checked as a pool in either mode (and said to
        // be for a cluster only when standalone), a Secret or another kind is skipped in a
        // cluster and refused standalone, as the agent refuses it.
        match d.kind.as_deref() {
            Some("VirtualIPPool") => {
                seen += 1;
                check_pool(out, file, text, &d, cluster);
                continue;
            }
            Some(k) if k != KIND && cluster => {
                let why = if k == "Secret" {
                    " (a VirtualIP may name it in passwordSecretRef or caSecretRef)"
                } else {
                    ""
                };
                let _ = writeln!(
                    out.text,
                    "{file}: document {}: kind {k} skipped{why}",
                    d.index
                );
                continue;
            }
            _ => {}
        }
        seen += 1;
        let (index, name, failed) = (d.index, d.name.clone(), d.result.is_err());
        check_virtual_ip(out, file, d, cluster.then_some(agents), &mut good);
        // A standalone file's VirtualIP that is wrong only for a standalone agent (no VRID, a
        // Secret) is said to be valid in a cluster.
        if failed
            && !cluster
            && cluster_ok
                .get_or_insert_with(|| cluster_valid(text))
                .contains(&index)
        {
            let _ = writeln!(
                out.text,
                "{file}: document {index} ({:?}): valid in a cluster, though (kube-vrrp check --cluster, then kubectl apply)",
                name.unwrap_or_default()
            );
        }
    }
    if seen == 0 {
        let _ = writeln!(out.text, "{file}: no VirtualIP or VirtualIPPool documents");
        out.errors += 1;
    }
}

/// What the cluster's agents would refuse to run: each command and file, with the chart
/// setting that allows it.
fn refused_by(
    agents: &Policy,
    v: &crate::model::spec::ValidatedVirtualIp,
) -> Vec<(String, String)> {
    const EXEC: &str = "needs agent.allowExec in the chart (check --allow-exec)";
    const FILES: &str = "needs agent.checkFiles in the chart (check --check-files)";
    // A command runs for an exec check; any other check is refused for a file it reads.
    let admit = |c: &crate::model::tracking::Check| {
        let setting = match c.kind {
            crate::model::tracking::CheckKind::Exec(_) => EXEC,
            _ => FILES,
        };
        agents.admit(c).map_err(|e| format!("{setting}: {e}"))
    };
    let mut out = Vec::new();
    for c in &v.tracking.checks {
        if let Err(e) = admit(c) {
            out.push((format!("spec.healthChecks[{}]", c.name), e));
        }
    }
    for s in &v.virtual_servers {
        for r in &s.reals {
            if let Some(c) = &r.check
                && let Err(e) = admit(&c.check)
            {
                out.push((
                    format!(
                        "spec.virtualServers[{}].realServers[{}].check",
                        s.key(),
                        r.addr
                    ),
                    e,
                ));
            }
        }
    }
    if let Some(n) = &v.tracking.notify
        && let Err(e) = agents.admit_notify(n)
    {
        out.push(("spec.notify".into(), format!("{EXEC}: {e}")));
    }
    out
}

/// The documents of `text` that are valid VirtualIPs for the API server, by index.
fn cluster_valid(text: &str) -> Vec<usize> {
    documents(text, VridRule::Allocated)
        .into_iter()
        .filter(|d| d.result.is_ok())
        .map(|d| d.index)
        .collect()
}

/// A `VirtualIPPool` document: its address count, or its problem; standalone, a valid pool is
/// still a problem (only a cluster reads pools).
fn check_pool(out: &mut CheckReport, file: &str, text: &str, d: &Document, cluster: bool) {
    let doc = yaml_serde::Deserializer::from_str(text)
        .nth(d.index - 1)
        .map(<crate::api::VirtualIPPool as serde::Deserialize>::deserialize);
    let verdict = match doc {
        Some(Ok(pool)) => crate::model::pool::check_pool(&pool),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("cannot read the document".into()),
    };
    let name = d.name.as_deref().unwrap_or_default();
    match verdict {
        Ok(summary) if !cluster => {
            let _ = writeln!(
                out.text,
                "{file}: document {} ({name:?}): VirtualIPPool ({summary}): {}",
                d.index,
                crate::yaml::other_kind("VirtualIPPool")
            );
            out.errors += 1;
        }
        Ok(summary) => {
            let _ = writeln!(
                out.text,
                "{file}: document {} ({name:?}): ok: VirtualIPPool, {summary}",
                d.index,
            );
            out.pools += 1;
        }
        Err(e) => {
            let _ = writeln!(
                out.text,
                "{file}: document {} ({name:?}): VirtualIPPool: {e}",
                d.index,
            );
            out.errors += 1;
        }
    }
}

/// A `VirtualIP` document: valid on its own, placeable, and (standalone files) not clashing
/// with the valid ones before it, which `good` collects.
fn check_virtual_ip(
    out: &mut CheckReport,
    file: &str,
    d: Document,
    cluster: Option<&Policy>,
    good: &mut Seen,
) {
    let v = match d.result {
        Ok(v) => v,
        Err(problems) => {
            for p in &problems {
                line(&mut out.text, file, p);
            }
            out.errors += problems.len();
            return;
        }
    };
    let err = |field: &str, reason: String| ConfigError {
        document: d.index,
        name: d.name.clone(),
        field: field.into(),
        reason,
    };
    let mut problems: Vec<ConfigError> = placement_problems(&v)
        .into_iter()
        .map(|(f, r)| err(&f, r))
        .collect();
    if let Err((f, r)) = good.cross_check(&v) {
        problems.push(err(f, r));
    }
    if let Some(agents) = cluster {
        for (f, r) in refused_by(agents, &v) {
            problems.push(err(&f, r));
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            line(&mut out.text, file, p);
        }
        out.errors += problems.len();
        return;
    }
    let _ = writeln!(
        out.text,
        "{file}: document {} ({:?}): ok: {}{}, {} address(es), {} check(s){}",
        d.index,
        v.name,
        v.vrid
            .map(|r| format!("virtual router {r}"))
            .unwrap_or_else(|| "virtual router ID left to the controller".into()),
        v.spec
            .interface
            .as_deref()
            .map(|i| format!(" on {i}"))
            .unwrap_or_default(),
        v.addresses.len(),
        v.tracking.checks.len(),
        match v.virtual_servers.len() {
            0 => String::new(),
            n => format!(
                ", {n} virtual server(s) over {} real server(s)",
                v.virtual_servers
                    .iter()
                    .map(|s| s.reals.len())
                    .sum::<usize>()
            ),
        }
    );
    out.objects += 1;
    good.add(&v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str, cluster: bool) -> CheckReport {
        // One file per call: tests run in parallel.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let f =
            std::env::temp_dir().join(format!("kube-vrrp-check-{}-{n}.yaml", std::process::id()));
        std::fs::write(&f, yaml).unwrap();
        let o = run(std::slice::from_ref(&f), cluster);
        std::fs::remove_file(&f).ok();
        o
    }

    const HEAD: &str =
        "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: web}\nspec:\n";

    #[test]
    fn the_mistakes_people_make_are_said_plainly() {
        for (spec, expected) in [
            (
                "  addresses: [198.51.100.50/24]\n  virtualRouterID: 51\n  priorities: [{node: n1, priority: 300}]\n",
                "field spec.priorities[0].priority: 300 is out of range: priorities are 1 to 255",
            ),
            (
                "  addresses: [198.51.100.50/24]\n  virtualRouterID: 0\n",
                "field spec.virtualRouterID: 0 is reserved: use 1 to 255",
            ),
            (
                "  addresses: [198.51.100.50]\n  virtualRouterID: 51\n",
                "198.51.100.50 has no prefix, so /32 is assumed",
            ),
            (
                "  addresses: [198.51.100.50/24]\n  virtualRouterID: 51\n  advertInterval: 5\n",
                "\"5\" is not a duration",
            ),
            (
                "  addresses: [198.51.100.50/24]\n  virtualRouterID: 51\n  healthCheck: []\n",
                "unknown field `healthCheck`: did you mean `healthChecks`?",
            ),
            (
                "  addresses: [198.51.100.50/24]\n  virtualRouterID: 51\n  healthChecks: [{name: a, intervall: 1s, tcp: {port: 80}}]\n",
                "unknown field `intervall`: did you mean `interval`?",
            ),
            (
                "  addresses: [198.51.100.50/24]\n  virtualRouterID: 51\n  version: \"three\"\n",
                "\"three\" is text: expected a number",
            ),
        ] {
            let o = check(&format!("{HEAD}{spec}"), false);
            assert_eq!(o.errors, 1, "{spec}: {}", o.text);
            assert!(
                o.text.contains(expected),
                "{spec}: expected {expected:?} in {}",
                o.text
            );
        }
    }

    fn vip(name: &str, extra: &str) -> String {
        format!(
            "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: {name}}}\nspec:\n{extra}"
        )
    }

    /// `check --cluster` of `text` finds one problem, which says `said`.
    fn one_problem(text: &str, said: &str) {
        let o = check(text, true);
        assert_eq!(o.errors, 1, "{}", o.text);
        assert!(o.text.contains(said), "{said}\n{}", o.text);
    }

    /// Issue "What an LVS operator sees", item 5: what would run Degraded or collide in a
    /// cluster is found by `check --cluster`, before `kubectl apply`.
    #[test]
    fn check_cluster_finds_what_the_agents_refuse_and_what_collides() {
        // Two VirtualIPs on one VRID in one subnet (no interface named: the subnet decides).
        let text = [
            vip(
                "a",
                "  addresses: [198.51.100.50/24]\n  virtualRouterID: 7\n",
            ),
            vip(
                "b",
                "  addresses: [198.51.100.60/24]\n  virtualRouterID: 7\n",
            ),
            vip(
                "c",
                "  addresses: [203.0.113.60/24]\n  virtualRouterID: 7\n",
            ),
        ]
        .join("---\n");
        one_problem(
            &text,
            "document 2 (\"b\"), field spec.virtualRouterID: 7 is already used by \"a\" on the same subnet",
        );
        // One address in two VirtualIPs.
        let text = [
            vip("a", "  addresses: [198.51.100.50/24]\n"),
            vip(
                "b",
                "  addresses: [\"2001:db8:1::50/64\", 198.51.100.50/24]\n",
            ),
        ]
        .join("---\n");
        one_problem(&text, "198.51.100.50 is also an address of \"a\"");
        // Commands and files the chart's agents refuse by default.
        let text = vip(
            "a",
            "  addresses: [198.51.100.50/24]\n  healthChecks:\n  - {name: pg, exec: {command: [/usr/bin/pgrep, nginx]}}\n  \
             - {name: maint, file: {path: /var/run/maint}}\n  - {name: ok, file: {path: /etc/kube-vrrp/checks/up}}\n  \
             notify: {master: [/usr/local/bin/hook]}\n",
        );
        let o = check(&text, true);
        assert_eq!(o.errors, 3, "{}", o.text);
        for said in [
            "field spec.healthChecks[pg]: needs agent.allowExec in the chart (check --allow-exec): refused: /usr/bin/pgrep",
            "field spec.healthChecks[maint]: needs agent.checkFiles in the chart (check --check-files): refused: /var/run/maint is outside /etc/kube-vrrp/checks",
            "field spec.notify: needs agent.allowExec in the chart",
        ] {
            assert!(o.text.contains(said), "{said}\n{}", o.text);
        }
        // Allowed as the chart would be set.
        let f = std::env::temp_dir().join(format!(
            "kube-vrrp-check-allowed-{}.yaml",
            std::process::id()
        ));
        std::fs::write(&f, &text).unwrap();
        let agents = chart_policy(
            vec!["/usr/bin/pgrep".into(), "/usr/local/bin/hook".into()],
            Some("/var/run".into()),
        );
        let o = run_with(std::slice::from_ref(&f), true, &agents);
        std::fs::remove_file(&f).ok();
        // Only the file outside the directory now given stays refused.
        assert_eq!(o.errors, 1, "{}", o.text);
        assert!(
            o.text
                .contains("/etc/kube-vrrp/checks/up is outside /var/run"),
            "{}",
            o.text
        );
        // Standalone, the file's agent runs what it says.
        assert_eq!(
            check(
                &text.replace("addresses:", "virtualRouterID: 9\n  addresses:"),
                false
            )
            .errors,
            0
        );
    }

    #[test]
    fn cluster_objects_may_leave_the_vrid_and_carry_other_kinds() {
        let yaml = format!(
            "{HEAD}  addresses: [198.51.100.50/24]\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\n"
        );
        let o = check(&yaml, true);
        assert_eq!((o.errors, o.objects), (0, 1), "{}", o.text);
        assert!(
            o.text.contains("virtual router ID left to the controller")
                && o.text.contains("kind Secret skipped")
        );
        let o = check(&yaml, false);
        assert_eq!(o.errors, 2, "{}", o.text);
        assert!(
            o.text
                .contains("document 1 (\"web\"): valid in a cluster, though")
                && o.text
                    .contains("field kind: Secret is valid only in a cluster"),
            "{}",
            o.text
        );
        assert!(!o.text.contains("missing field"), "{}", o.text);
    }

    #[test]
    fn each_document_is_read_by_its_kind() {
        let pool = include_str!("../config/loadbalancer-pool.yaml");
        let o = check(pool, false);
        assert_eq!(o.errors, 1, "{}", o.text);
        assert!(
            o.text.contains("VirtualIPPool (40 IPv4 and 256 IPv6 address(es)): VirtualIPPool is valid only in a cluster"),
            "{}",
            o.text
        );
        assert!(!o.text.contains("unknown field"), "{}", o.text);
        let o = check(pool, true);
        assert_eq!((o.errors, o.pools), (0, 1), "{}", o.text);
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
        let o = check(cm, false);
        assert!(
            o.text
                .contains("ConfigMap: a standalone agent reads VirtualIP documents only"),
            "{}",
            o.text
        );
    }

    #[test]
    fn every_error_of_a_file_is_listed() {
        let yaml = format!(
            "{HEAD}  addresses: [198.51.100.50/24]\n  virtualRouterID: 51\n---\n{}  addresses: [198.51.100.60/24]\n  virtualRouterID: 51\n---\n{}",
            HEAD.replace("web", "db"),
            HEAD.replace("web", "x") + "  addresses: []\n  virtualRouterID: 52\n"
        );
        let o = check(&yaml, false);
        assert_eq!((o.errors, o.objects), (2, 1), "{}", o.text);
        assert!(
            o.text.contains(
                "document 2 (\"db\"), field spec.virtualRouterID: 51 is already used by \"web\""
            ),
            "{}",
            o.text
        );
        assert!(
            o.text.contains("document 3 (\"x\"), field spec.addresses"),
            "{}",
            o.text
        );
    }

    #[test]
    fn every_problem_of_one_document_is_listed() {
        let yaml = format!(
            "{HEAD}  addresses: [198.51.100.50/24]\n  virtualRouterID: 0\n  advertInterval: 1 second\n  preemptDelay: 2h\n  interface: lo\n  advertIntreval: 1s\n"
        );
        let o = check(&yaml, false);
        assert_eq!(o.errors, 5, "{}", o.text);
        for want in [
            "field spec.advertIntreval: unknown field `advertIntreval`",
            "field spec.virtualRouterID: 0 is reserved",
            "field spec.interface: \"lo\" is the loopback interface",
            "field spec.advertInterval:",
            "field spec.preemptDelay: \"2h\" is out of range",
        ] {
            assert!(o.text.contains(want), "{want}\n{}", o.text);
        }
    }

    #[test]
    fn a_text_is_checked_without_a_file() {
        let mut o = CheckReport::default();
        check_text(&mut o, "f.yaml", "", false, &Policy::default());
        assert_eq!(o.errors, 1);
        assert!(
            o.text
                .contains("f.yaml: no VirtualIP or VirtualIPPool documents")
        );
        let mut o = CheckReport::default();
        let pool = "apiVersion: kube-vrrp.io/v1alpha1\nkind: VirtualIPPool\nmetadata: {name: p}\nspec: {addresses: [192.0.2.10-192.0.2.20]}\n";
        check_text(&mut o, "p.yaml", pool, true, &Policy::default());
        assert_eq!((o.errors, o.pools), (0, 1), "{}", o.text);
        assert!(o.text.contains("ok: VirtualIPPool"), "{}", o.text);
    }
}
