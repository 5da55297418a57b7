//! Errors reading traffic files: always say where and why.

use std::fmt;

/// A traffic file could not be read. `Display` gives `where: why`, where
/// `where` is `file:line` (JSONL, YAML), `file#/json/pointer` (HAR) or
/// `file: test <id>` (go-ftw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficError {
    /// The traffic file, named as the caller gave it (for files read by
    /// [`load_file`](super::load_file), the path as displayed).
    pub file: String,
    /// The position inside the file, already formatted; empty for the whole file.
    pub at: String,
    /// What is wrong, without the position.
    pub message: String,
}

impl TrafficError {
    /// An error at `at`, a position already formatted to follow the file name
    /// directly (e.g. `":12"`, `"#/log/entries/0"`, `": tests[0].stages[1] (test x)"`).
    pub fn new(file: &str, at: impl Into<String>, message: impl Into<String>) -> Self {
        TrafficError {
            file: file.to_string(),
            at: at.into(),
            message: message.into(),
        }
    }

    /// An error on 1-based line `line` (JSONL).
    pub fn line(file: &str, line: usize, message: impl Into<String>) -> Self {
        Self::new(file, format!(":{line}"), message)
    }

    /// An error at JSON pointer `pointer` (HAR), e.g. `/log/entries/3/request/url`.
    pub fn pointer(file: &str, pointer: &str, message: impl Into<String>) -> Self {
        Self::new(file, format!("#{pointer}"), message)
    }

    /// An error about the whole file (it cannot be read, or is not UTF-8).
    pub fn whole(file: &str, message: impl Into<String>) -> Self {
        Self::new(file, "", message)
    }
}

impl fmt::Display for TrafficError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}: {}", self.file, self.at, self.message)
    }
}

impl std::error::Error for TrafficError {}

/// Renders a `serde_path_to_error` path as a JSON pointer (RFC 6901).
pub fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        out.push('/');
        match seg {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push_str(&key.replace('~', "~0").replace('/', "~1"))
            }
            Segment::Unknown => out.push('?'),
        }
    }
    out
}
