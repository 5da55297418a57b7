//! XML request bodies as far as CRS reads them, following ModSecurity v3.0.9's XML processor
//! (`src/request_body_processor/xml.cc`, libxml2 push parser): `XML:/*` is the text content of
//! the root element (one value), `XML://@*` every attribute value; a document that is not
//! well-formed is `XML parsing error: XML: Failed parsing document.`.
//!
//! Parsing is done by `roxmltree` (pure Rust, no I/O): it checks well-formedness, expands
//! character, predefined and internal DTD entities as libxml2's `xmlNodeGetContent` shows them,
//! normalizes attribute values, and never loads anything external. The walk over the tree is
//! iterative and refuses documents nested deeper than the caller's limit (libxml2 refuses
//! more than 257 levels, so the engine passes 257 to match ModSecurity).

use super::{BodyError, XmlDocument};

/// The message ModSecurity gives for every XML failure (`XML::complete`).
const FAILED: &str = "XML parsing error: XML: Failed parsing document.";

/// Parses `body`; see the module documentation.
pub(super) fn parse(body: &[u8], max_depth: usize) -> Result<XmlDocument, BodyError> {
    let failed = || BodyError {
        message: FAILED.to_string(),
    };
    // libxml2 rejects input that is not UTF-8 unless the declaration names another encoding;
    // roxmltree reads UTF-8 only, so ISO-8859-1 (every byte one code point) is converted here
    // and other encodings are refused.
    let latin1;
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(_) if declares_latin1(body) => {
            latin1 = body.iter().map(|&b| char::from(b)).collect::<String>();
            latin1.as_str()
        }
        Err(_) => return Err(failed()),
    };
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let document = roxmltree::Document::parse_with_options(text, options).map_err(|_| failed())?;
    let root = document.root_element();
    let mut content = Vec::new();
    let mut attribute_values = Vec::new();
    // Iterative depth-first walk in document order: (node, element depth).
    let mut stack = vec![(root, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        if node.is_element() {
            if depth > max_depth {
                return Err(failed());
            }
            for attribute in node.attributes() {
                attribute_values.push(attribute.value().as_bytes().to_vec());
            }
            let children: Vec<_> = node.children().collect();
            for child in children.into_iter().rev() {
                stack.push((child, depth + 1));
            }
        } else if node.is_text() {
            content.extend_from_slice(node.text().unwrap_or_default().as_bytes());
        }
    }
    Ok(XmlDocument {
        texts: vec![content],
        attribute_values,
    })
}

/// Whether the XML declaration names ISO-8859-1 (`latin1` and `iso_8859-1` are its aliases).
fn declares_latin1(body: &[u8]) -> bool {
    let Some(rest) = body.strip_prefix(b"<?xml") else {
        return false;
    };
    let declaration = match rest.iter().position(|&b| b == b'>') {
        Some(end) => &rest[..end],
        None => return false,
    };
    let lower = declaration.to_ascii_lowercase();
    [&b"iso-8859-1"[..], b"latin1", b"iso_8859-1", b"iso8859-1"]
        .iter()
        .any(|name| memchr::memmem::find(&lower, name).is_some())
}
