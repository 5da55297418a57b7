//! Physical text into logical lines (comments dropped, `\` continuations joined) and logical
//! lines into whitespace-separated, optionally double-quoted arguments.
//!
//! Every byte of a logical line maps back to its physical `line:column`, so errors deep inside
//! a continued rule still point at the right place.

/// One directive's text after joining continuation lines.
pub(super) struct LogicalLine {
    /// The joined text (each `\` + newline removed, nothing else changed).
    pub text: String,
    /// Where each joined physical piece starts.
    segments: Vec<Segment>,
}

struct Segment {
    /// Byte offset in [`LogicalLine::text`].
    start: usize,
    /// 1-based physical line.
    line: u32,
}

impl LogicalLine {
    /// The 1-based physical `(line, column)` of byte `offset` of the logical text. Columns
    /// count characters, not bytes.
    pub fn position(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let Some(segment) = self.segments.iter().rev().find(|s| s.start <= offset) else {
            return (1, 1);
        };
        let prefix = self.text.get(segment.start..offset).unwrap_or("");
        let column = u32::try_from(prefix.chars().count()).unwrap_or(u32::MAX - 1) + 1;
        (segment.line, column)
    }
}

/// Is this comment one of the forms ModSecurity v3's scanner continues across `\` lines?
/// (seclang-scanner.ll: `#[ \t]*SecRule[^\\].*\\` and `#[ \t]*SecAction...` enter the COMMENT
/// state; any other `#` line ends at its newline even when it ends with `\`.)
fn comment_continues(comment: &str) -> bool {
    let rest = comment
        .trim_start_matches('#')
        .trim_start_matches([' ', '\t']);
    rest.starts_with("SecRule") || rest.starts_with("SecAction")
}

/// Splits `text` into logical lines: blank lines and `#` comments dropped, lines ending with
/// `\` joined to the next one (the backslash and the newline removed; leading whitespace of the
/// next line kept, it separates arguments).
pub(super) fn logical_lines(text: &str) -> Vec<LogicalLine> {
    // Editors on some systems start files with a byte-order mark; it is not part of a directive.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut current: Option<LogicalLine> = None;
    let mut in_comment = false;
    for (index, raw) in text.split('\n').enumerate() {
        let line = u32::try_from(index).unwrap_or(u32::MAX - 1) + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (body, continues) = match raw.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (raw, false),
        };
        if in_comment {
            in_comment = continues;
            continue;
        }
        match current.as_mut() {
            None => {
                let trimmed = body.trim_start_matches([' ', '\t']);
                if trimmed.starts_with('#') {
                    in_comment = continues && comment_continues(trimmed);
                    continue;
                }
                if trimmed.is_empty() && !continues {
                    continue;
                }
                let logical = LogicalLine {
                    text: body.to_owned(),
                    segments: vec![Segment { start: 0, line }],
                };
                if continues {
                    current = Some(logical);
                } else {
                    out.push(logical);
                }
            }
            Some(logical) => {
                logical.segments.push(Segment {
                    start: logical.text.len(),
                    line,
                });
                logical.text.push_str(body);
                if !continues {
                    out.extend(current.take());
                }
            }
        }
    }
    out.extend(current);
    out
}

/// One argument of a directive.
#[derive(Debug, Clone, Copy)]
pub(super) struct Token<'a> {
    /// The text, without the surrounding double quotes; backslashes kept as written
    /// (ModSecurity v3 keeps them: its scanner hands the quoted text to the rule verbatim).
    pub text: &'a str,
    /// Byte offset of `text` in the logical line.
    pub start: usize,
    /// Was it written in double quotes?
    pub quoted: bool,
}

/// Splits a logical line into arguments. A double-quoted argument runs to the next `"` not
/// escaped by a backslash. Errors are `(offset, message)`.
pub(super) fn tokens(line: &str) -> Result<Vec<Token<'_>>, (usize, String)> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        if c == b' ' || c == b'\t' || c == b'\r' {
            i += 1;
            continue;
        }
        if c == b'"' {
            let start = i + 1;
            let mut j = start;
            loop {
                match bytes.get(j) {
                    None => {
                        return Err((
                            i,
                            "expected a closing `\"` for the argument that starts here".into(),
                        ))
                    }
                    Some(b'\\') => j += 2,
                    Some(b'"') => break,
                    Some(_) => j += 1,
                }
            }
            let end = j.min(bytes.len());
            out.push(Token {
                text: &line[start..end],
                start,
                quoted: true,
            });
            i = end + 1;
            if let Some(&next) = bytes.get(i) {
                if next != b' ' && next != b'\t' && next != b'\r' {
                    return Err((
                        i,
                        "expected whitespace or the end of the line after a closing `\"`".into(),
                    ));
                }
            }
        } else {
            let start = i;
            while bytes
                .get(i)
                .is_some_and(|c| !matches!(c, b' ' | b'\t' | b'\r'))
            {
                i += 1;
            }
            out.push(Token {
                text: &line[start..i],
                start,
                quoted: false,
            });
        }
    }
    Ok(out)
}
