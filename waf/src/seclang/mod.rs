//! The SecLang parser: rule text (with `Include`s) into [`crate::ast::Directive`]s.
//!
//! Every error carries `file:line:column` and what was expected; a directive or action the
//! engine does not support is an error naming it, never silently ignored.

use crate::ast::{Directive, Location};
use std::fmt;

/// Where rule files and `@pmFromFile`/`@ipMatchFromFile` data files come from: the file system
/// natively, an embedded map inside the filter (no file system in a proxy-wasm VM).
pub trait RuleSource {
    /// The text of `path` (as an Include or a data-file operand names it, already resolved
    /// against the including file's directory by [`RuleSource::resolve`]).
    fn read(&self, path: &str) -> Result<String, String>;
    /// The files a glob (`*`, `?`, `[...]` in the last component) matches, sorted; an empty
    /// list is not an error here (the parser reports "Include matches nothing").
    fn glob(&self, pattern: &str) -> Result<Vec<String>, String>;
    /// `name` as seen from a file at `from` (relative names are relative to `from`'s directory;
    /// absolute names and `@alias` names stay as they are).
    fn resolve(&self, from: &str, name: &str) -> String;
}

/// A parse error: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Where the offending token starts.
    pub location: Location,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Directives accepted as documented no-ops (they have no meaning in a proxy filter: audit-log
/// files, temporary directories, persistent-collection storage, ...).
pub const ACCEPTED_NO_OPS: &[&str] = &[];

/// Parses `text` (named `file` in locations), following `Include`s through `source`.
pub fn parse(
    text: &str,
    file: &str,
    source: &dyn RuleSource,
) -> Result<Vec<Directive>, ParseError> {
    let _ = (text, file, source);
    unimplemented!("seclang::parse: being written")
}
