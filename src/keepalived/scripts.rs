//! `vrrp_script` and `vrrp_track_file` → health checks. The commands people write are
//! recognised as native checks (`[ ! -f FILE ]` a file check, `</dev/tcp/HOST/PORT` a tcp
//! check, `curl URL` an http check); any other command is an exec check. Command lines (of
//! scripts and notify alike) become argv: split as a shell would when they need none, else
//! `/bin/sh -c`, the program made absolute where keepalived's PATH would find it.

use std::path::Path;

use crate::api::{
    ExecCheckSpec, FileCheckSpec, FileMode, HealthCheckSpec, HttpCheckSpec, InitialState, Scheme,
    TcpCheckSpec,
};

use super::parser::Stmt;
use super::report::{Place, Report};
use super::values::{dns_name, seconds};

/// Where keepalived's PATH looks for a program named without a path, in order.
const PATH: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// A parsed `vrrp_script` / `vrrp_track_file`: its health check and where it is defined.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    pub(crate) check: HealthCheckSpec,
    pub(crate) at: Place,
}

/// A native check recognised in a script's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckKind {
    /// Passes while the file does not exist.
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

/// A health check with nothing but its name.
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

/// A `vrrp_script` block; `None` (an error) without a `script`.
pub(crate) fn vrrp_script(s: &Stmt, report: &mut Report) -> Option<Script> {
    let name = s.arg(1).unwrap_or_default();
    let mut check = base_check(name);
    let Some(command) = script_options(s, &mut check, report) else {
        report.error(&s.at, format!("vrrp_script {name} has no script"));
        return None;
    };
    match native_check(&command) {
        Some((kind, note)) => {
            report.note(&s.at, format!("vrrp_script {name}: {note}"));
            set_native(&mut check, kind);
        }
        None => check.exec = Some(exec_check(name, &command, &s.at, report)),
    }
    Some(Script {
        check,
        at: s.at.clone(),
    })
}

/// A `vrrp_script`'s options into `check`; its `script` command line when it has one.
fn script_options(s: &Stmt, check: &mut HealthCheckSpec, report: &mut Report) -> Option<String> {
    // keepalived's default script weight is 0 since 2.0 (FAULT while failing).
    let mut command = None;
    for c in s.children() {
        let n = |c: &Stmt| c.arg(1).and_then(|v| v.parse::<f64>().ok());
        match c.key() {
            "script" => command = Some(c.rest()),
            "interval" => check.interval = c.arg(1).and_then(seconds).map(Into::into),
            "timeout" => check.timeout = c.arg(1).and_then(seconds).map(Into::into),
            "weight" => {
                check.weight = c.arg(1).and_then(|w| w.parse().ok()).unwrap_or(0);
                if c.arg(2) == Some("reverse") {
                    report.warning(&c.at, "weight ... reverse is not carried over");
                }
            }
            "fall" => check.fall = n(c).map(|v| v as u32),
            "rise" => check.rise = n(c).map(|v| v as u32),
            "init_fail" => check.initial_state = Some(InitialState::Failing),
            "user" => report.note(&c.at, "user: commands run as the agent's --exec-user"),
            other => report.warning(&c.at, format!("vrrp_script {other} is not carried over")),
        }
    }
    command
}

/// A recognised command as the native check it is.
fn set_native(check: &mut HealthCheckSpec, kind: CheckKind) {
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

/// A script that is no native check: an exec check, with notes on what it needs.
fn exec_check(name: &str, command: &str, at: &Place, report: &mut Report) -> ExecCheckSpec {
    let argv = command_argv(command, at, report);
    if argv.via_shell {
        report.note(
            at,
            format!("vrrp_script {name}: the script needs a shell: imported as /bin/sh -c"),
        );
    }
    let program = &argv.words[0];
    report.note(
        at,
        format!(
            "vrrp_script {name}: an exec check of {program}: in a cluster it runs only on agents started with --allow-exec {program}"
        ),
    );
    if let Some(p) = process_probe(command) {
        report.warning(
            at,
            format!(
                "vrrp_script {name}: {p} looks at the node's processes: in a cluster the agent's pod sees them only with the chart's agent.hostPID=true, and the image has no {p} (mount it and list it in agent.allowExec); a check of the service itself (http, tcp) needs neither"
            ),
        );
    }
    ExecCheckSpec {
        command: argv.words,
    }
}

/// The process-table program a script runs (`killall -0 nginx`, `pidof haproxy`, `pgrep`).
fn process_probe(command: &str) -> Option<&'static str> {
    let words = command.split(|c: char| c.is_whitespace() || "|;&()".contains(c));
    words
        .map(|w| w.rsplit('/').next().unwrap_or(w))
        .find_map(|w| ["killall", "pidof", "pgrep"].into_iter().find(|p| *p == w))
}

/// A `vrrp_track_file` block; `None` (an error) without a `file`.
pub(crate) fn vrrp_track_file(s: &Stmt, report: &mut Report) -> Option<Script> {
    let name = s.arg(1).unwrap_or_default();
    let mut check = base_check(name);
    let mut path = None;
    for c in s.children() {
        match c.key() {
            "file" => path = c.arg(1).map(String::from),
            "weight" => check.weight = c.arg(1).and_then(|w| w.parse().ok()).unwrap_or(1),
            other => report.warning(
                &c.at,
                format!("vrrp_track_file {other} is not carried over"),
            ),
        }
    }
    let Some(path) = path else {
        report.error(&s.at, format!("vrrp_track_file {name} has no file"));
        return None;
    };
    check.file = Some(FileCheckSpec {
        path,
        mode: FileMode::Value,
    });
    Some(Script {
        check,
        at: s.at.clone(),
    })
}

/// A `vrrp_script`'s command as a native check when it is recognisable, with a note.
pub(crate) fn native_check(script: &str) -> Option<(CheckKind, String)> {
    let plain = without_shell(script);
    missing_file_test(&plain)
        .or_else(|| dev_tcp(&plain))
        .or_else(|| curl(script))
}

/// The command inside `sh -c '...'` (or `bash -c`, by path or not); the script when none.
fn without_shell(script: &str) -> String {
    script
        .trim_start_matches("/bin/sh -c")
        .trim_start_matches("/bin/bash -c")
        .trim_start_matches("sh -c")
        .trim_start_matches("bash -c")
        .trim()
        .trim_matches(|c| c == '\'' || c == '"')
        .to_string()
}

/// `[ ! -f FILE ]`, `test ! -e FILE`: a maintenance file.
fn missing_file_test(plain: &str) -> Option<(CheckKind, String)> {
    let words: Vec<&str> = plain.split_whitespace().collect();
    let f = match words.as_slice() {
        ["[", "!", "-f" | "-e", f, "]"]
        | ["test", "!", "-f" | "-e", f]
        | ["/usr/bin/test", "!", "-f" | "-e", f] => *f,
        _ => return None,
    };
    Some((
        CheckKind::File(f.to_string()),
        format!(
            "the script tests that {f} does not exist: imported as a native file check (mode Exists)"
        ),
    ))
}

/// `</dev/tcp/HOST/PORT`: a TCP connect.
fn dev_tcp(plain: &str) -> Option<(CheckKind, String)> {
    let rest = plain.split("/dev/tcp/").nth(1)?;
    let mut it = rest.trim_end_matches(['\'', '"']).split('/');
    let host = it.next()?;
    let port = it.next().and_then(|p| p.trim().parse::<u16>().ok())?;
    Some((
        CheckKind::Tcp(host.to_string(), port),
        "the script connects to a TCP port: imported as a native tcp check".into(),
    ))
}

/// `curl ... URL` to an address (or localhost): an HTTP GET. A host name stays a command:
/// checks connect to addresses.
fn curl(script: &str) -> Option<(CheckKind, String)> {
    let words: Vec<&str> = script.split_whitespace().collect();
    if !words.first().is_some_and(|w| w.ends_with("curl")) {
        return None;
    }
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
        return None;
    }
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    let https = scheme == "https";
    Some((
        CheckKind::Http {
            https,
            host: host.to_string(),
            port,
            path: path.to_string(),
            insecure,
        },
        format!(
            "the script fetches {url} with curl: imported as a native http check (status 200-399 passes{})",
            if https && !insecure {
                "; set caFile or caBundle, or insecureSkipVerify"
            } else {
                ""
            }
        ),
    ))
}

/// Splits a script command line as a shell would for simple words; `None` when it needs a
/// shell (pipes, redirections, variables, `&&`, `;`, backquotes).
pub(crate) fn shell_words(s: &str) -> Option<Vec<String>> {
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

/// A command line as the argv a check or notify runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Argv {
    /// The program (an absolute path) and its arguments.
    pub(crate) words: Vec<String>,
    /// The command line needed a shell: `/bin/sh -c LINE`.
    pub(crate) via_shell: bool,
}

/// A command line → argv: its words when it needs no shell, else `/bin/sh -c`; the program
/// made absolute (with a note where it was found, or a warning that it was not).
pub(crate) fn command_argv(command: &str, at: &Place, report: &mut Report) -> Argv {
    let (mut words, via_shell) = match shell_words(command) {
        Some(w) => (w, false),
        None => (
            vec!["/bin/sh".into(), "-c".into(), command.to_string()],
            true,
        ),
    };
    words[0] = absolute_program(&words[0], at, report);
    Argv { words, via_shell }
}

/// Where a program named in a command is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Located {
    /// Named by its path.
    Absolute,
    /// Found in keepalived's PATH here.
    Found(String),
    /// Not found here: in /usr/bin, hopefully.
    Assumed(String),
}

/// Where keepalived's PATH would find `program`, given which files exist.
fn locate(program: &str, exists: impl Fn(&str) -> bool) -> Located {
    if program.starts_with('/') {
        return Located::Absolute;
    }
    PATH.iter()
        .map(|dir| format!("{dir}/{program}"))
        .find(|p| exists(p))
        .map(Located::Found)
        .unwrap_or_else(|| Located::Assumed(format!("/usr/bin/{program}")))
}

/// A program named without a path, found where keepalived's PATH would find it.
fn absolute_program(program: &str, at: &Place, report: &mut Report) -> String {
    match locate(program, |p| Path::new(p).exists()) {
        Located::Absolute => program.to_string(),
        Located::Found(p) => {
            report.note(
                at,
                format!("{program} is {p} here: check the path on your nodes"),
            );
            p
        }
        Located::Assumed(p) => {
            report.warning(
                at,
                format!("{program} is not installed here: {p} assumed, check the path"),
            );
            p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::parser::tests::parse_text;
    use crate::keepalived::report::tests::{at, lines};

    fn kind(script: &str) -> Option<CheckKind> {
        native_check(script).map(|(k, _)| k)
    }

    fn http(https: bool, host: &str, port: u16, path: &str, insecure: bool) -> CheckKind {
        CheckKind::Http {
            https,
            host: host.into(),
            port,
            path: path.into(),
            insecure,
        }
    }

    #[test]
    fn maintenance_file_tests_become_file_checks() {
        let file = |f: &str| Some(CheckKind::File(f.into()));
        assert_eq!(
            kind("[ ! -f /etc/keepalived/maint ]"),
            file("/etc/keepalived/maint")
        );
        assert_eq!(kind("/bin/sh -c '[ ! -e /tmp/down ]'"), file("/tmp/down"));
        assert_eq!(kind("test ! -f /x"), file("/x"));
        assert_eq!(kind("bash -c \"/usr/bin/test ! -e /y\""), file("/y"));
        assert_eq!(kind("[ -f /x ]"), None, "the file must be missing");
        assert_eq!(
            native_check("[ ! -f /m ]").unwrap().1,
            "the script tests that /m does not exist: imported as a native file check (mode Exists)"
        );
    }

    #[test]
    fn dev_tcp_becomes_a_tcp_check() {
        assert_eq!(
            kind("/bin/bash -c '</dev/tcp/127.0.0.1/80'"),
            Some(CheckKind::Tcp("127.0.0.1".into(), 80))
        );
        assert_eq!(
            kind("bash -c \"cat < /dev/tcp/10.0.0.1/6443\""),
            Some(CheckKind::Tcp("10.0.0.1".into(), 6443))
        );
        assert_eq!(kind("bash -c '</dev/tcp/127.0.0.1/http'"), None);
        assert_eq!(
            native_check("bash -c '</dev/tcp/h/1'").unwrap().1,
            "the script connects to a TCP port: imported as a native tcp check"
        );
    }

    #[test]
    fn curl_to_an_address_becomes_an_http_check() {
        assert_eq!(
            kind("/usr/bin/curl -sf -k https://127.0.0.1:8443/healthz"),
            Some(http(true, "127.0.0.1", 8443, "/healthz", true))
        );
        assert_eq!(
            kind("curl -s http://10.0.0.5"),
            Some(http(false, "10.0.0.5", 80, "/", false))
        );
        assert_eq!(
            kind("curl --insecure https://localhost/x"),
            Some(http(true, "127.0.0.1", 443, "/x", true))
        );
        assert_eq!(
            kind("curl https://[2001:db8::1]:8443/ready"),
            Some(http(true, "2001:db8::1", 8443, "/ready", false))
        );
    }

    #[test]
    fn curl_notes_say_what_https_needs() {
        assert_eq!(
            native_check("curl -sf http://127.0.0.1/").unwrap().1,
            "the script fetches http://127.0.0.1/ with curl: imported as a native http check (status 200-399 passes)"
        );
        assert_eq!(
            native_check("curl https://127.0.0.1/").unwrap().1,
            "the script fetches https://127.0.0.1/ with curl: imported as a native http check (status 200-399 passes; set caFile or caBundle, or insecureSkipVerify)"
        );
        assert!(
            native_check("curl -k https://127.0.0.1/")
                .unwrap()
                .1
                .ends_with("(status 200-399 passes)")
        );
    }

    #[test]
    fn commands_that_are_no_native_check_stay_commands() {
        assert_eq!(kind("/usr/bin/curl -s http://example.com/"), None, "a name");
        assert_eq!(kind("curl -s"), None, "no URL");
        assert_eq!(kind("curl http://127.0.0.1:port/"), None, "no port number");
        assert_eq!(kind("killall -0 nginx"), None);
        assert_eq!(kind("pidof nginx"), None);
        assert_eq!(kind("/usr/local/bin/check_haproxy.sh"), None);
    }

    #[test]
    fn shell_words_split_simple_commands_only() {
        assert_eq!(
            shell_words("killall -0 nginx").unwrap(),
            ["killall", "-0", "nginx"]
        );
        assert_eq!(
            shell_words("pgrep -f 'my daemon'").unwrap(),
            ["pgrep", "-f", "my daemon"]
        );
        assert_eq!(shell_words("a \"b c\"d").unwrap(), ["a", "b cd"]);
        assert!(shell_words("pidof nginx || exit 1").is_none());
        assert!(shell_words("echo x > /tmp/y").is_none());
        assert!(shell_words("echo $HOME").is_none());
        assert!(shell_words("ls *.conf").is_none());
        assert!(shell_words("echo 'unclosed").is_none());
        assert!(shell_words("   ").is_none());
    }

    #[test]
    fn programs_are_found_in_keepalived_path_order() {
        let here = |found: &'static [&'static str]| move |p: &str| found.contains(&p);
        assert_eq!(locate("/opt/x", here(&[])), Located::Absolute);
        assert_eq!(
            locate("killall", here(&["/usr/bin/killall", "/bin/killall"])),
            Located::Found("/usr/bin/killall".into())
        );
        assert_eq!(
            locate("ip", here(&["/sbin/ip", "/usr/local/sbin/ip"])),
            Located::Found("/usr/local/sbin/ip".into())
        );
        assert_eq!(
            locate("nothing", here(&[])),
            Located::Assumed("/usr/bin/nothing".into())
        );
    }

    #[test]
    fn command_argv_uses_a_shell_only_when_needed() {
        let mut report = Report::default();
        let a = command_argv("/usr/bin/pidof nginx || exit 1", &at("k", 1), &mut report);
        assert!(a.via_shell);
        assert_eq!(a.words, ["/bin/sh", "-c", "/usr/bin/pidof nginx || exit 1"]);
        let a = command_argv("/usr/bin/pidof 'nginx'", &at("k", 2), &mut report);
        assert!(!a.via_shell);
        assert_eq!(a.words, ["/usr/bin/pidof", "nginx"]);
        assert!(report.notes.is_empty() && report.warnings.is_empty());
    }

    /// The only script in `text`.
    fn script_of(text: &str) -> (Option<Script>, Report) {
        let (stmts, mut report) = parse_text("k.conf", text);
        let s = vrrp_script(&stmts[0], &mut report);
        (s, report)
    }

    #[test]
    fn a_vrrp_script_with_its_options() {
        let (s, r) = script_of(
            "vrrp_script chk_Web {\n script \"[ ! -f /maint ]\"\n interval 2\n timeout 0.5\n fall 3\n rise 2.0\n weight -20\n init_fail\n}\n",
        );
        let c = s.unwrap().check;
        assert_eq!(c.name, "chk-web");
        assert_eq!(
            (c.interval.as_deref(), c.timeout.as_deref(), c.fall, c.rise),
            (Some("2s"), Some("500ms"), Some(3), Some(2))
        );
        assert_eq!(c.weight, -20);
        assert_eq!(c.initial_state, Some(InitialState::Failing));
        let f = c.file.unwrap();
        assert_eq!((f.path.as_str(), f.mode), ("/maint", FileMode::Exists));
        assert!(r.errors.is_empty() && r.warnings.is_empty());
        assert_eq!(
            lines(&r.notes),
            [
                "k.conf:1: vrrp_script chk_Web: the script tests that /maint does not exist: imported as a native file check (mode Exists)"
            ]
        );
    }

    #[test]
    fn a_native_tcp_or_http_check_leaves_out_the_defaults() {
        let (s, _) =
            script_of("vrrp_script t {\n script \"bash -c '</dev/tcp/127.0.0.1/22'\"\n}\n");
        let tcp = s.unwrap().check.tcp.unwrap();
        assert_eq!((tcp.host, tcp.port), (None, 22));
        let (s, _) = script_of("vrrp_script h {\n script \"curl -k https://10.0.0.1:8443/\"\n}\n");
        let h = s.unwrap().check.http.unwrap();
        assert_eq!(h.scheme, Some(Scheme::Https));
        assert_eq!(
            (h.host.as_deref(), h.port, h.path),
            (Some("10.0.0.1"), 8443, None)
        );
        assert!(h.insecure_skip_verify);
    }

    #[test]
    fn a_script_that_needs_a_shell_is_an_exec_check_of_sh() {
        let (s, r) = script_of("vrrp_script chk {\n script \"pidof haproxy || exit 1\"\n}\n");
        assert_eq!(
            s.unwrap().check.exec.unwrap().command,
            ["/bin/sh", "-c", "pidof haproxy || exit 1"]
        );
        assert_eq!(
            lines(&r.notes),
            [
                "k.conf:1: vrrp_script chk: the script needs a shell: imported as /bin/sh -c",
                "k.conf:1: vrrp_script chk: an exec check of /bin/sh: in a cluster it runs only on agents started with --allow-exec /bin/sh",
            ]
        );
        assert_eq!(
            lines(&r.warnings),
            [
                "k.conf:1: vrrp_script chk: pidof looks at the node's processes: in a cluster the agent's pod sees them only with the chart's agent.hostPID=true, and the image has no pidof (mount it and list it in agent.allowExec); a check of the service itself (http, tcp) needs neither"
            ]
        );
        let (_, r) = script_of("vrrp_script chk {\n script \"/usr/bin/killall -0 nginx\"\n}\n");
        assert!(lines(&r.warnings)[0].contains("killall looks at the node's processes"));
    }

    #[test]
    fn what_a_vrrp_script_cannot_carry_over_is_said() {
        let (s, r) = script_of(
            "vrrp_script chk {\n script /usr/bin/true\n weight 5 reverse\n user root\n foo 1\n}\n",
        );
        assert_eq!(s.unwrap().check.exec.unwrap().command, ["/usr/bin/true"]);
        assert_eq!(
            lines(&r.warnings),
            [
                "k.conf:3: weight ... reverse is not carried over",
                "k.conf:5: vrrp_script foo is not carried over",
            ]
        );
        assert_eq!(
            lines(&r.notes),
            [
                "k.conf:4: user: commands run as the agent's --exec-user",
                "k.conf:1: vrrp_script chk: an exec check of /usr/bin/true: in a cluster it runs only on agents started with --allow-exec /usr/bin/true",
            ]
        );
        let (s, r) = script_of("vrrp_script empty {\n interval 1\n}\n");
        assert!(s.is_none());
        assert_eq!(
            lines(&r.errors),
            ["k.conf:1: vrrp_script empty has no script"]
        );
    }

    #[test]
    fn a_vrrp_track_file_is_a_file_check_of_its_value() {
        let (stmts, mut r) = parse_text(
            "k.conf",
            "vrrp_track_file tf {\n file /run/tf\n weight -5\n bogus 1\n}\nvrrp_track_file none {\n weight 2\n}\n",
        );
        let s = vrrp_track_file(&stmts[0], &mut r).unwrap();
        assert_eq!(s.at.line, 1);
        assert_eq!(s.check.weight, -5);
        let f = s.check.file.unwrap();
        assert_eq!((f.path.as_str(), f.mode), ("/run/tf", FileMode::Value));
        assert!(vrrp_track_file(&stmts[1], &mut r).is_none());
        assert_eq!(
            lines(&r.warnings),
            ["k.conf:4: vrrp_track_file bogus is not carried over"]
        );
        assert_eq!(
            lines(&r.errors),
            ["k.conf:6: vrrp_track_file none has no file"]
        );
    }
}
