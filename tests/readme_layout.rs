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
