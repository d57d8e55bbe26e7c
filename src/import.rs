//! `kube-vrrp import-keepalived FILE... [--node NAME]...`: keepalived.conf files (one per
//! node) → VirtualIP YAML. Parsed as keepalived parses them: `!` and `#` comments, double
//! quotes, braces anywhere on a line, `include` with globs resolved against the including
//! file's directory. Instances with the same virtual router ID (and family) in several files
//! merge into one VirtualIP with per-node priorities. What cannot be carried over is a warning
//! with file and line; an address that is not one, or a `track_script` naming no script, is an
//! error with its line. Nothing is dropped silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::api::{
    AuthenticationSpec, ExecCheckSpec, FileCheckSpec, FileMode, GarpSpec, HealthCheckSpec,
    HttpCheckSpec, InitialState, NodePriority, NotifySpec, ObjectMeta, Scheme, TcpCheckSpec,
    TrackInterfaceSpec, VirtualIpDocument, VirtualIpSpec,
};
use crate::vrrp::VirtualAddress;

/// Where a statement comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A message about the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub at: Place,
    pub text: String,
}

/// A statement: its words, and its block when it has one.
#[derive(Debug, Clone)]
struct Stmt {
    words: Vec<String>,
    at: Place,
    block: Option<Vec<Stmt>>,
}

impl Stmt {
    fn key(&self) -> &str {
        self.words.first().map(String::as_str).unwrap_or("")
    }
    fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }
    fn children(&self) -> &[Stmt] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// Splits a line as keepalived does: words, `{` and `}` on their own, double-quoted strings as
/// one word, and a comment from a `!` or `#` that starts a word.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars = line.chars();
    let mut quoted = false;
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    for c in chars {
        if quoted {
            if c == '"' {
                quoted = false;
                out.push(std::mem::take(&mut cur));
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                flush(&mut cur, &mut out);
                quoted = true;
            }
            '!' | '#' if cur.is_empty() => break,
            '{' | '}' => {
                flush(&mut cur, &mut out);
                out.push(c.to_string());
            }
            c if c.is_whitespace() => flush(&mut cur, &mut out),
            c => cur.push(c),
        }
    }
    if quoted || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Reads a file and its includes into (words, place) lines.
fn read_lines(
    path: &Path,
    depth: usize,
    out: &mut Vec<(Vec<String>, Place)>,
    errors: &mut Vec<Message>,
    from: Option<&Place>,
) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(Message {
                at: from.cloned().unwrap_or(Place {
                    file: path.display().to_string(),
                    line: 0,
                }),
                text: format!("cannot read {}: {e}", path.display()),
            });
            return;
        }
    };
    let file = path.display().to_string();
    for (i, line) in text.lines().enumerate() {
        let at = Place {
            file: file.clone(),
            line: i + 1,
        };
        let words = tokens(line);
        if words.first().map(String::as_str) == Some("include") {
            if depth > 8 {
                errors.push(Message {
                    at,
                    text: "includes nested too deep".into(),
                });
                continue;
            }
            for pattern in &words[1..] {
                // keepalived resolves a relative include against the including file's directory.
                let p = Path::new(pattern);
                let full = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    path.parent().unwrap_or(Path::new(".")).join(p)
                };
                let matches = glob(&full);
                if matches.is_empty() {
                    errors.push(Message {
                        at: at.clone(),
                        text: format!("include {pattern}: no such file"),
                    });
                }
                for m in matches {
                    read_lines(&m, depth + 1, out, errors, Some(&at));
                }
            }
            continue;
        }
        if !words.is_empty() {
            out.push((words, at));
        }
    }
}

/// `*` and `?` in the file name part only (enough for `conf.d/*.conf`).
fn glob(p: &Path) -> Vec<PathBuf> {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return if p.exists() {
            vec![p.to_path_buf()]
        } else {
            vec![]
        };
    }
    let dir = p.parent().unwrap_or(Path::new("."));
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| wildcard(&name, &e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn wildcard(pattern: &str, s: &str) -> bool {
    fn go(p: &[char], s: &[char]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(
        &pattern.chars().collect::<Vec<_>>(),
        &s.chars().collect::<Vec<_>>(),
    )
}

/// Lines → statements with blocks. A `{` may end the header line or start the next one.
fn tree(lines: Vec<(Vec<String>, Place)>, errors: &mut Vec<Message>) -> Vec<Stmt> {
    // Flatten to tokens with their places, then descend.
    let toks: Vec<(String, Place, bool)> = lines
        .into_iter()
        .flat_map(|(words, at)| {
            let n = words.len();
            words
                .into_iter()
                .enumerate()
                .map(move |(i, w)| (w, at.clone(), i + 1 == n))
        })
        .collect();
    let mut pos = 0;
    let out = block(&toks, &mut pos, errors, 0);
    if pos < toks.len() {
        errors.push(Message {
            at: toks[pos].1.clone(),
            text: "unmatched }".into(),
        });
    }
    out
}

fn block(
    toks: &[(String, Place, bool)],
    pos: &mut usize,
    errors: &mut Vec<Message>,
    depth: usize,
) -> Vec<Stmt> {
    let mut out = Vec::new();
    while *pos < toks.len() {
        let (w, at, _) = &toks[*pos];
        if w == "}" {
            if depth == 0 {
                return out;
            }
            *pos += 1;
            return out;
        }
        if w == "{" {
            // A bare block: its statements belong to the previous statement.
            *pos += 1;
            let children = block(toks, pos, errors, depth + 1);
            match out.last_mut() {
                Some(Stmt {
                    block: b @ None, ..
                }) => *b = Some(children),
                _ => out.push(Stmt {
                    words: Vec::new(),
                    at: at.clone(),
                    block: Some(children),
                }),
            }
            continue;
        }
        // One statement: words to the end of its line or to a `{` / `}`.
        let mut words = Vec::new();
        let start = at.clone();
        while *pos < toks.len() {
            let (w, _, last) = &toks[*pos];
            if w == "{" || w == "}" {
                break;
            }
            words.push(w.clone());
            *pos += 1;
            if *last {
                break;
            }
        }
        let mut stmt = Stmt {
            words,
            at: start,
            block: None,
        };
        if *pos < toks.len() && toks[*pos].0 == "{" && toks[*pos].1.line == stmt.at.line {
            *pos += 1;
            stmt.block = Some(block(toks, pos, errors, depth + 1));
        }
        out.push(stmt);
    }
    if depth > 0 {
        errors.push(Message {
            at: toks.last().map(|t| t.1.clone()).unwrap_or(Place {
                file: String::new(),
                line: 0,
            }),
            text: "a block is not closed (missing })".into(),
        });
    }
    out
}

/// keepalived seconds (integer or decimal) → a duration text.
fn seconds(text: &str) -> Option<String> {
    let v: f64 = text.parse().ok()?;
    if !(v.is_finite() && v >= 0.0) {
        return None;
    }
    let ms = (v * 1000.0).round() as u64;
    Some(if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    })
}

/// A VirtualIP name from a keepalived instance name (VI_1 → vi-1).
fn dns_name(s: &str) -> String {
    let mut out: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "vip".into()
    } else {
        out.chars().take(63).collect()
    }
}

/// Splits a script command line as a shell would for simple words; `None` when it needs a
/// shell (pipes, redirections, variables, `&&`, `;`, backquotes).
fn shell_words(s: &str) -> Option<Vec<String>> {
    if s.contains(['|', '&', ';', '>', '<', '$', '`', '(', ')', '*', '?']) {
        return None;
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return None;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    (!out.is_empty()).then_some(out)
}

/// A `vrrp_script`'s command as a native check when it is recognisable, with a note.
fn native_check(script: &str) -> Option<(CheckKind, String)> {
    let words: Vec<&str> = script.split_whitespace().collect();
    // `[ ! -f FILE ]`, `test ! -e FILE`, possibly behind `sh -c`: a maintenance file.
    let plain: String = script
        .trim_start_matches("/bin/sh -c")
        .trim_start_matches("/bin/bash -c")
        .trim_start_matches("sh -c")
        .trim_start_matches("bash -c")
        .trim()
        .trim_matches(|c| c == '\'' || c == '"')
        .to_string();
    let pw: Vec<&str> = plain.split_whitespace().collect();
    let file = match pw.as_slice() {
        ["[", "!", "-f" | "-e", f, "]"]
        | ["test", "!", "-f" | "-e", f]
        | ["/usr/bin/test", "!", "-f" | "-e", f] => Some(*f),
        _ => None,
    };
    if let Some(f) = file {
        return Some((
            CheckKind::File(f.to_string()),
            format!(
                "the script tests that {f} does not exist: imported as a native file check (mode Exists)"
            ),
        ));
    }
    // `</dev/tcp/HOST/PORT`.
    if let Some(rest) = plain.split("/dev/tcp/").nth(1) {
        let mut it = rest.trim_end_matches(['\'', '"']).split('/');
        if let (Some(host), Some(port)) = (
            it.next(),
            it.next().and_then(|p| p.trim().parse::<u16>().ok()),
        ) {
            return Some((
                CheckKind::Tcp(host.to_string(), port),
                "the script connects to a TCP port: imported as a native tcp check".into(),
            ));
        }
    }
    // curl ... URL
    if words.first().is_some_and(|w| w.ends_with("curl")) {
        let url = words
            .iter()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))?;
        let insecure = words.iter().any(|w| *w == "-k" || *w == "--insecure");
        let (scheme, rest) = url.split_once("://")?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (h, p.parse().ok()?),
            _ => (hostport, if scheme == "https" { 443 } else { 80 }),
        };
        let host = host.trim_matches(|c| c == '[' || c == ']');
        if host.parse::<std::net::IpAddr>().is_err() && host != "localhost" {
            return None; // a name: checks connect to addresses; keep it a command
        }
        let host = if host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        return Some((
            CheckKind::Http {
                https: scheme == "https",
                host: host.to_string(),
                port,
                path: path.to_string(),
                insecure,
            },
            format!(
                "the script fetches {url} with curl: imported as a native http check (status 200-399 passes{})",
                if scheme == "https" && !insecure {
                    "; set caFile or caBundle, or insecureSkipVerify"
                } else {
                    ""
                }
            ),
        ));
    }
    None
}

#[derive(Debug, Clone)]
enum CheckKind {
    File(String),
    Tcp(String, u16),
    Http {
        https: bool,
        host: String,
        port: u16,
        path: String,
        insecure: bool,
    },
}

/// A parsed `vrrp_script` / `vrrp_track_file`.
#[derive(Debug, Clone)]
struct Script {
    check: HealthCheckSpec,
    at: Place,
}

/// One instance of one file.
#[derive(Debug, Clone)]
struct Instance {
    name: String,
    node: String,
    priority: u8,
    spec: VirtualIpSpec,
    at: Place,
}

/// What an import produced.
#[derive(Debug, Default)]
pub struct Import {
    pub documents: Vec<VirtualIpDocument>,
    pub warnings: Vec<Message>,
    pub notes: Vec<Message>,
    pub errors: Vec<Message>,
}

impl Import {
    /// The VirtualIPs as YAML documents.
    pub fn yaml(&self) -> String {
        /// Leaves out what says nothing: `false` switches and zero weights (the defaults).
        fn prune(v: &mut serde_yaml::Value) {
            match v {
                serde_yaml::Value::Mapping(m) => {
                    m.retain(|k, v| {
                        !(matches!(v, serde_yaml::Value::Bool(false))
                            || (k.as_str() == Some("weight") && v.as_i64() == Some(0)))
                    });
                    m.values_mut().for_each(prune);
                }
                serde_yaml::Value::Sequence(s) => s.iter_mut().for_each(prune),
                _ => {}
            }
        }
        self.documents
            .iter()
            .map(|d| {
                let mut v = serde_yaml::to_value(d).unwrap_or_default();
                prune(&mut v);
                serde_yaml::to_string(&v).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("---\n")
    }
}

fn warn(out: &mut Vec<Message>, at: &Place, text: impl Into<String>) {
    out.push(Message {
        at: at.clone(),
        text: text.into(),
    });
}

fn empty_spec() -> VirtualIpSpec {
    serde_yaml::from_str("addresses: []").expect("an empty spec")
}

/// Imports keepalived.conf files; `nodes` names the files' nodes in order.
pub fn import(files: &[PathBuf], nodes: &[String]) -> Import {
    let mut out = Import::default();
    let mut instances: Vec<Instance> = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let mut lines = Vec::new();
        read_lines(path, 0, &mut lines, &mut out.errors, None);
        let stmts = tree(lines, &mut out.errors);
        let mut node = nodes.get(i).cloned();
        let mut version: Option<u8> = None;
        let mut scripts: BTreeMap<String, Script> = BTreeMap::new();
        // Globals first (keepalived reads the whole file before it starts instances).
        for s in &stmts {
            match s.key() {
                "global_defs" => {
                    for g in s.children() {
                        match g.key() {
                            "router_id" => {
                                if node.is_none() {
                                    node = g.arg(1).map(String::from);
                                    warn(
                                        &mut out.notes,
                                        &g.at,
                                        format!(
                                            "node name {} from router_id: pass --node NAME per file to use your Kubernetes node names",
                                            g.arg(1).unwrap_or_default()
                                        ),
                                    );
                                }
                            }
                            "vrrp_version" => version = g.arg(1).and_then(|v| v.parse().ok()),
                            "script_user" | "enable_script_security" => warn(
                                &mut out.notes,
                                &g.at,
                                format!(
                                    "{}: commands run as --exec-user on each agent (cluster mode: nobody by default)",
                                    g.key()
                                ),
                            ),
                            other => warn(
                                &mut out.warnings,
                                &g.at,
                                format!("global_defs {other} is not carried over"),
                            ),
                        }
                    }
                }
                "vrrp_script" => {
                    if let Some(sc) = script(s, &mut out) {
                        scripts.insert(s.arg(1).unwrap_or_default().to_string(), sc);
                    }
                }
                "vrrp_track_file" => {
                    let name = s.arg(1).unwrap_or_default().to_string();
                    let mut check = base_check(&name);
                    let mut path = None;
                    for c in s.children() {
                        match c.key() {
                            "file" => path = c.arg(1).map(String::from),
                            "weight" => {
                                check.weight = c.arg(1).and_then(|w| w.parse().ok()).unwrap_or(1)
                            }
                            other => warn(
                                &mut out.warnings,
                                &c.at,
                                format!("vrrp_track_file {other} is not carried over"),
                            ),
                        }
                    }
                    match path {
                        Some(p) => {
                            check.file = Some(FileCheckSpec {
                                path: p,
                                mode: FileMode::Value,
                            });
                            scripts.insert(
                                name,
                                Script {
                                    check,
                                    at: s.at.clone(),
                                },
                            );
                        }
                        None => warn(
                            &mut out.errors,
                            &s.at,
                            format!("vrrp_track_file {name} has no file"),
                        ),
                    }
                }
                _ => {}
            }
        }
        let node = node.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| dns_name(&s.to_string_lossy()))
                .unwrap_or_else(|| format!("node{}", i + 1))
        });
        let tracked: Vec<&str> = stmts
            .iter()
            .filter(|s| s.key() == "vrrp_instance")
            .flat_map(|s| s.children())
            .filter(|c| matches!(c.key(), "track_script" | "track_file"))
            .flat_map(|c| c.children())
            .map(|t| t.key())
            .collect();
        for (name, sc) in &scripts {
            if !tracked.contains(&name.as_str()) {
                warn(
                    &mut out.notes,
                    &sc.at,
                    format!(
                        "{name} is defined but no instance tracks it: not imported (keepalived does not run it either)"
                    ),
                );
            }
        }
        for s in &stmts {
            match s.key() {
                "global_defs" | "vrrp_script" | "vrrp_track_file" => {}
                "vrrp_instance" => {
                    if let Some(inst) = instance(s, &node, version, &scripts, &mut out) {
                        instances.push(inst);
                    }
                }
                "virtual_server" | "virtual_server_group" => warn(
                    &mut out.warnings,
                    &s.at,
                    format!(
                        "{} (LVS) is not carried over: kube-vrrp holds addresses, it does not load-balance",
                        s.key()
                    ),
                ),
                "vrrp_sync_group" => warn(
                    &mut out.warnings,
                    &s.at,
                    "vrrp_sync_group is not carried over: each VirtualIP fails over on its own (put the addresses in one VirtualIP to move them together)",
                ),
                other => warn(
                    &mut out.warnings,
                    &s.at,
                    format!("{other} is not carried over"),
                ),
            }
        }
    }
    merge(instances, &mut out);
    out
}

fn base_check(name: &str) -> HealthCheckSpec {
    HealthCheckSpec {
        name: dns_name(name),
        interval: None,
        timeout: None,
        fall: None,
        rise: None,
        weight: 0,
        initial_state: None,
        http: None,
        tcp: None,
        exec: None,
        file: None,
    }
}

fn script(s: &Stmt, out: &mut Import) -> Option<Script> {
    let name = s.arg(1).unwrap_or_default();
    let mut check = base_check(name);
    // keepalived's default script weight is 0 since 2.0 (FAULT while failing).
    let mut command = None;
    for c in s.children() {
        let n = |c: &Stmt| c.arg(1).and_then(|v| v.parse::<f64>().ok());
        match c.key() {
            "script" => command = Some(c.words[1..].join(" ")),
            "interval" => check.interval = c.arg(1).and_then(seconds),
            "timeout" => check.timeout = c.arg(1).and_then(seconds),
            "weight" => {
                check.weight = c.arg(1).and_then(|w| w.parse().ok()).unwrap_or(0);
                if c.arg(2) == Some("reverse") {
                    warn(
                        &mut out.warnings,
                        &c.at,
                        "weight ... reverse is not carried over",
                    );
                }
            }
            "fall" => check.fall = n(c).map(|v| v as u32),
            "rise" => check.rise = n(c).map(|v| v as u32),
            "init_fail" => check.initial_state = Some(InitialState::Failing),
            "user" => warn(
                &mut out.notes,
                &c.at,
                "user: commands run as the agent's --exec-user",
            ),
            other => warn(
                &mut out.warnings,
                &c.at,
                format!("vrrp_script {other} is not carried over"),
            ),
        }
    }
    let Some(command) = command else {
        warn(
            &mut out.errors,
            &s.at,
            format!("vrrp_script {name} has no script"),
        );
        return None;
    };
    match native_check(&command) {
        Some((kind, note)) => {
            warn(&mut out.notes, &s.at, format!("vrrp_script {name}: {note}"));
            match kind {
                CheckKind::File(p) => {
                    check.file = Some(FileCheckSpec {
                        path: p,
                        mode: FileMode::Exists,
                    })
                }
                CheckKind::Tcp(h, port) => {
                    check.tcp = Some(TcpCheckSpec {
                        host: (h != "127.0.0.1").then_some(h),
                        port,
                    })
                }
                CheckKind::Http {
                    https,
                    host,
                    port,
                    path,
                    insecure,
                } => {
                    check.http = Some(HttpCheckSpec {
                        scheme: https.then_some(Scheme::Https),
                        host: (host != "127.0.0.1").then_some(host),
                        port,
                        path: (path != "/").then_some(path),
                        host_header: None,
                        expected_status: Vec::new(),
                        ca_file: None,
                        ca_secret_ref: None,
                        ca_bundle: None,
                        insecure_skip_verify: insecure,
                    })
                }
            }
        }
        None => {
            let argv = match shell_words(&command) {
                Some(w) => w,
                None => {
                    warn(
                        &mut out.notes,
                        &s.at,
                        format!(
                            "vrrp_script {name}: the script needs a shell: imported as /bin/sh -c"
                        ),
                    );
                    vec!["/bin/sh".into(), "-c".into(), command.clone()]
                }
            };
            let mut argv = argv;
            argv[0] = absolute_program(&argv[0], &s.at, out);
            warn(
                &mut out.notes,
                &s.at,
                format!(
                    "vrrp_script {name}: an exec check of {}: in a cluster it runs only on agents started with --allow-exec {}",
                    argv[0], argv[0]
                ),
            );
            check.exec = Some(ExecCheckSpec { command: argv });
        }
    }
    Some(Script {
        check,
        at: s.at.clone(),
    })
}

/// A program named without a path, found where keepalived's PATH would find it.
fn absolute_program(program: &str, at: &Place, out: &mut Import) -> String {
    if program.starts_with('/') {
        return program.to_string();
    }
    for dir in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let p = format!("{dir}/{program}");
        if Path::new(&p).exists() {
            warn(
                &mut out.notes,
                at,
                format!("{program} is {p} here: check the path on your nodes"),
            );
            return p;
        }
    }
    let p = format!("/usr/bin/{program}");
    warn(
        &mut out.warnings,
        at,
        format!("{program} is not installed here: {p} assumed, check the path"),
    );
    p
}

fn addresses(block: &Stmt, interface: Option<&str>, out: &mut Import) -> Vec<String> {
    let mut addrs = Vec::new();
    for a in block.children() {
        let text = a.key();
        match text.parse::<VirtualAddress>() {
            Ok(v) => {
                addrs.push(if text.contains('/') {
                    text.to_string()
                } else {
                    v.to_string()
                });
                if !text.contains('/') {
                    warn(
                        &mut out.notes,
                        &a.at,
                        format!(
                            "{text} has no prefix: /{} as keepalived assumes",
                            v.prefix_len
                        ),
                    );
                }
            }
            Err(e) => {
                warn(
                    &mut out.errors,
                    &a.at,
                    format!("{text}: not an address: {e}"),
                );
                continue;
            }
        }
        let mut i = 1;
        while let Some(opt) = a.arg(i) {
            match opt {
                "dev" => {
                    let dev = a.arg(i + 1).unwrap_or_default();
                    if Some(dev) != interface {
                        warn(
                            &mut out.warnings,
                            &a.at,
                            format!(
                                "{text} dev {dev}: every address of a VirtualIP is on its interface ({})",
                                interface.unwrap_or("?")
                            ),
                        );
                    }
                    i += 2;
                }
                "label" | "scope" | "brd" | "broadcast" => {
                    warn(
                        &mut out.warnings,
                        &a.at,
                        format!(
                            "{text} {opt} {} is not carried over",
                            a.arg(i + 1).unwrap_or_default()
                        ),
                    );
                    i += 2;
                }
                other => {
                    warn(
                        &mut out.warnings,
                        &a.at,
                        format!("{text} {other} is not carried over"),
                    );
                    i += 1;
                }
            }
        }
    }
    addrs
}

fn instance(
    s: &Stmt,
    node: &str,
    version: Option<u8>,
    scripts: &BTreeMap<String, Script>,
    out: &mut Import,
) -> Option<Instance> {
    let name = s.arg(1).unwrap_or("VI").to_string();
    let mut spec = empty_spec();
    spec.version = version.unwrap_or(2);
    let mut priority: u8 = 100;
    let mut notify = NotifySpec::default();
    let mut garp = GarpSpec::default();
    let mut vrid = None;
    // The interface first: address options refer to it.
    spec.interface = s
        .children()
        .iter()
        .find(|c| c.key() == "interface")
        .and_then(|c| c.arg(1))
        .map(String::from);
    let argv = |c: &Stmt, out: &mut Import| -> Vec<String> {
        let cmd = c.words[1..].join(" ");
        let mut v = shell_words(&cmd).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), cmd]);
        v[0] = absolute_program(&v[0], &c.at, out);
        v
    };
    for c in s.children() {
        match c.key() {
            "interface" => {}
            "state" => warn(
                &mut out.notes,
                &c.at,
                format!(
                    "state {}: kube-vrrp starts every node as backup; the priority decides",
                    c.arg(1).unwrap_or_default()
                ),
            ),
            "virtual_router_id" => match c
                .arg(1)
                .and_then(|v| v.parse::<u8>().ok())
                .filter(|v| *v > 0)
            {
                Some(v) => vrid = Some(v),
                None => warn(
                    &mut out.errors,
                    &c.at,
                    format!(
                        "virtual_router_id {}: use 1 to 255",
                        c.arg(1).unwrap_or_default()
                    ),
                ),
            },
            "priority" => match c
                .arg(1)
                .and_then(|v| v.parse::<u8>().ok())
                .filter(|v| *v > 0)
            {
                Some(p) => priority = p,
                None => warn(
                    &mut out.errors,
                    &c.at,
                    format!("priority {}: use 1 to 255", c.arg(1).unwrap_or_default()),
                ),
            },
            "advert_int" => spec.advert_interval = c.arg(1).and_then(seconds),
            "nopreempt" => spec.preempt = false,
            "preempt" => spec.preempt = true,
            "preempt_delay" => spec.preempt_delay = c.arg(1).and_then(seconds),
            "use_vmac" => spec.virtual_mac = true,
            "accept" => spec.accept_mode = true,
            "no_accept" => spec.accept_mode = false,
            "authentication" => {
                let mut pass = None;
                for a in c.children() {
                    match (a.key(), a.arg(1)) {
                        ("auth_type", Some("PASS")) => {}
                        ("auth_type", Some(t)) => warn(
                            &mut out.warnings,
                            &a.at,
                            format!("auth_type {t} is not supported (PASS only)"),
                        ),
                        ("auth_pass", p) => pass = p.map(|p| p.chars().take(8).collect::<String>()),
                        (k, _) => warn(
                            &mut out.warnings,
                            &a.at,
                            format!("authentication {k} is not carried over"),
                        ),
                    }
                }
                if pass.is_some() {
                    warn(
                        &mut out.notes,
                        &c.at,
                        "auth_pass: in a cluster, move the password to a Secret (passwordSecretRef)",
                    );
                    spec.authentication = Some(AuthenticationSpec {
                        password: pass,
                        password_secret_ref: None,
                    });
                }
            }
            "virtual_ipaddress" => {
                let a = addresses(c, spec.interface.as_deref(), out);
                spec.addresses.extend(a);
            }
            "virtual_ipaddress_excluded" => {
                let a = addresses(c, spec.interface.as_deref(), out);
                warn(
                    &mut out.warnings,
                    &c.at,
                    "virtual_ipaddress_excluded: these addresses are listed in the advertisements too",
                );
                spec.addresses.extend(a);
            }
            "unicast_peer" => {
                for p in c.children() {
                    match p.key().parse::<std::net::IpAddr>() {
                        Ok(ip) => spec.unicast_peers.push(ip.to_string()),
                        Err(_) => warn(
                            &mut out.errors,
                            &p.at,
                            format!("{}: not an address", p.key()),
                        ),
                    }
                }
            }
            "unicast_src_ip" => warn(
                &mut out.notes,
                &c.at,
                "unicast_src_ip: the agent sends from the interface's primary address",
            ),
            "track_interface" => {
                for t in c.children() {
                    spec.track_interfaces.push(TrackInterfaceSpec {
                        name: t.key().to_string(),
                        weight: if t.arg(1) == Some("weight") {
                            t.arg(2).and_then(|w| w.parse().ok()).unwrap_or(0)
                        } else {
                            0
                        },
                    });
                }
            }
            "track_script" | "track_file" => {
                for t in c.children() {
                    match scripts.get(t.key()) {
                        Some(sc) => {
                            let mut check = sc.check.clone();
                            if t.arg(1) == Some("weight") {
                                check.weight = t
                                    .arg(2)
                                    .and_then(|w| w.parse().ok())
                                    .unwrap_or(check.weight);
                            }
                            if !spec.health_checks.iter().any(|h| h.name == check.name) {
                                spec.health_checks.push(check);
                            }
                        }
                        None => warn(
                            &mut out.errors,
                            &t.at,
                            format!(
                                "{} names {}, which is not defined (vrrp_script / vrrp_track_file)",
                                c.key(),
                                t.key()
                            ),
                        ),
                    }
                }
            }
            "notify_master" => notify.master = argv(c, out),
            "notify_backup" => notify.backup = argv(c, out),
            "notify_fault" => notify.fault = argv(c, out),
            "notify_stop" => notify.stop = argv(c, out),
            "notify" => notify.any = argv(c, out),
            "garp_master_delay" => garp.master_delay = c.arg(1).and_then(seconds),
            "garp_master_repeat" => garp.master_repeat = c.arg(1).and_then(|v| v.parse().ok()),
            "garp_master_refresh" => garp.master_refresh = c.arg(1).and_then(seconds),
            "version" | "vrrp_version" => {
                spec.version = c
                    .arg(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(spec.version)
            }
            other => warn(
                &mut out.warnings,
                &c.at,
                format!("vrrp_instance {other} is not carried over"),
            ),
        }
    }
    let Some(vrid) = vrid else {
        warn(
            &mut out.errors,
            &s.at,
            format!("vrrp_instance {name} has no virtual_router_id"),
        );
        return None;
    };
    if spec.addresses.is_empty() {
        warn(
            &mut out.errors,
            &s.at,
            format!("vrrp_instance {name} has no virtual_ipaddress"),
        );
        return None;
    }
    if spec.addresses.iter().any(|a| a.contains(':')) && spec.version == 2 {
        warn(
            &mut out.notes,
            &s.at,
            "IPv6 addresses need VRRPv3: version 3",
        );
        spec.version = 3;
    }
    if notify != NotifySpec::default() {
        spec.notify = Some(notify);
    }
    if garp != GarpSpec::default() {
        spec.garp = Some(garp);
    }
    spec.virtual_router_id = Some(vrid);
    Some(Instance {
        name,
        node: node.to_string(),
        priority,
        spec,
        at: s.at.clone(),
    })
}

/// Instances with one VRID and family across files are one VirtualIP with per-node priorities.
fn merge(instances: Vec<Instance>, out: &mut Import) {
    let family = |s: &VirtualIpSpec| s.addresses.first().is_some_and(|a| a.contains(':'));
    let mut groups: Vec<(Instance, Vec<(String, u8)>)> = Vec::new();
    for inst in instances {
        match groups.iter_mut().find(|(g, _)| {
            g.spec.virtual_router_id == inst.spec.virtual_router_id
                && family(&g.spec) == family(&inst.spec)
                && g.spec.interface == inst.spec.interface
        }) {
            Some((first, members)) => {
                if members.iter().any(|(n, _)| *n == inst.node) {
                    warn(
                        &mut out.errors,
                        &inst.at,
                        format!(
                            "virtual_router_id {} is used twice on node {}",
                            inst.spec.virtual_router_id.unwrap_or_default(),
                            inst.node
                        ),
                    );
                    continue;
                }
                let mut a = first.spec.addresses.clone();
                let mut b = inst.spec.addresses.clone();
                a.sort();
                b.sort();
                if a != b {
                    warn(
                        &mut out.warnings,
                        &inst.at,
                        format!(
                            "{} on node {} lists other addresses than on {}: the first file's are kept",
                            inst.name, inst.node, first.node
                        ),
                    );
                }
                members.push((inst.node.clone(), inst.priority));
            }
            None => {
                let node = inst.node.clone();
                let p = inst.priority;
                groups.push((inst, vec![(node, p)]));
            }
        }
    }
    let mut names: Vec<String> = Vec::new();
    for (first, members) in groups {
        let mut name = dns_name(&first.name);
        if names.contains(&name) {
            name = format!(
                "{name}-{}",
                first.spec.virtual_router_id.unwrap_or_default()
            );
        }
        names.push(name.clone());
        let mut spec = first.spec;
        spec.priorities = members
            .into_iter()
            .map(|(node, priority)| NodePriority { node, priority })
            .collect();
        out.documents.push(VirtualIpDocument {
            api_version: crate::api::API_VERSION.into(),
            kind: crate::api::KIND.into(),
            metadata: ObjectMeta { name },
            spec,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_follow_keepalived() {
        assert_eq!(
            tokens("vrrp_instance VI_1 {  # comment"),
            ["vrrp_instance", "VI_1", "{"]
        );
        assert_eq!(
            tokens("  script \"killall -0 nginx\" ! note"),
            ["script", "killall -0 nginx"]
        );
        assert_eq!(
            tokens("virtual_ipaddress { 192.0.2.1/24 }"),
            ["virtual_ipaddress", "{", "192.0.2.1/24", "}"]
        );
        assert_eq!(tokens("auth_pass se#cret"), ["auth_pass", "se#cret"]);
    }

    #[test]
    fn scripts_people_write_become_native_checks() {
        let k = |s| native_check(s).map(|(k, _)| format!("{k:?}"));
        assert_eq!(
            k("[ ! -f /etc/keepalived/maint ]").unwrap(),
            "File(\"/etc/keepalived/maint\")"
        );
        assert_eq!(
            k("/bin/sh -c '[ ! -e /tmp/down ]'").unwrap(),
            "File(\"/tmp/down\")"
        );
        assert!(
            k("/bin/bash -c '</dev/tcp/127.0.0.1/80'")
                .unwrap()
                .starts_with("Tcp(\"127.0.0.1\", 80")
        );
        let h = k("/usr/bin/curl -sf -k https://127.0.0.1:8443/healthz").unwrap();
        assert!(
            h.contains("https: true")
                && h.contains("port: 8443")
                && h.contains("/healthz")
                && h.contains("insecure: true"),
            "{h}"
        );
        assert!(
            k("/usr/bin/curl -s http://example.com/").is_none(),
            "a name stays a command"
        );
        assert!(k("killall -0 nginx").is_none());
        assert_eq!(
            shell_words("killall -0 nginx").unwrap(),
            ["killall", "-0", "nginx"]
        );
        assert!(shell_words("pidof nginx || exit 1").is_none());
    }
}
