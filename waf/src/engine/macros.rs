//! Macro strings (`%{tx.anomaly_score}`, `%{MATCHED_VAR}`, `%{rule.id}`): parsed once at
//! compile time into literal and variable parts, expanded per request.
//!
//! Expansion takes the first value of the named variable (ModSecurity's `resolveFirst`); an
//! unknown or absent variable expands to nothing.

use super::variables::{collection_from_name, TxKeys};
use crate::ast::Collection;

/// A string with `%{...}` macros, split into parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MacroString {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Literal(Vec<u8>),
    /// A variable, with its key lower-cased (lookups are case-insensitive).
    Var {
        collection: Collection,
        key: Option<Vec<u8>>,
        /// `tx.key`: the key's number in the plan's TX keys (set when the plan is built).
        tx_key: Option<u32>,
    },
}

impl MacroString {
    /// Splits `text` into literal and `%{VAR}` / `%{COLLECTION.key}` parts. A `%{` naming no
    /// known variable stays literal text, as written.
    pub(crate) fn parse(text: &str) -> MacroString {
        let mut parts = Vec::new();
        let mut literal = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("%{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                break;
            };
            let inner = &after[..end];
            let (name, key) = match inner.split_once('.') {
                Some((n, k)) => (n, Some(k)),
                None => (inner, None),
            };
            match collection_from_name(name) {
                Some(collection) => {
                    literal.extend_from_slice(&rest.as_bytes()[..start]);
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Var {
                        collection,
                        key: key.map(|k| k.to_ascii_lowercase().into_bytes()),
                        tx_key: None,
                    });
                }
                None => {
                    literal.extend_from_slice(&rest.as_bytes()[..start + 2 + end + 1]);
                }
            }
            rest = &after[end + 1..];
        }
        literal.extend_from_slice(rest.as_bytes());
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        MacroString { parts }
    }

    /// True when there is nothing to expand.
    #[cfg(test)]
    pub(crate) fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The literal text when [`MacroString::is_literal`].
    pub(crate) fn literal(&self) -> Option<Vec<u8>> {
        if self.parts.iter().any(|p| !matches!(p, Part::Literal(_))) {
            return None;
        }
        let mut out = Vec::new();
        for p in &self.parts {
            if let Part::Literal(l) = p {
                out.extend_from_slice(l);
            }
        }
        Some(out)
    }

    pub(crate) fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Numbers the `%{tx.key}` parts' keys in `keys`.
    pub(crate) fn number_tx_keys(&mut self, keys: &mut TxKeys) {
        for p in &mut self.parts {
            if let Part::Var {
                collection: Collection::Tx,
                key: Some(k),
                tx_key,
            } = p
            {
                *tx_key = Some(keys.intern(k));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_literals_and_variables() {
        let m = MacroString::parse("Score: %{TX.ANOMALY_SCORE} in %{MATCHED_VAR_NAME}.");
        assert_eq!(
            m.parts(),
            &[
                Part::Literal(b"Score: ".to_vec()),
                Part::Var {
                    collection: Collection::Tx,
                    key: Some(b"anomaly_score".to_vec()),
                    tx_key: None,
                },
                Part::Literal(b" in ".to_vec()),
                Part::Var {
                    collection: Collection::MatchedVarName,
                    key: None,
                    tx_key: None,
                },
                Part::Literal(b".".to_vec()),
            ]
        );
        assert!(!m.is_literal());
    }

    #[test]
    fn unknown_names_and_unclosed_macros_stay_literal() {
        let m = MacroString::parse("a %{nosuch.x} b %{tx.y");
        assert_eq!(m.literal(), Some(b"a %{nosuch.x} b %{tx.y".to_vec()));
        assert_eq!(MacroString::parse("").literal(), Some(Vec::new()));
    }
}
