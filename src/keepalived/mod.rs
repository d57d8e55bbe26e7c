//! `kube-vrrp import-keepalived FILE... [--node NAME]...`: keepalived.conf files (one per
//! node) → VirtualIP YAML. Parsed as keepalived parses them: `!` and `#` comments, double
//! quotes, braces anywhere on a line, `include` with globs resolved against the including
//! file's directory. Instances with the same virtual router ID (and family) in several files
//! merge into one VirtualIP with per-node priorities. What cannot be carried over is a warning
//! with file and line; an address that is not one, or a `track_script` naming no script, is an
//! error with its line. Nothing is dropped silently.
//!
//! The rooms, in pipeline order: `lexer` (text → lines, includes), `parser` (lines →
//! statements and blocks), `scripts` (`vrrp_script` → checks, commands → argv),
//! `convert` (one file → its node's instances), `merge` (all nodes → VirtualIPs);
//! `report` holds the messages, `values` the value conversions.

mod convert;
mod lexer;
mod lvs;
mod merge;
mod parser;
mod report;
mod scripts;
mod sync;
mod values;

use std::path::PathBuf;

use crate::api::VirtualIpDocument;

use lexer::{Disk, Files};
pub(crate) use report::Message;
use report::Report;
use values::dns_name;

/// What an import produced.
#[derive(Debug, Default)]
pub(crate) struct Import {
    pub documents: Vec<VirtualIpDocument>,
    pub warnings: Vec<Message>,
    pub notes: Vec<Message>,
    pub errors: Vec<Message>,
}

impl Import {
    /// The VirtualIPs as YAML documents.
    pub(crate) fn yaml(&self) -> String {
        self.documents
            .iter()
            .map(Self::to_yaml)
            .collect::<Vec<_>>()
            .join("---\n")
    }

    fn to_yaml(d: &VirtualIpDocument) -> String {
        let mut v = yaml_serde::to_value(d).unwrap_or_default();
        prune(&mut v);
        yaml_serde::to_string(&v).unwrap_or_default()
    }
}

/// Leaves out what says nothing: `false` switches and zero weights (the defaults).
fn prune(v: &mut yaml_serde::Value) {
    match v {
        yaml_serde::Value::Mapping(m) => {
            m.retain(|k, v| {
                !(matches!(v, yaml_serde::Value::Bool(false))
                    || (k.as_str() == Some("weight") && v.as_i64() == Some(0)))
            });
            m.values_mut().for_each(prune);
        }
        yaml_serde::Value::Sequence(s) => s.iter_mut().for_each(prune),
        _ => {}
    }
}

/// Imports keepalived.conf files; `nodes` names the files' nodes in order.
pub(crate) fn import(files: &[PathBuf], nodes: &[String]) -> Import {
    import_from(&Disk, files, nodes)
}

/// [`import`] of files read through `source`.
fn import_from(source: &dyn Files, files: &[PathBuf], nodes: &[String]) -> Import {
    let mut report = Report::default();
    let mut instances = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let lines = lexer::read(path, source, &mut report);
        let stmts = parser::parse(lines, &mut report);
        // Without --node or router_id: the file's name.
        let default_node = || {
            path.file_stem()
                .map(|s| dns_name(&s.to_string_lossy()))
                .unwrap_or_else(|| format!("node{}", i + 1))
        };
        instances.extend(convert::file(
            &stmts,
            nodes.get(i).cloned(),
            default_node,
            &mut report,
        ));
    }
    // What is imported passes `kube-vrrp check`: a VirtualIP that would not is refused here,
    // at its vrrp_instance, with check's reason.
    let mut documents = Vec::new();
    for (doc, at) in merge::merge(instances, &mut report) {
        let yaml = Import::to_yaml(&doc);
        let checked = crate::check::run_text(&doc.metadata.name, &yaml, false);
        if checked.errors > 0 {
            for line in checked.text.lines().filter(|l| !l.ends_with(": ok")) {
                report.error(
                    &at,
                    format!("imported, it would not pass kube-vrrp check: {line}"),
                );
            }
        } else {
            documents.push(doc);
        }
    }
    Import {
        documents,
        warnings: report.warnings,
        notes: report.notes,
        errors: report.errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lexer::tests::Memory;
    use report::tests::lines;

    const LB: &str = "! node 1
global_defs {
   router_id LB1
   smtp_server 127.0.0.1
}
vrrp_script chk_maint {
    script \"[ ! -f /etc/keepalived/maint ]\"
    weight -50
}
include conf.d/*.conf
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 101
    advert_int 0.1
    virtual_ipaddress {
        192.0.2.50/24
    }
    track_script {
        chk_maint
    }
}
";

    fn pair() -> Memory {
        Memory::new(&[
            ("/k/lb1.conf", LB),
            (
                "/k/lb2.conf",
                &LB.replace("LB1", "LB2")
                    .replace("priority 101", "priority 100"),
            ),
            (
                "/k/conf.d/sync.conf",
                "vrrp_sync_group VG_1 {\n  group {\n    VI_1\n  }\n}\n",
            ),
        ])
    }

    fn paths(p: &[&str]) -> Vec<PathBuf> {
        p.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn two_nodes_files_import_as_one_virtual_ip() {
        let i = import_from(
            &pair(),
            &paths(&["/k/lb1.conf", "/k/lb2.conf"]),
            &["n1".into(), "n2".into()],
        );
        assert!(i.errors.is_empty(), "{:?}", i.errors);
        assert_eq!(i.documents.len(), 1);
        assert_eq!(
            i.yaml(),
            "apiVersion: kube-vrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: vi-1
spec:
  addresses:
  - 192.0.2.50/24
  interface: eth0
  virtualRouterID: 51
  version: 2
  advertInterval: 1s
  preempt: true
  priorities:
  - node: n1
    priority: 101
  - node: n2
    priority: 100
  defaultPriority: 100
  healthChecks:
  - name: chk-maint
    weight: -50
    file:
      path: /etc/keepalived/maint
      mode: Exists
"
        );
    }

    #[test]
    fn warnings_and_notes_say_file_and_line() {
        let i = import_from(&pair(), &paths(&["/k/lb1.conf", "/k/lb2.conf"]), &[]);
        assert!(i.errors.is_empty(), "{:?}", i.errors);
        assert_eq!(
            lines(&i.warnings),
            [
                "/k/lb1.conf:4: global_defs smtp_server is not carried over",
                // keepalived rounds it too: VRRPv2 has no sub-second interval.
                "/k/lb1.conf:16: advert_int 0.1: VRRPv2 carries 1s, the nearest it can",
                "/k/lb2.conf:4: global_defs smtp_server is not carried over",
                "/k/lb2.conf:16: advert_int 0.1: VRRPv2 carries 1s, the nearest it can",
            ]
        );
        assert_eq!(
            lines(&i.notes),
            [
                "/k/lb1.conf:3: node name LB1 from router_id: pass --node NAME per file to use your Kubernetes node names",
                "/k/lb1.conf:6: vrrp_script chk_maint: the script tests that /etc/keepalived/maint does not exist: imported as a native file check (mode Exists)",
                "/k/lb1.conf:12: state MASTER: kube-vrrp starts every node as backup; the priority decides",
                "/k/conf.d/sync.conf:1: vrrp_sync_group VG_1: VI_1 alone: nothing to move with it",
                "/k/lb2.conf:3: node name LB2 from router_id: pass --node NAME per file to use your Kubernetes node names",
                "/k/lb2.conf:6: vrrp_script chk_maint: the script tests that /etc/keepalived/maint does not exist: imported as a native file check (mode Exists)",
                "/k/lb2.conf:12: state MASTER: kube-vrrp starts every node as backup; the priority decides",
                "/k/conf.d/sync.conf:1: vrrp_sync_group VG_1: VI_1 alone: nothing to move with it",
            ]
        );
        let p = &i.documents[0].spec.priorities;
        assert_eq!((p[0].node.as_str(), p[1].node.as_str()), ("LB1", "LB2"));
    }

    #[test]
    fn without_node_or_router_id_the_file_name_names_the_node() {
        let files = Memory::new(&[(
            "/k/Node_A.conf",
            "vrrp_instance VI_1 {\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1/24\n }\n}\n",
        )]);
        let i = import_from(&files, &paths(&["/k/Node_A.conf"]), &[]);
        assert_eq!(i.documents[0].spec.priorities[0].node, "node-a");
    }

    #[test]
    fn errors_come_with_their_lines() {
        let files = Memory::new(&[(
            "/k/broken.conf",
            "vrrp_instance VI_1 {\n virtual_router_id 51\n virtual_ipaddress {\n 198.51.100.300/24\n }\n track_script {\n chk_missing\n }\n}\n",
        )]);
        let i = import_from(&files, &paths(&["/k/broken.conf", "/k/gone.conf"]), &[]);
        let errors = lines(&i.errors);
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert_eq!(
            errors[0],
            "/k/broken.conf:4: 198.51.100.300/24: not an address: \"198.51.100.300/24\" is not an IP address (write ip/prefix, e.g. 192.0.2.10/24)"
        );
        assert_eq!(
            errors[1],
            "/k/broken.conf:7: track_script names chk_missing, which is not defined (vrrp_script / vrrp_track_file)"
        );
        assert_eq!(
            errors[2],
            "/k/broken.conf:1: vrrp_instance VI_1 has no virtual_ipaddress"
        );
        assert!(errors[3].starts_with("/k/gone.conf:0: cannot read /k/gone.conf: "));
    }

    #[test]
    fn yaml_leaves_out_false_switches_and_zero_weights() {
        let mut v: yaml_serde::Value = yaml_serde::from_str(
            "a: false\nb: true\nweight: 0\nlist:\n- weight: 0\n  x: 1\n- weight: -5\nother: 0\n",
        )
        .unwrap();
        prune(&mut v);
        assert_eq!(
            yaml_serde::to_string(&v).unwrap(),
            "b: true\nlist:\n- x: 1\n- weight: -5\nother: 0\n"
        );
    }

    /// The samples of `corpus/`, as keepalived operators write them.
    const CORPUS: [(&str, &str); 3] = [
        ("/k/director.conf", include_str!("corpus/director.conf")),
        ("/k/backup.conf", include_str!("corpus/backup.conf")),
        ("/k/lb1.conf", LB),
    ];

    /// What `kube-vrrp check` (standalone) says of an import's YAML: the errors.
    fn check_errors(yaml: &str) -> Vec<String> {
        let dir = std::env::temp_dir().join(format!("kube-vrrp-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{:?}.yaml", std::thread::current().id()));
        std::fs::write(&file, yaml).unwrap();
        let report = crate::check::run(std::slice::from_ref(&file), false);
        let _ = std::fs::remove_file(&file);
        if report.errors == 0 {
            Vec::new()
        } else {
            vec![report.text]
        }
    }

    fn import_one(path: &str, text: &str) -> Import {
        let files = Memory::new(&[(path, text), ("/k/conf.d/sync.conf", "")]);
        import_from(&files, &paths(&[path]), &["n1".into()])
    }

    /// Issue "What an LVS operator sees": an import that succeeds always passes `check`, and
    /// every sample imports with nothing silently dropped.
    #[test]
    fn every_sample_imports_into_what_check_accepts() {
        for (path, text) in CORPUS {
            let i = import_one(path, text);
            assert!(i.errors.is_empty(), "{path}: {:?}", i.errors);
            let yaml = i.yaml();
            assert_eq!(check_errors(&yaml), Vec::<String>::new(), "{path}:\n{yaml}");
        }
        // The director's values at keepalived's edges, as they were carried.
        let i = import_one(CORPUS[0].0, CORPUS[0].1);
        let yaml = i.yaml();
        let notes = lines(&i.notes).join("\n");
        for said in [
            "retry 50: carried as 10",
            "delay_before_retry 0: carried as 10ms",
            "connect_timeout 30: carried as 10s",
            "connect_timeout 0.001: carried as 10ms",
            "delay_loop 0.01: carried as 100ms",
        ] {
            assert!(notes.contains(said), "{said}\n{notes}");
        }
        // delay_loop written after the real servers still applies to them.
        assert_eq!(yaml.matches("delayLoop: 10s").count(), 2, "{yaml}");
        // inhibit_on_failure stays with its real server; excluded addresses stay excluded.
        assert_eq!(yaml.matches("inhibitOnFailure: true").count(), 1, "{yaml}");
        assert!(
            yaml.contains("excludedAddresses:\n  - 198.51.100.51/24\n"),
            "{yaml}"
        );
        // An excluded IPv6 address of an IPv4 instance needs an IPv6 instance: advertised.
        assert!(yaml.contains("  - 2001:db8:1::51/64\n"), "{yaml}");
        assert!(
            lines(&i.warnings)
                .iter()
                .any(|w| w.contains("virtual_ipaddress_excluded 2001:db8:1::51/64: no address of that family is advertised")),
            "{:?}",
            i.warnings
        );
    }

    /// Mutated samples (every number replaced by odd values, in turn): the import refuses with
    /// an error, or its YAML passes `check`; a value it cannot read is a warning with its line.
    #[test]
    fn mutated_samples_import_into_what_check_accepts_or_are_refused() {
        const ODD: [&str; 9] = [
            "0",
            "-1",
            "x",
            "65536",
            "1e9",
            "0.001",
            "4294967296",
            "NaN",
            "3600.5",
        ];
        let (mut cases, mut refused) = (0, 0);
        for (path, text) in CORPUS {
            let words: Vec<(usize, &str)> = text
                .match_indices(|c: char| c.is_ascii_digit())
                .map(|(i, _)| i)
                .filter(|i| {
                    *i == 0
                        || !text.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && text.as_bytes()[i - 1] != b'.'
                            && text.as_bytes()[i - 1] != b':'
                })
                .map(|i| {
                    let end = text[i..]
                        .find(|c: char| c.is_whitespace())
                        .map_or(text.len(), |e| i + e);
                    (i, &text[i..end])
                })
                .filter(|(_, w)| w.parse::<f64>().is_ok())
                .collect();
            for (n, (at, word)) in words.iter().enumerate() {
                let odd = ODD[n % ODD.len()];
                let mutated = format!("{}{odd}{}", &text[..*at], &text[at + word.len()..]);
                let i = import_one(path, &mutated);
                cases += 1;
                if !i.errors.is_empty() {
                    refused += 1;
                    continue;
                }
                let yaml = i.yaml();
                assert_eq!(
                    check_errors(&yaml),
                    Vec::<String>::new(),
                    "{path}: {word} -> {odd} at byte {at}:\n{yaml}"
                );
            }
        }
        // Most odd values are carried (as the nearest, or the default, each said with its
        // line); the rest are refused with check's reason.
        eprintln!("{cases} mutated samples, {refused} refused");
        assert!(
            cases > 40 && refused * 2 < cases,
            "{cases} cases, {refused} refused"
        );
    }
}
