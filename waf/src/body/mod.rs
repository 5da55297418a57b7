//! Request parsing as ModSecurity v3 does it: query strings and urlencoded bodies, cookies,
//! multipart (with the strict-multipart flags CRS reads), JSON and XML bodies.
//!
//! Each parser is bounded (argument count, nesting depth) and returns a typed error that the
//! engine turns into `REQBODY_ERROR` / `REQBODY_ERROR_MSG`; none panics on any input.

mod cookies;
mod json;
mod multipart;
mod urlencoded;
mod xml;

pub use multipart::{parse_multipart_outcome, MultipartOutcome, CD_WORK_PER_BODY_BYTE};
pub use urlencoded::{parse_urlencoded_outcome, url_decode, UrlencodedOutcome};

/// A name/value pair (`ARGS_GET`, `ARGS_POST`, cookies), bytes as received after decoding.
pub type Pair = (Vec<u8>, Vec<u8>);

/// Why a body did not parse: the message ModSecurity puts in `REQBODY_ERROR_MSG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    /// Human-readable reason, as ModSecurity words it where it can.
    pub message: String,
}

/// Splits a query string or `application/x-www-form-urlencoded` body into pairs, decoding
/// `%XX` and `+` as ModSecurity does. Returns `true` when an invalid `%` encoding was seen
/// (ModSecurity's `URLENCODED_ERROR`). At most `max_args` pairs are produced; use
/// [`parse_urlencoded_outcome`] to learn whether some were dropped.
pub fn parse_urlencoded(input: &[u8], separator: u8, max_args: usize, out: &mut Vec<Pair>) -> bool {
    parse_urlencoded_outcome(input, separator, max_args, out).invalid_encoding
}

/// Splits one `Cookie` header value into pairs as ModSecurity v3.0.9 does (`;` separated,
/// names left-trimmed, only the last pair right-trimmed, no URL decoding; see
/// `cookies::split_cookie_header`). ModSecurity splits each `Cookie` header on its own.
pub fn parse_cookies(header: &[u8], out: &mut Vec<Pair>) {
    cookies::split_cookie_header(header, out);
}

/// One uploaded file part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilePart {
    /// The form field name (`FILES_NAMES`).
    pub name: Vec<u8>,
    /// The `filename` parameter (`FILES`, `MULTIPART_FILENAME`).
    pub filename: Vec<u8>,
    /// Content size in bytes (`FILES_SIZES`).
    pub size: u64,
}

/// ModSecurity's multipart flags (`MULTIPART_*` variables), each 0 or 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)] // named as the MULTIPART_* variables they feed
pub struct MultipartFlags {
    pub boundary_quoted: bool,
    pub boundary_whitespace: bool,
    pub data_before: bool,
    pub data_after: bool,
    pub header_folding: bool,
    pub lf_line: bool,
    pub crlf_lf_lines: bool,
    pub missing_semicolon: bool,
    pub invalid_quoting: bool,
    pub invalid_part: bool,
    pub invalid_header_folding: bool,
    pub file_limit_exceeded: bool,
    pub unmatched_boundary: bool,
    /// `MULTIPART_UNMATCHED_BOUNDARY` exactly: 0, 1 (a line resembling a boundary that is not
    /// ours), or 2 (a boundary matched after the first one, which ModSecurity 3.0.9 sets on
    /// every well-formed body with 2+ boundaries). `unmatched_boundary` is `value == 1`.
    pub unmatched_boundary_value: u8,
    /// ModSecurity's internal `m_flag_error` (a fatal C-T or boundary error), part of
    /// `MULTIPART_STRICT_ERROR`.
    pub processor_error: bool,
}

impl MultipartFlags {
    /// `MULTIPART_STRICT_ERROR`: any of the flags, as ModSecurity computes it.
    /// `MULTIPART_UNMATCHED_BOUNDARY` is not part of it (as in `multipart_complete`).
    pub fn strict_error(&self) -> bool {
        self.processor_error
            || self.boundary_quoted
            || self.boundary_whitespace
            || self.data_before
            || self.data_after
            || self.header_folding
            || self.lf_line
            || self.missing_semicolon
            || self.invalid_quoting
            || self.invalid_part
            || self.invalid_header_folding
            || self.file_limit_exceeded
    }
}

/// A parsed multipart body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Multipart {
    /// Non-file fields (`ARGS_POST`).
    pub args: Vec<Pair>,
    /// File parts.
    pub files: Vec<FilePart>,
    /// Every part's headers as `(part name, line)` (`MULTIPART_PART_HEADERS`). As in
    /// ModSecurity 3.0.9 the line is as received, line ending included (`Content-Type: a\r\n`);
    /// a folded header is `Name: value continued` without line ending.
    pub part_headers: Vec<Pair>,
    /// Every `name` parameter parsed, in order, repeats included (`MULTIPART_NAME`).
    pub names: Vec<Vec<u8>>,
    /// Every `filename` parameter parsed (`MULTIPART_FILENAME`).
    pub filenames: Vec<Vec<u8>>,
    /// The flags CRS's strict-multipart rules read.
    pub flags: MultipartFlags,
}

/// Parses a multipart body given the request's `Content-Type` header value. An error is a body
/// ModSecurity refuses (no boundary, ...); flags are set for what it accepts with complaints.
/// The engine should prefer [`parse_multipart_outcome`]: ModSecurity sets the `MULTIPART_*`
/// flags (and part headers) even when it reports an error, which this wrapper drops.
pub fn parse_multipart(
    content_type: &[u8],
    body: &[u8],
    max_args: usize,
) -> Result<Multipart, BodyError> {
    let outcome = parse_multipart_outcome(content_type, body, max_args);
    match outcome.error {
        Some(error) => Err(error),
        None => Ok(outcome.multipart),
    }
}

/// Parses a JSON body into argument pairs named as ModSecurity v3.0.9 names them: `json` for a
/// top-level scalar, `json.key.sub` in objects (`empty-key` for `""`), `json.list.array_0` in
/// arrays; scalars as written (`true`, `2.50e1`), `null` as an empty value.
///
/// ModSecurity adds these to `ARGS` (origin "JSON") but NOT to `ARGS_POST`. On error `out` keeps
/// the pairs found before it, as ModSecurity does, and the message is the full
/// `REQBODY_ERROR_MSG` (`JSON parsing error: parse error: ...\n`). More than `max_args` pairs
/// (the `SecArgumentsLimit` budget left) or more than `max_depth` nested containers
/// (`SecRequestBodyJsonDepthLimit`) is an error, as ModSecurity makes it. An empty body is no error.
pub fn parse_json(
    body: &[u8],
    max_depth: usize,
    max_args: usize,
    out: &mut Vec<Pair>,
) -> Result<(), BodyError> {
    json::parse(body, max_depth, max_args, out)
}

/// A parsed XML document, as much as CRS reads of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XmlDocument {
    /// `XML:/*`: as in ModSecurity (XPath `/*` selects the root element, whose value is its
    /// whole text content: texts and CDATA of all descendants, entities expanded, comments and
    /// processing instructions left out), this holds exactly one value.
    pub texts: Vec<Vec<u8>>,
    /// Every attribute value in document order (`XML://@*`).
    pub attribute_values: Vec<Vec<u8>>,
}

/// Parses an XML body (well-formedness as libxml2 checks it, as far as CRS's rules notice).
/// An empty body is an error, as in ModSecurity; `max_depth` bounds element nesting (pass 257
/// to match libxml2's default limit). External entities are never fetched.
pub fn parse_xml(body: &[u8], max_depth: usize) -> Result<XmlDocument, BodyError> {
    xml::parse(body, max_depth)
}
