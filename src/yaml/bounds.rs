//! Bounds on a YAML text before any parser sees it: its size, and how deeply it nests. A
//! YAML parser's time grows with the square of the nesting (100,000 nested lists took 36 s),
//! and a VirtualIP nests a few levels: this scan is linear and refuses the rest at once.

/// The largest text read: far above any real configuration (1,000 VIPs are about 100 KB).
pub(crate) const MAX_BYTES: usize = 16 << 20;

/// The deepest nesting accepted (a VirtualIP with checks nests about 8).
pub(crate) const MAX_DEPTH: usize = 64;

/// `Err` with the reason when `text` is too large or nests too deeply. Counts block nesting
/// (indentation levels and `- ` items on one line) plus flow nesting (`[`, `{` outside quotes
/// and comments); it may overcount a strange file, never undercount.
pub(crate) fn check(text: &str) -> Result<(), String> {
    if text.len() > MAX_BYTES {
        return Err(format!(
            "the file is {} bytes: at most {MAX_BYTES} are read",
            text.len()
        ));
    }
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        if flow == 0 {
            while indents.last().is_some_and(|i| *i > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
        }
        // Sequence items opened on this line ("- - - x").
        let mut rest = body;
        let mut dashes = 0;
        while let Some(r) = rest
            .strip_prefix("- ")
            .or_else(|| (rest == "-").then_some(""))
        {
            dashes += 1;
            rest = r.trim_start_matches(' ');
        }
        let mut quote: Option<char> = None;
        let mut deepest = flow;
        let mut prev = ' ';
        for c in rest.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') if matches!(prev, ' ' | '[' | '{' | ',' | ':') => {
                    quote = Some(c)
                }
                (None, '#') if prev == ' ' => break,
                (None, '[' | '{') => {
                    flow += 1;
                    deepest = deepest.max(flow);
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            prev = c;
        }
        let depth = indents.len() + dashes + deepest;
        if depth > MAX_DEPTH {
            return Err(format!(
                "line {}: nested more than {MAX_DEPTH} levels deep: a VirtualIP nests a few",
                n + 1
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_files_pass_and_deep_or_huge_ones_are_refused_at_once() {
        for f in [
            include_str!("../../config/web-director.yaml"),
            include_str!("../../config/control-plane-vip.yaml"),
            include_str!("../../config/many-addresses.yaml"),
        ] {
            assert_eq!(check(f), Ok(()));
        }
        let nested_flow = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let nested_block: String = (0..100_000)
            .map(|i| format!("{}- \n", " ".repeat(i % 300)))
            .collect();
        let nested_maps: String = (0..1000)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        let dashes = format!("{}x\n", "- ".repeat(1000));
        for (text, want) in [
            (&nested_flow, "line 1: nested more than 64"),
            (&nested_maps, "nested more than 64"),
            (&dashes, "line 1: nested more than 64"),
        ] {
            let e = check(text).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        assert!(check(&nested_block).is_err());
        let huge = "#".repeat(MAX_BYTES + 1);
        assert!(check(&huge).unwrap_err().contains("at most"));
        // Brackets in quotes and comments are text.
        assert_eq!(
            check(
                "a: \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\" # {{{{\n"
            ),
            Ok(())
        );
    }
}
