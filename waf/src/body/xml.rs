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

/// How many undeclared namespace prefixes are declared before the document is refused.
const MAX_UNDECLARED_PREFIXES: usize = 8;

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
    // libxml2 only warns about an undeclared namespace prefix (the name stays as written);
    // roxmltree refuses it, so such prefixes are declared on the root element, a bounded
    // number of times, and the document parsed again.
    let mut declared: Option<String> = None;
    for _ in 0..=MAX_UNDECLARED_PREFIXES {
        let input = declared.as_deref().unwrap_or(text);
        match extract(input, max_depth) {
            Ok(document) => return Ok(document),
            Err(Some(prefix)) => {
                declared = Some(declare_prefix(input, &prefix).ok_or_else(failed)?)
            }
            Err(None) => break,
        }
    }
    Err(failed())
}

/// Parses one candidate text. `Err(Some(prefix))` is an undeclared namespace prefix.
fn extract(input: &str, max_depth: usize) -> Result<XmlDocument, Option<String>> {
    // External entities are never loaded: like libxml2 without XML_PARSE_NOENT/DTDLOAD they
    // read as empty text.
    let resolver = |_: Option<&str>, _: &str| Ok(Some(""));
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        entity_resolver: Some(&resolver),
        ..roxmltree::ParsingOptions::default()
    };
    let document = match roxmltree::Document::parse_with_options(input, options) {
        Ok(document) => document,
        Err(roxmltree::Error::UnknownNamespace(prefix, _)) => return Err(Some(prefix)),
        Err(_) => return Err(None),
    };
    let root = document.root_element();
    let mut content = Vec::new();
    let mut attribute_values = Vec::new();
    // Iterative depth-first walk in document order: (node, element depth).
    let mut stack = vec![(root, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        if node.is_element() {
            if depth > max_depth {
                return Err(None);
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

/// `text` with `xmlns:prefix="..."` added to the root element's start tag.
fn declare_prefix(text: &str, prefix: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut at = 0;
    // The root start tag is the first `<` not followed by `?` or `!`.
    let name_end = loop {
        let open = at + bytes.get(at..)?.iter().position(|&b| b == b'<')?;
        match bytes.get(open + 1) {
            Some(b'?') | Some(b'!') => at = open + 1,
            Some(_) => {
                let name_len = bytes[open + 1..]
                    .iter()
                    .position(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')?;
                break open + 1 + name_len;
            }
            None => return None,
        }
    };
    let mut declared = String::with_capacity(text.len() + prefix.len() + 32);
    declared.push_str(text.get(..name_end)?);
    declared.push_str(" xmlns:");
    declared.push_str(prefix);
    declared.push_str("=\"urn:portcullis:undeclared\"");
    declared.push_str(text.get(name_end..)?);
    Some(declared)
}
