//! What the import says about its input, with file and line: errors (nothing is printed),
//! warnings (something not carried over) and notes (something carried over differently).

use std::fmt;

/// Where a statement comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A message about the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub at: Place,
    pub text: String,
}

/// The messages of one import, each kind in the order it was said.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) errors: Vec<Message>,
    pub(crate) warnings: Vec<Message>,
    pub(crate) notes: Vec<Message>,
}

impl Report {
    /// Something that cannot be imported: the import prints nothing.
    pub(crate) fn error(&mut self, at: &Place, text: impl Into<String>) {
        push(&mut self.errors, at, text);
    }

    /// Something that is not carried over.
    pub(crate) fn warning(&mut self, at: &Place, text: impl Into<String>) {
        push(&mut self.warnings, at, text);
    }

    /// Something carried over differently, or worth knowing.
    pub(crate) fn note(&mut self, at: &Place, text: impl Into<String>) {
        push(&mut self.notes, at, text);
    }
}

fn push(list: &mut Vec<Message>, at: &Place, text: impl Into<String>) {
    list.push(Message {
        at: at.clone(),
        text: text.into(),
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A place in a test file.
    pub(crate) fn at(file: &str, line: usize) -> Place {
        Place {
            file: file.into(),
            line,
        }
    }

    /// `file:line: text` for each message, as the command prints them (without the kind).
    pub(crate) fn lines(list: &[Message]) -> Vec<String> {
        list.iter()
            .map(|m| format!("{}: {}", m.at, m.text))
            .collect()
    }

    #[test]
    fn a_place_prints_as_file_colon_line() {
        assert_eq!(
            at("/etc/keepalived/keepalived.conf", 7).to_string(),
            "/etc/keepalived/keepalived.conf:7"
        );
    }

    #[test]
    fn each_kind_keeps_its_own_order() {
        let mut r = Report::default();
        r.warning(&at("a", 2), "w1");
        r.error(&at("a", 1), "e1");
        r.note(&at("a", 3), String::from("n1"));
        r.warning(&at("a", 1), "w2");
        assert_eq!(lines(&r.errors), ["a:1: e1"]);
        assert_eq!(lines(&r.warnings), ["a:2: w1", "a:1: w2"]);
        assert_eq!(lines(&r.notes), ["a:3: n1"]);
    }
}
