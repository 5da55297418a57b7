//! Operators (`@rx`, `@pm`, `@detectSQLi`, ...): compiled once, matched per value.
//!
//! Negation (`!@`) and macro expansion are the engine's: an operator here gets a final
//! argument (the engine compiles operands with macros at run time, for the cheap operators).

use crate::ast::OperatorName;
use crate::seclang::RuleSource;

/// Up to ten captures (`TX:0`..`TX:9`) from a match, for the `capture` action.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captures {
    /// `groups[i]` is `TX:i`; `None` when the group did not take part.
    pub groups: Vec<Option<Vec<u8>>>,
}

/// A compiled operator.
#[derive(Debug)]
pub struct CompiledOperator {
    _private: (),
}

/// Why an operator did not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorError {
    /// What was wrong (names the operator and the offending part of the argument).
    pub message: String,
}

impl OperatorName {
    /// The name after `@` (case-insensitive), e.g. `rx`, `pmFromFile`.
    pub fn from_name(name: &str) -> Option<OperatorName> {
        let _ = name;
        unimplemented!("being written")
    }

    /// The canonical SecLang name (without `@`).
    pub fn as_str(self) -> &'static str {
        unimplemented!("being written")
    }
}

impl CompiledOperator {
    /// Compiles `name` with its final `argument`; data files (`@pmFromFile`,
    /// `@ipMatchFromFile`) are read through `source`, resolved against `rule_file`.
    pub fn compile(
        name: OperatorName,
        argument: &str,
        source: &dyn RuleSource,
        rule_file: &str,
    ) -> Result<CompiledOperator, OperatorError> {
        let _ = (name, argument, source, rule_file);
        unimplemented!("being written")
    }

    /// Does `input` match? With `captures`, fills them as ModSecurity's `capture` does for this
    /// operator (regex groups for `@rx`, the matched phrase for `@pm`, the fingerprint for
    /// `@detectSQLi`, ...). Never panics.
    pub fn matches(&self, input: &[u8], captures: Option<&mut Captures>) -> bool {
        let _ = (input, captures);
        unimplemented!("being written")
    }

    /// True when this `@rx` needed the backtracking fallback (PCRE-only syntax): the compile
    /// report lists these.
    pub fn uses_fallback_regex(&self) -> bool {
        false
    }
}
