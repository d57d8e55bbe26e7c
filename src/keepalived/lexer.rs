//! keepalived.conf text → lines of words, each with its file and line, as keepalived reads
//! them: `!` and `#` comments, double quotes, braces as words of their own, and `include`
//! with globs resolved against the including file's directory. The files are read through
//! [`Files`], so the rules are tested on text in memory.

use std::path::{Path, PathBuf};

use super::report::{Place, Report};

/// How deep includes may nest (an include of itself stops here).
const MAX_INCLUDE_DEPTH: usize = 8;
/// How many files all includes may bring in, counting a file each time it is included
/// (k files that each include all k would otherwise grow as k to the power of the depth).
const MAX_INCLUDED_FILES: usize = 1024;
/// How much text all files together may bring in, counting repeats.
const MAX_TOTAL_BYTES: usize = 16 << 20;

/// A non-empty line: its words and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) words: Vec<String>,
    pub(crate) at: Place,
}

/// Where the configuration files come from.
pub(crate) trait Files {
    /// A file's text.
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// The files a path names, sorted; `*` and `?` may stand in its file name part.
    fn glob(&self, pattern: &Path) -> Vec<PathBuf>;
}

/// The files on this machine.
pub(crate) struct Disk;

impl Files for Disk {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }

    /// `*` and `?` in the file name part only (enough for `conf.d/*.conf`).
    fn glob(&self, p: &Path) -> Vec<PathBuf> {
        let name = file_name(p);
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
}

/// A path's file name part as text ("" when it has none).
pub(crate) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether `s` matches `pattern`, where `*` is any run of characters and `?` one character.
pub(crate) fn wildcard(pattern: &str, s: &str) -> bool {
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

/// Splits a line as keepalived does: words, `{` and `}` on their own, double-quoted strings as
/// one word, and a comment from a `!` or `#` that starts a word.
pub(crate) fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    for c in line.chars() {
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

/// Reads a file and its includes into lines of words; what cannot be read is an error.
pub(crate) fn read(path: &Path, files: &dyn Files, report: &mut Report) -> Vec<Line> {
    let mut out = Vec::new();
    Reader {
        files,
        out: &mut out,
        report,
        texts: std::collections::HashMap::new(),
        included: 0,
        bytes: 0,
        over: false,
    }
    .file(path, 0, None);
    out
}

/// One file's reading, includes and all.
struct Reader<'a> {
    files: &'a dyn Files,
    out: &'a mut Vec<Line>,
    report: &'a mut Report,
    /// Each file is read once, however often it is included.
    texts: std::collections::HashMap<PathBuf, Result<std::rc::Rc<str>, String>>,
    /// Files brought in so far, and their bytes, repeats counted.
    included: usize,
    bytes: usize,
    /// A bound was reached: nothing more is read.
    over: bool,
}

impl Reader<'_> {
    /// `path`'s lines at include depth `depth`; `from` is the include line that named it.
    fn file(&mut self, path: &Path, depth: usize, from: Option<&Place>) {
        if self.over {
            return;
        }
        let files = self.files;
        let text = self
            .texts
            .entry(path.to_path_buf())
            .or_insert_with(|| files.read(path).map(Into::into).map_err(|e| e.to_string()))
            .clone();
        let at = || {
            from.cloned().unwrap_or(Place {
                file: path.display().to_string(),
                line: 0,
            })
        };
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                self.report
                    .error(&at(), format!("cannot read {}: {e}", path.display()));
                return;
            }
        };
        self.included += 1;
        self.bytes += text.len();
        if self.included > MAX_INCLUDED_FILES || self.bytes > MAX_TOTAL_BYTES {
            self.over = true;
            self.report.error(
                &at(),
                format!(
                    "includes bring in more than {MAX_INCLUDED_FILES} files or {} MiB (repeats counted): the rest is not read",
                    MAX_TOTAL_BYTES >> 20
                ),
            );
            return;
        }
        let file = path.display().to_string();
        for (i, line) in text.lines().enumerate() {
            let at = Place {
                file: file.clone(),
                line: i + 1,
            };
            let words = tokens(line);
            if words.first().map(String::as_str) == Some("include") {
                self.include(&words[1..], path, &at, depth);
            } else if !words.is_empty() {
                self.out.push(Line { words, at });
            }
        }
    }

    /// An `include` line of `path` (at depth `depth`): each pattern's files, in order.
    fn include(&mut self, patterns: &[String], path: &Path, at: &Place, depth: usize) {
        if depth > MAX_INCLUDE_DEPTH {
            self.report.error(at, "includes nested too deep");
            return;
        }
        for pattern in patterns {
            let matches = self.files.glob(&include_path(path, pattern));
            if matches.is_empty() {
                self.report
                    .error(at, format!("include {pattern}: no such file"));
            }
            for m in matches {
                self.file(&m, depth + 1, Some(at));
            }
        }
    }
}

/// keepalived resolves a relative include against the including file's directory.
fn include_path(including: &Path, pattern: &str) -> PathBuf {
    let p = Path::new(pattern);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        including.parent().unwrap_or(Path::new(".")).join(p)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::keepalived::report::tests::lines;

    /// Files in memory: path → text.
    pub(crate) struct Memory(pub(crate) BTreeMap<PathBuf, String>);

    impl Memory {
        pub(crate) fn new(files: &[(&str, &str)]) -> Memory {
            Memory(
                files
                    .iter()
                    .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                    .collect(),
            )
        }
    }

    impl Files for Memory {
        fn read(&self, path: &Path) -> std::io::Result<String> {
            self.0
                .get(path)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }

        fn glob(&self, pattern: &Path) -> Vec<PathBuf> {
            let name = file_name(pattern);
            self.0
                .keys()
                .filter(|p| p.parent() == pattern.parent() && wildcard(&name, &file_name(p)))
                .cloned()
                .collect()
        }
    }

    fn words_and_lines(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| format!("{}: {}", l.at, l.words.join("|")))
            .collect()
    }

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
    fn quotes_keep_spaces_braces_and_comment_signs() {
        assert_eq!(
            tokens(r#"notify "/bin/x { # ! }" tail"#),
            ["notify", "/bin/x { # ! }", "tail"]
        );
        assert_eq!(tokens(r#"a"b c"d"#), ["a", "b c", "d"]);
        assert_eq!(tokens(r#"script """#), ["script", ""]);
        assert_eq!(
            tokens(r#"script "unclosed quote"#),
            ["script", "unclosed quote"]
        );
    }

    #[test]
    fn comments_and_blank_lines_are_nothing() {
        for line in ["", "   ", "! a comment", "# another", "\t# indented"] {
            assert!(tokens(line).is_empty(), "{line:?}");
        }
        assert_eq!(tokens("priority 100 #comment"), ["priority", "100"]);
        assert_eq!(tokens("a{b}c"), ["a", "{", "b", "}", "c"]);
    }

    #[test]
    fn wildcards_match_like_a_shell_file_name() {
        assert!(wildcard("*.conf", "sync.conf"));
        assert!(wildcard("*.conf", ".conf"));
        assert!(!wildcard("*.conf", "sync.conf.bak"));
        assert!(wildcard("vi_?.conf", "vi_1.conf"));
        assert!(!wildcard("vi_?.conf", "vi_10.conf"));
        assert!(wildcard("*", ""));
        assert!(wildcard("a*b*c", "aXXbYc"));
        assert!(!wildcard("a", "b"));
    }

    #[test]
    fn lines_keep_their_file_and_line_through_includes() {
        let files = Memory::new(&[
            (
                "/etc/k/keepalived.conf",
                "! top\nglobal_defs {\n}\ninclude conf.d/*.conf\nvrrp_instance VI_1 {\n",
            ),
            ("/etc/k/conf.d/b.conf", "\n\nb \"two words\"\n"),
            ("/etc/k/conf.d/a.conf", "a 1 # note\n"),
            ("/etc/k/conf.d/a.txt", "not included\n"),
        ]);
        let mut report = Report::default();
        let out = read(Path::new("/etc/k/keepalived.conf"), &files, &mut report);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(
            words_and_lines(&out),
            [
                "/etc/k/keepalived.conf:2: global_defs|{",
                "/etc/k/keepalived.conf:3: }",
                "/etc/k/conf.d/a.conf:1: a|1",
                "/etc/k/conf.d/b.conf:3: b|two words",
                "/etc/k/keepalived.conf:5: vrrp_instance|VI_1|{",
            ]
        );
    }

    #[test]
    fn an_absolute_include_and_several_patterns_on_one_line() {
        let files = Memory::new(&[
            ("/a/main.conf", "include /b/x.conf y.conf\n"),
            ("/b/x.conf", "x\n"),
            ("/a/y.conf", "y\n"),
        ]);
        let mut report = Report::default();
        let out = read(Path::new("/a/main.conf"), &files, &mut report);
        assert_eq!(words_and_lines(&out), ["/b/x.conf:1: x", "/a/y.conf:1: y"]);
    }

    #[test]
    fn a_missing_include_is_an_error_at_its_line() {
        let files = Memory::new(&[("/a/main.conf", "x\ninclude nothing/*.conf gone.conf\n")]);
        let mut report = Report::default();
        let out = read(Path::new("/a/main.conf"), &files, &mut report);
        assert_eq!(words_and_lines(&out), ["/a/main.conf:1: x"]);
        assert_eq!(
            lines(&report.errors),
            [
                "/a/main.conf:2: include nothing/*.conf: no such file",
                "/a/main.conf:2: include gone.conf: no such file",
            ]
        );
    }

    #[test]
    fn an_unreadable_file_is_an_error_at_line_0_or_at_its_include() {
        let files = Memory::new(&[]);
        let mut report = Report::default();
        read(Path::new("/nowhere.conf"), &files, &mut report);
        assert_eq!(report.errors.len(), 1);
        assert!(
            lines(&report.errors)[0].starts_with("/nowhere.conf:0: cannot read /nowhere.conf: "),
            "{:?}",
            report.errors
        );

        // A file glob() names that cannot be read: the error is at the include line.
        struct Broken;
        impl Files for Broken {
            fn read(&self, path: &Path) -> std::io::Result<String> {
                match path.to_str() {
                    Some("/m.conf") => Ok("\ninclude d.conf\n".into()),
                    _ => Err(std::io::Error::other("a directory")),
                }
            }
            fn glob(&self, pattern: &Path) -> Vec<PathBuf> {
                vec![pattern.to_path_buf()]
            }
        }
        let mut report = Report::default();
        read(Path::new("/m.conf"), &Broken, &mut report);
        assert_eq!(
            lines(&report.errors),
            ["/m.conf:2: cannot read /d.conf: a directory"]
        );
    }

    #[test]
    fn includes_that_include_each_other_are_bounded() {
        // Five files that each include all five: 5^9 inclusions unbounded.
        let texts: Vec<(String, String)> = (0..5)
            .map(|i| {
                (
                    format!("/a/{i}.conf"),
                    format!("line{i} x\ninclude *.conf\n"),
                )
            })
            .collect();
        let refs: Vec<(&str, &str)> = texts
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let files = Memory::new(&refs);
        let mut report = Report::default();
        let lines = read(Path::new("/a/0.conf"), &files, &mut report);
        assert!(lines.len() <= MAX_INCLUDED_FILES, "{}", lines.len());
        let errors: Vec<&String> = report.errors.iter().map(|m| &m.text).collect();
        assert_eq!(
            errors
                .iter()
                .filter(|e| e.contains("more than 1024 files"))
                .count(),
            1,
            "{errors:?}"
        );
    }

    #[test]
    fn an_include_of_itself_stops_nested_too_deep() {
        let files = Memory::new(&[("/a/self.conf", "include self.conf\n")]);
        let mut report = Report::default();
        let out = read(Path::new("/a/self.conf"), &files, &mut report);
        assert!(out.is_empty());
        assert_eq!(
            lines(&report.errors),
            ["/a/self.conf:1: includes nested too deep"]
        );
    }
}
