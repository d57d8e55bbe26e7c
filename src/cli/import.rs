//! `kube-vrrp import-keepalived`: keepalived.conf files → VirtualIP YAML on stdout, what
//! cannot be carried over on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

pub(crate) fn run(files: &[PathBuf], nodes: &[String]) -> ExitCode {
    let i = crate::keepalived::import(files, nodes);
    for (kind, list) in [
        ("error", &i.errors),
        ("warning", &i.warnings),
        ("note", &i.notes),
    ] {
        for m in list {
            eprintln!("{}: {kind}: {}", m.at, m.text);
        }
    }
    if !i.errors.is_empty() {
        eprintln!("{} error(s): nothing printed", i.errors.len());
        return ExitCode::from(1);
    }
    print!("{}", i.yaml());
    eprintln!(
        "{} VirtualIP(s), {} warning(s) (not carried over), {} note(s)",
        i.documents.len(),
        i.warnings.len(),
        i.notes.len()
    );
    ExitCode::SUCCESS
}
