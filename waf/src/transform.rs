//! Transformations (`t:`) with ModSecurity v3's exact byte semantics.
//!
//! Each takes the input bytes and writes the transformed value; a transformation that leaves
//! its input unchanged says so, so the engine can skip copies.

use crate::ast::TransformName;

impl TransformName {
    /// The name after `t:` (case-insensitive), e.g. `urlDecodeUni`; `normalisePath` spellings
    /// included.
    pub fn from_name(name: &str) -> Option<TransformName> {
        let _ = name;
        unimplemented!("being written")
    }

    /// The canonical SecLang name.
    pub fn as_str(self) -> &'static str {
        unimplemented!("being written")
    }
}

/// Applies `t` to `input`. Returns `true` and the result in `out` (cleared first) when the
/// value changed; `false` (with `out` unspecified) when the transformation leaves `input` as
/// it is. Never panics, whatever the bytes.
pub fn apply(t: TransformName, input: &[u8], out: &mut Vec<u8>) -> bool {
    let _ = (t, input, out);
    unimplemented!("being written")
}
