//! Lines of words → statements with their blocks, as keepalived nests them: a `{` may end a
//! statement's line or start the next one, and a block may close on any line. A brace that
//! does not match is an error with its place.

use super::lexer::Line;
use super::report::{Place, Report};

/// A statement: its words, and its block when it has one.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub(crate) words: Vec<String>,
    pub(crate) at: Place,
    pub(crate) block: Option<Vec<Stmt>>,
}

impl Stmt {
    /// The first word ("" for a bare block).
    pub(crate) fn key(&self) -> &str {
        self.words.first().map(String::as_str).unwrap_or("")
    }

    /// The `i`th word (the key is 0).
    pub(crate) fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }

    /// The words after the key, joined by spaces (a command line).
    pub(crate) fn rest(&self) -> String {
        self.words.get(1..).unwrap_or_default().join(" ")
    }

    /// The block's statements (none without a block).
    pub(crate) fn children(&self) -> &[Stmt] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// How deep blocks may nest. keepalived's deepest is 4 (a `url` in a check in a real server
/// in a virtual server); a file 50,000 braces deep must be refused, not overflow the stack.
const MAX_DEPTH: usize = 32;

/// A word with its place; `ends_line` when it is its line's last.
struct Token {
    word: String,
    at: Place,
    ends_line: bool,
}

/// Lines → statements with blocks. After an unmatched `}` the rest is not read.
pub(crate) fn parse(lines: Vec<Line>, report: &mut Report) -> Vec<Stmt> {
    let toks: Vec<Token> = lines
        .into_iter()
        .flat_map(|Line { words, at }| {
            let n = words.len();
            words.into_iter().enumerate().map(move |(i, word)| Token {
                word,
                at: at.clone(),
                ends_line: i + 1 == n,
            })
        })
        .collect();
    let mut pos = 0;
    let out = block(&toks, &mut pos, report, 0);
    if pos < toks.len() {
        report.error(&toks[pos].at, "unmatched }");
    }
    out
}

/// The statements from `pos` to the `}` that closes a block at `depth` (0: the file).
fn block(toks: &[Token], pos: &mut usize, report: &mut Report, depth: usize) -> Vec<Stmt> {
    let mut out = Vec::new();
    if depth > MAX_DEPTH {
        report.error(
            &toks[*pos - 1].at,
            format!("blocks nested deeper than {MAX_DEPTH}: the rest is not read"),
        );
        // Nothing more is read: no unmatched-brace report follows.
        *pos = toks.len();
        return out;
    }
    while *pos < toks.len() {
        let Token { word, at, .. } = &toks[*pos];
        if word == "}" {
            // At depth 0 it matches nothing: left for parse() to report.
            if depth > 0 {
                *pos += 1;
            }
            return out;
        }
        if word == "{" {
            // A bare block: its statements belong to the previous statement.
            *pos += 1;
            let children = block(toks, pos, report, depth + 1);
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
        let mut stmt = statement(toks, pos);
        if *pos < toks.len() && toks[*pos].word == "{" && toks[*pos].at.line == stmt.at.line {
            *pos += 1;
            stmt.block = Some(block(toks, pos, report, depth + 1));
        }
        out.push(stmt);
    }
    if depth > 0
        && depth <= MAX_DEPTH
        && !report
            .errors
            .iter()
            .any(|e| e.text.starts_with("blocks nested deeper"))
    {
        let at = toks.last().map(|t| t.at.clone()).unwrap_or(Place {
            file: String::new(),
            line: 0,
        });
        report.error(&at, "a block is not closed (missing })");
    }
    out
}

/// One statement's words: to the end of its line or to a `{` / `}`.
fn statement(toks: &[Token], pos: &mut usize) -> Stmt {
    let mut words = Vec::new();
    let start = toks[*pos].at.clone();
    while *pos < toks.len() {
        let t = &toks[*pos];
        if t.word == "{" || t.word == "}" {
            break;
        }
        words.push(t.word.clone());
        *pos += 1;
        if t.ends_line {
            break;
        }
    }
    Stmt {
        words,
        at: start,
        block: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::keepalived::lexer::tokens;
    use crate::keepalived::report::tests::lines;

    /// A file's text → statements, with the report.
    pub(crate) fn parse_text(file: &str, text: &str) -> (Vec<Stmt>, Report) {
        let lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| Line {
                words: tokens(l),
                at: Place {
                    file: file.into(),
                    line: i + 1,
                },
            })
            .filter(|l| !l.words.is_empty())
            .collect();
        let mut report = Report::default();
        let stmts = parse(lines, &mut report);
        (stmts, report)
    }

    /// Statements as `line:words[{...}]`, nested, for comparing shapes.
    fn shape(stmts: &[Stmt]) -> String {
        stmts
            .iter()
            .map(|s| {
                let mut t = format!("{}:{}", s.at.line, s.words.join(" "));
                if let Some(b) = &s.block {
                    t += &format!("{{{}}}", shape(b));
                }
                t
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    #[test]
    fn blocks_nest_with_their_statements() {
        let (s, r) = parse_text(
            "k.conf",
            "vrrp_instance VI_1 {\n  priority 100\n  virtual_ipaddress {\n    192.0.2.1/24\n  }\n}\n",
        );
        assert!(r.errors.is_empty());
        assert_eq!(
            shape(&s),
            "1:vrrp_instance VI_1{2:priority 100;3:virtual_ipaddress{4:192.0.2.1/24}}"
        );
        assert_eq!(s[0].key(), "vrrp_instance");
        assert_eq!(s[0].arg(1), Some("VI_1"));
        assert_eq!(s[0].arg(2), None);
        assert_eq!(s[0].children()[0].children().len(), 0);
    }

    #[test]
    fn a_brace_may_open_on_the_next_line_and_blocks_may_sit_on_one_line() {
        let (s, r) = parse_text(
            "k.conf",
            "vrrp_instance VI_1\n{\n  virtual_ipaddress { 10.0.0.1 10.0.0.2 }\n}\n",
        );
        assert!(r.errors.is_empty());
        assert_eq!(
            shape(&s),
            "1:vrrp_instance VI_1{3:virtual_ipaddress{3:10.0.0.1 10.0.0.2}}"
        );
    }

    #[test]
    fn a_bare_block_after_a_statement_with_one_is_a_statement_of_its_own() {
        let (s, _) = parse_text("k.conf", "{\n x\n}\na { b }\n{ c }\n");
        assert_eq!(shape(&s), "1:{2:x};4:a{4:b};5:{5:c}");
        assert_eq!(s[0].key(), "");
    }

    #[test]
    fn fifty_thousand_nested_braces_are_refused_not_a_stack_overflow() {
        let text = format!("{}\n{}", "a {\n".repeat(50_000), "}\n".repeat(50_000));
        // On a small stack, as a thread of the agent or a test has.
        let r = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || parse_text("k.conf", &text).1)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(
            lines(&r.errors),
            ["k.conf:33: blocks nested deeper than 32: the rest is not read"]
        );
    }

    #[test]
    fn rest_is_the_command_line() {
        let (s, _) = parse_text("k.conf", "notify \"/bin/x a\" b\nnotify\n");
        assert_eq!(s[0].rest(), "/bin/x a b");
        assert_eq!(s[1].rest(), "");
    }

    #[test]
    fn an_unmatched_closing_brace_stops_the_file() {
        let (s, r) = parse_text("k.conf", "a {\n}\n}\nb\n");
        assert_eq!(shape(&s), "1:a{}");
        assert_eq!(lines(&r.errors), ["k.conf:3: unmatched }"]);
    }

    #[test]
    fn an_unclosed_block_is_an_error_at_the_last_word() {
        let (s, r) = parse_text("k.conf", "a {\n  b {\n    c\n");
        assert_eq!(shape(&s), "1:a{2:b{3:c}}");
        assert_eq!(
            lines(&r.errors),
            [
                "k.conf:3: a block is not closed (missing })",
                "k.conf:3: a block is not closed (missing })",
            ]
        );
    }
}
