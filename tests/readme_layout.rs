//! docs/layout.md's "Layout" block is checked against the tree: every path it names exists, and
//! every room of `src/` (each directory, and each file directly in `src/`) is named in it, so
//! the map a newcomer reads cannot drift from the house.

use std::collections::BTreeSet;
use std::path::Path;

/// The fenced block under `## Layout`: one entry a line, a path first (continuation lines start
/// with spaces and name no path).
fn layout_paths(readme: &str) -> Vec<String> {
    let start = readme
        .find("\n## Layout")
        .expect("docs/layout.md has a '## Layout' section");
    let rest = &readme[start..];
    let open = rest
        .find("```\n")
        .expect("the Layout section has a fenced block")
        + 4;
    let close = rest[open..]
        .find("```")
        .expect("the Layout block is closed")
        + open;
    rest[open..close]
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// The rooms of `src/`: every directory below it (as `src/a/b/`) and every file directly in it.
fn rooms(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .to_string();
            if path.is_dir() {
                out.insert(format!("{rel}/"));
                stack.push(path);
            } else if dir == root.join("src") && rel.ends_with(".rs") {
                out.insert(rel);
            }
        }
    }
    out
}

#[test]
fn every_path_in_the_layout_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("docs/layout.md")).unwrap();
    let missing: Vec<String> = layout_paths(&readme)
        .into_iter()
        .filter(|p| !root.join(p.trim_end_matches('/')).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "docs/layout.md's Layout names paths that do not exist: {missing:?}"
    );
}

#[test]
fn every_room_of_src_is_in_the_layout() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("docs/layout.md")).unwrap();
    let listed = layout_paths(&readme);
    // A room is named when the Layout lists it, or a file or room inside it (`src/agent/`
    // is named by `src/agent/mod.rs`).
    let unnamed: Vec<String> = rooms(root)
        .into_iter()
        .filter(|room| {
            !listed
                .iter()
                .any(|p| p == room || p.starts_with(room.as_str()))
        })
        .collect();
    assert!(
        unnamed.is_empty(),
        "rooms of src/ that docs/layout.md's Layout does not name: {unnamed:?}"
    );
}

/// The Layout block's entries: (path, the entry's words, continuation lines included).
fn layout_entries(readme: &str) -> Vec<(String, String)> {
    let start = readme.find("\n## Layout").expect("a Layout section");
    let rest = &readme[start..];
    let open = rest.find("```\n").expect("a fenced block") + 4;
    let close = rest[open..].find("```").expect("closed") + open;
    let mut out: Vec<(String, String)> = Vec::new();
    for l in rest[open..close].lines() {
        if l.trim().is_empty() {
            continue;
        }
        if l.starts_with(' ') {
            if let Some((_, text)) = out.last_mut() {
                text.push(' ');
                text.push_str(l.trim());
            }
        } else {
            let mut w = l.splitn(2, char::is_whitespace);
            let path = w.next().unwrap().to_string();
            out.push((path, w.next().unwrap_or_default().trim().to_string()));
        }
    }
    out
}

/// Every source file: `.rs` under `src/` and `e2e/src/`, the stand-in's Python.
fn source_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![
        root.join("src"),
        root.join("e2e/src"),
        root.join("e2e/kube-standin"),
    ];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs" || e == "py") {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    out
}

/// Whether the Layout names `file`: listed itself, or named (by its stem, as a word) in an
/// entry of the deepest listed directory holding it (a directory's entry, or a file entry
/// beside it); a `mod.rs` or `lib.rs` by any entry of its own directory.
fn named(entries: &[(String, String)], file: &str) -> bool {
    if entries.iter().any(|(p, _)| p == file) {
        return true;
    }
    let dir_of = |p: &str| -> String {
        if p.ends_with('/') {
            p.to_string()
        } else {
            p.rsplit_once('/')
                .map_or(String::new(), |(d, _)| format!("{d}/"))
        }
    };
    let covering: Vec<(String, &String)> = entries
        .iter()
        .map(|(p, t)| (dir_of(p), t))
        .filter(|(d, _)| !d.is_empty() && file.starts_with(d.as_str()))
        .collect();
    let Some(deepest) = covering.iter().map(|(d, _)| d.len()).max() else {
        return false;
    };
    let name = file.rsplit('/').next().unwrap();
    let stem = name.split('.').next().unwrap();
    let own_dir = dir_of(file);
    if matches!(name, "mod.rs" | "lib.rs") && covering.iter().any(|(d, _)| *d == own_dir) {
        return true;
    }
    covering
        .iter()
        .filter(|(d, _)| d.len() == deepest)
        .any(|(_, text)| {
            text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
                .map(|w| w.trim_end_matches('.'))
                .any(|w| w == stem || w == name)
        })
}

#[test]
fn every_source_file_is_in_the_layout() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("docs/layout.md")).unwrap();
    let entries = layout_entries(&readme);
    let missing: Vec<String> = source_files(root)
        .into_iter()
        .filter(|f| !named(&entries, f))
        .collect();
    assert!(
        missing.is_empty(),
        "source files docs/layout.md's Layout does not name (list the file, or name it in its directory's entry): {missing:#?}"
    );
}

#[test]
fn a_file_left_out_of_the_layout_is_found() {
    let entries = layout_entries(
        "\n## Layout\n\n```\nsrc/agent/               wiring; warden.rs: the warden\n                         and will (pure)\nsrc/lib.rs               rooms\n```\n",
    );
    assert!(named(&entries, "src/agent/warden.rs"));
    assert!(named(&entries, "src/agent/will.rs"));
    assert!(named(&entries, "src/agent/mod.rs"));
    assert!(named(&entries, "src/lib.rs"));
    assert!(!named(&entries, "src/agent/stale.rs"));
    assert!(!named(&entries, "src/agent/engine/links.rs"));
    assert!(!named(&entries, "src/units.rs"));
}
