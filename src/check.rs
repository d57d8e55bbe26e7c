//! `kube-vrrp check FILE...` (keepalived `-t`): validates standalone files, or VirtualIP YAML
//! meant for a cluster (`--cluster`), and prints every problem with its file, document, field
//! and a hint. Also the error texts every reader of VirtualIP YAML shares: what a number out of
//! range means for that field, which field a misspelt one probably is.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::agent::source::{ConfigError, cross_check, documents};
use crate::api::{KIND, VirtualIP};
use crate::model::spec::{VirtualIp, VridRule};

/// A deserialization error in words for the field it is about.
pub fn explain(path: &str, message: &str) -> String {
    let field = path.rsplit('.').next().unwrap_or(path);
    let field = field.split('[').next().unwrap_or(field);
    let number = message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("invalid value: integer"));
    let range = match field {
        "priority" | "defaultPriority" => {
            Some("priorities are 1 to 255 (255 makes the node the address owner)")
        }
        "virtualRouterID" => Some("virtual router IDs are 1 to 255 (0 is reserved)"),
        "version" => Some("the VRRP version is 2 or 3"),
        "weight" => Some("weights are -253 to 253"),
        "port" => Some("ports are 1 to 65535"),
        "fall" | "rise" => Some("use 1 to 100"),
        "masterRepeat" => Some("use 1 to 100"),
        _ => None,
    };
    match (number, range) {
        (Some(n), Some(r)) => format!("{n} is out of range: {r}"),
        (Some(n), None) => format!("{n} is out of range ({message})"),
        (None, _) if message.starts_with("invalid type: string") => {
            let what = message
                .split(", expected ")
                .nth(1)
                .unwrap_or("another type");
            let value = message.split('"').nth(1).unwrap_or("");
            let wanted = if what.starts_with('u') || what.starts_with('i') {
                "a number"
            } else {
                what
            };
            format!("{value:?} is text: expected {wanted}")
        }
        _ => message.to_string(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (
        a.to_lowercase().chars().collect(),
        b.to_lowercase().chars().collect(),
    );
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The field a misspelt one (a path such as `spec.healthCheck` or
/// `spec.healthChecks[0].intervall`) probably is, from the VirtualIP schema.
pub fn suggest(path: &str) -> Option<String> {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(VirtualIP::crd()).ok()?;
    let mut schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let segments: Vec<&str> = path.split('.').collect();
    let (last, parents) = segments.split_last()?;
    for seg in parents {
        // `healthChecks.0` (serde_ignored) or `healthChecks[0]` (serde_path_to_error).
        if seg.parse::<usize>().is_ok() {
            schema = &schema["items"];
            continue;
        }
        let name = seg.split('[').next().unwrap_or(seg);
        schema = &schema["properties"][name];
        if seg.contains('[') {
            schema = &schema["items"];
        }
    }
    let last = last.split('[').next().unwrap_or(last);
    schema["properties"]
        .as_object()?
        .keys()
        .map(|k| (edit_distance(k, last), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) || k.eq_ignore_ascii_case(last))
        .min()
        .map(|(_, k)| k.clone())
}

/// Problems a valid VirtualIP may still have on every node.
fn placement_problems(v: &VirtualIp) -> Vec<(String, String)> {
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
pub struct Outcome {
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
pub fn run(files: &[PathBuf], cluster: bool) -> Outcome {
    let rule = if cluster {
        VridRule::Allocated
    } else {
        VridRule::Required
    };
    let mut out = Outcome {
        text: String::new(),
        errors: 0,
        objects: 0,
        pools: 0,
    };
    for path in files {
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                let _ = writeln!(out.text, "{file}: cannot read: {e}");
                out.errors += 1;
                continue;
            }
        };
        let mut good: Vec<VirtualIp> = Vec::new();
        let mut seen = 0;
        for d in documents(&text, rule) {
            if cluster && d.kind.as_deref() == Some("VirtualIPPool") {
                seen += 1;
                let doc = serde_yaml::Deserializer::from_str(&text)
                    .nth(d.index - 1)
                    .map(<crate::api::VirtualIPPool as serde::Deserialize>::deserialize);
                let verdict = match doc {
                    Some(Ok(pool)) => crate::controller::lb::check_pool(&pool),
                    Some(Err(e)) => Err(e.to_string()),
                    None => Err("cannot read the document".into()),
                };
                match verdict {
                    Ok(summary) => {
                        let _ = writeln!(
                            out.text,
                            "{file}: document {} ({:?}): ok: VirtualIPPool, {summary}",
                            d.index,
                            d.name.as_deref().unwrap_or_default()
                        );
                        out.pools += 1;
                    }
                    Err(e) => {
                        let _ = writeln!(
                            out.text,
                            "{file}: document {} ({:?}): VirtualIPPool: {e}",
                            d.index,
                            d.name.as_deref().unwrap_or_default()
                        );
                        out.errors += 1;
                    }
                }
                continue;
            }
            if cluster && d.kind.as_deref().is_some_and(|k| k != KIND) {
                let _ = writeln!(
                    out.text,
                    "{file}: document {}: kind {} skipped",
                    d.index,
                    d.kind.as_deref().unwrap_or_default()
                );
                continue;
            }
            seen += 1;
            let err = |field: &str, reason: String| ConfigError {
                document: d.index,
                name: d.name.clone(),
                field: field.into(),
                reason,
            };
            match d.result {
                Err(e) => {
                    line(&mut out.text, &file, &e);
                    out.errors += 1;
                }
                Ok(v) => {
                    let mut problems: Vec<ConfigError> = placement_problems(&v)
                        .into_iter()
                        .map(|(f, r)| err(&f, r))
                        .collect();
                    if !cluster && let Err((f, r)) = cross_check(&good, &v) {
                        problems.push(err(f, r));
                    }
                    if problems.is_empty() {
                        let _ = writeln!(
                            out.text,
                            "{file}: document {} ({:?}): ok: {}{}, {} address(es), {} check(s)",
                            d.index,
                            v.name,
                            v.vrid
                                .map(|r| format!("virtual router {r}"))
                                .unwrap_or_else(
                                    || "virtual router ID left to the controller".into()
                                ),
                            v.spec
                                .interface
                                .as_deref()
                                .map(|i| format!(" on {i}"))
                                .unwrap_or_default(),
                            v.addresses.len(),
                            v.health.checks.len()
                        );
                        out.objects += 1;
                        good.push(v);
                    } else {
                        for p in &problems {
                            line(&mut out.text, &file, p);
                        }
                        out.errors += problems.len();
                    }
                }
            }
        }
        if seen == 0 {
            let _ = writeln!(out.text, "{file}: no VirtualIP or VirtualIPPool documents");
            out.errors += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str, cluster: bool) -> Outcome {
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
                "\"5\": missing unit",
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
}
