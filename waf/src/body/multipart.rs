//! `multipart/form-data` bodies parsed as ModSecurity v3.0.9 parses them
//! (`src/request_body_processor/multipart.cc`: `init`, `process`, `process_part_header`,
//! `process_part_data`, `process_boundary`, `multipart_complete`), quirks included.
//!
//! Hand-written: no crate reproduces ModSecurity's line buffer (4096 bytes), its strict-multipart
//! flags or its quirks, which CRS's rules and the `REQBODY_ERROR` decision depend on:
//! - most part errors (missing Content-Disposition, a header line without a colon, a NUL byte)
//!   set the error message but parsing goes on, still in the part's headers;
//! - a boundary line seen before any data of the current part is "data contains boundary": it is
//!   not a boundary (`MULTIPART_INVALID_PART`) and is parsed as a header or data line;
//! - the line break before the next line of a text field is dropped (`a\r\nb` gives `ab`), while
//!   file sizes count it;
//! - `MULTIPART_UNMATCHED_BOUNDARY` is 2 once a boundary matched after the first one;
//! - when the final boundary is missing, the message is "Final boundary missing." whatever
//!   error came first, and no argument or file is added at all.
//!
//! Every step is linear in the body except the re-parsing of a Content-Disposition header on
//! each blank header line, which a hostile body could make quadratic: it is bounded by a work
//! budget, past which the body is refused (see [`CD_WORK_PER_BODY_BYTE`]).

use std::collections::HashMap;

use super::{BodyError, FilePart, Multipart, Pair};

/// ModSecurity's `MULTIPART_BUF_SIZE`: lines are handled in pieces of at most this many bytes.
const BUF_SIZE: usize = 4096;

/// Content-Disposition parsing may read at most this many bytes per body byte in total.
/// ModSecurity has no such limit; only a body that re-parses a folded, multi-kilobyte header on
/// thousands of blank lines reaches it.
pub const CD_WORK_PER_BODY_BYTE: usize = 16;

/// The full result: what ModSecurity sets even when it also reports an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultipartOutcome {
    /// Arguments, files, part headers, names and flags as ModSecurity sets them. When
    /// `error` is set, these still hold what ModSecurity had set (flags always; part headers and
    /// names seen so far; arguments and files only if the final boundary was reached).
    pub multipart: Multipart,
    /// `REQBODY_ERROR_MSG` (`Multipart parsing error: Multipart: ...`) when ModSecurity sets
    /// `REQBODY_ERROR` to 1.
    pub error: Option<BodyError>,
    /// More than `max_args` fields, files or names were found; the extra ones were not kept.
    pub truncated: bool,
}

/// C's `isspace` in the "C" locale.
fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// The bytes before the first NUL: what C string functions see.
fn c_str(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(nul) => &bytes[..nul],
        None => bytes,
    }
}

/// `utils::string::chomp`: strips trailing CR and LF, unless the string is made only of them.
fn chomp(value: &mut Vec<u8>) {
    if let Some(last) = value.iter().rposition(|&b| b != b'\n' && b != b'\r') {
        value.truncate(last + 1);
    }
}

/// `count_boundary_params`: occurrences of `boundary` (any case) followed somewhere by `=`.
fn count_boundary_params(header: &[u8]) -> usize {
    let lower = c_str(header).to_ascii_lowercase();
    let mut count = 0;
    let mut from = 0;
    while let Some(found) = find(&lower[from..], b"boundary") {
        from += found + 8;
        if lower[from..].contains(&b'=') {
            count += 1;
        }
    }
    count
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// RFC 2046 boundary characters as `boundary_characters_valid` allows them.
fn boundary_characters_valid(boundary: &[u8]) -> bool {
    boundary.iter().enumerate().all(|(i, &c)| {
        c.is_ascii_alphanumeric()
            || (c == b' ' && i + 1 < boundary.len())
            || b"'()+_,-./:=?".contains(&c)
    })
}

/// `is_token_char` for unquoted Content-Disposition parameter values.
fn is_token_char(c: u8) -> bool {
    c > 32 && c < 127 && !b"()<>@,;:\\\"/[]?=".contains(&c)
}

/// Characters RFC 5987 allows in a charset name (`mime_charset_special`).
const MIME_CHARSET_SPECIAL: &[u8] = b"!#$%&+-^_`{}~";
/// Characters RFC 5987 allows unencoded in a value (`attr_char_special`).
const ATTR_CHAR_SPECIAL: &[u8] = b"!#$&+-.^_`|~";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartKind {
    Unknown,
    File,
    FormData,
}

/// The header line ModSecurity is about to record for `MULTIPART_PART_HEADERS`.
#[derive(Debug, Clone)]
enum PendingLine {
    None,
    /// The line as received, line ending included.
    Raw(Vec<u8>),
    /// A folded header: `name: value`, the value's first `len` bytes (values only grow).
    Folded {
        name: Vec<u8>,
        len: usize,
    },
}

#[derive(Debug)]
struct Part {
    name: Vec<u8>,
    filename: Vec<u8>,
    kind: PartKind,
    /// Header values by lower-cased name: ModSecurity's map compares names case-insensitively.
    headers: HashMap<Vec<u8>, Vec<u8>>,
    last_header_name: Vec<u8>,
    last_header_line: PendingLine,
    header_lines: Vec<Vec<u8>>,
    value: Vec<u8>,
    file_size: u64,
}

impl Part {
    fn new() -> Self {
        Part {
            name: Vec::new(),
            filename: Vec::new(),
            kind: PartKind::Unknown,
            headers: HashMap::new(),
            last_header_name: Vec::new(),
            last_header_line: PendingLine::None,
            header_lines: Vec::new(),
            value: Vec::new(),
            file_size: 0,
        }
    }

    /// "record the previous completed header".
    fn record_pending_line(&mut self) {
        let line = match std::mem::replace(&mut self.last_header_line, PendingLine::None) {
            PendingLine::None => return,
            PendingLine::Raw(line) => line,
            PendingLine::Folded { name, len } => {
                let value = self
                    .headers
                    .get(&name.to_ascii_lowercase())
                    .map(|v| &v[..len.min(v.len())])
                    .unwrap_or_default();
                let mut line = name;
                line.extend_from_slice(b": ");
                line.extend_from_slice(value);
                line
            }
        };
        if !line.is_empty() {
            self.header_lines.push(line);
        }
    }
}

/// A fatal error inside `process`: ModSecurity stops reading the body.
struct Stop;

struct Parser {
    boundary: Vec<u8>,
    max_args: usize,
    cd_budget: usize,
    buf: Vec<u8>,
    buf_contains_line: bool,
    part: Option<Part>,
    in_data: bool,
    data_read: bool,
    reserve: u8,
    boundary_count: usize,
    is_complete: bool,
    seen_data: bool,
    crlf_state: u8,
    crlf_state_buf_end: u8,
    lf_line: bool,
    crlf_line: bool,
    unmatched_boundary: u8,
    parts: Vec<Part>,
    error: Option<String>,
    out: Multipart,
    truncated: bool,
}

/// Parses a multipart body; see [`MultipartOutcome`].
pub fn parse_multipart_outcome(
    content_type: &[u8],
    body: &[u8],
    max_args: usize,
) -> MultipartOutcome {
    let mut parser = Parser {
        boundary: Vec::new(),
        max_args,
        cd_budget: body
            .len()
            .saturating_mul(CD_WORK_PER_BODY_BYTE)
            .max(BUF_SIZE * 4),
        buf: Vec::with_capacity(BUF_SIZE),
        buf_contains_line: true,
        part: None,
        in_data: false,
        data_read: false,
        reserve: 0,
        boundary_count: 0,
        is_complete: false,
        seen_data: false,
        crlf_state: 0,
        crlf_state_buf_end: 0,
        lf_line: false,
        crlf_line: false,
        unmatched_boundary: 0,
        parts: Vec::new(),
        error: None,
        out: Multipart::default(),
        truncated: false,
    };
    // Transaction::processRequestBody calls multipart_complete whatever init and process say.
    if parser.init(content_type) {
        let _ = parser.process(body);
    }
    parser.complete();
    let Parser {
        mut out,
        error,
        truncated,
        lf_line,
        crlf_line,
        unmatched_boundary,
        ..
    } = parser;
    out.flags.lf_line = lf_line;
    out.flags.crlf_lf_lines = lf_line && crlf_line;
    out.flags.unmatched_boundary = unmatched_boundary == 1;
    out.flags.unmatched_boundary_value = unmatched_boundary;
    MultipartOutcome {
        multipart: out,
        error: error.map(|message| BodyError {
            message: format!("Multipart parsing error: {message}"),
        }),
        truncated,
    }
}

impl Parser {
    fn fail(&mut self, message: impl Into<String>) {
        self.error = Some(message.into());
    }

    /// `Multipart::init`: the boundary from the Content-Type header. `false` stops the parse.
    fn init(&mut self, header: &[u8]) -> bool {
        let fatal = |this: &mut Self, message: &str| {
            this.out.flags.processor_error = true;
            this.fail(message);
            false
        };
        if header.is_empty() {
            return fatal(self, "Multipart: Content-Type header not available.");
        }
        if header.len() > 1024 {
            return fatal(self, "Multipart: Invalid boundary in C-T (length).");
        }
        let text = c_str(header);
        if text.len() < 19 || !text[..19].eq_ignore_ascii_case(b"multipart/form-data") {
            return fatal(self, "Multipart: Invalid MIME type.");
        }
        if count_boundary_params(header) > 1 {
            return fatal(self, "Multipart: Multiple boundary parameters in C-T.");
        }
        let Some(at) = find(text, b"boundary") else {
            if count_boundary_params(header) > 0 {
                return fatal(
                    self,
                    "Multipart: Invalid boundary in C-T (case sensitivity).",
                );
            }
            return fatal(self, "Multipart: Boundary not found in C-T.");
        };
        let mut seen_semicolon = false;
        for &c in text.get(19..at).unwrap_or_default() {
            if !is_c_space(c) {
                if !seen_semicolon && c == b';' {
                    seen_semicolon = true;
                } else {
                    return fatal(self, "Multipart: Invalid boundary in C-T (malformed).");
                }
            }
        }
        if !seen_semicolon {
            self.out.flags.missing_semicolon = true;
        }
        let after_name = at + 8;
        let Some(equals) = text[after_name..]
            .iter()
            .position(|&b| b == b'=')
            .map(|p| p + after_name)
        else {
            return fatal(self, "Multipart: Invalid boundary in C-T (malformed).");
        };
        for &c in &text[after_name..equals] {
            if is_c_space(c) {
                self.out.flags.boundary_whitespace = true;
            } else {
                return fatal(self, "Multipart: Invalid boundary in C-T (parameter name).");
            }
        }
        let value = &text[equals + 1..];
        if value.first().is_some_and(|&c| is_c_space(c)) {
            self.out.flags.boundary_whitespace = true;
        }
        let len = value.len();
        let mut boundary = if len >= 2 && value[0] == b'"' && value[len - 1] == b'"' {
            let inner = &value[1..len - 1];
            if inner.is_empty() {
                // ModSecurity gives up without a message.
                return false;
            }
            self.out.flags.boundary_quoted = true;
            inner.to_vec()
        } else {
            if value.first() == Some(&b'"') || (len >= 2 && value[len - 1] == b'"') {
                return fatal(self, "Multipart: Invalid boundary in C-T (quote).");
            }
            if value.is_empty() {
                return false;
            }
            value.to_vec()
        };
        if count_boundary_params(&boundary) != 0 {
            return fatal(self, "Multipart: Invalid boundary in C-T (content).");
        }
        // Tolerated: a parameter such as charset= after the boundary.
        if !boundary_characters_valid(&boundary) {
            if let Some(semicolon) = boundary.iter().position(|&b| b == b';') {
                boundary.truncate(semicolon);
            }
        }
        if !boundary_characters_valid(&boundary) {
            return fatal(self, "Multipart: Invalid boundary in C-T (characters).");
        }
        if boundary.is_empty() {
            return fatal(self, "Multipart: Invalid boundary in C-T (empty).");
        }
        self.boundary = boundary;
        true
    }

    /// `Multipart::process` over the whole body, line by line as its buffer cuts them.
    fn process(&mut self, data: &[u8]) -> Result<(), Stop> {
        if data.is_empty() {
            return Ok(());
        }
        self.seen_data = true;
        let mut i = 0;
        while let Some(&c) = data.get(i) {
            let mut process_buffer = false;
            if c == b'\r' && self.buf.len() == BUF_SIZE - 1 {
                // A CR is never the last byte of a full buffer.
                process_buffer = true;
            } else {
                self.buf.push(c);
                i += 1;
            }
            if c == b'\n' || self.buf.len() == BUF_SIZE || process_buffer {
                self.line(process_buffer)?;
                self.buf.clear();
                self.buf_contains_line = c == b'\n';
                if c == b'\n' {
                    self.crlf_state = if self.crlf_state == 1 { 3 } else { 2 };
                }
                self.crlf_state_buf_end = self.crlf_state;
            }
            if c == b'\r' {
                self.crlf_state = 1;
            } else if c != b'\n' {
                self.crlf_state = 0;
            }
            if self.is_complete && i < data.len() {
                self.out.flags.data_after = true;
                return Ok(());
            }
        }
        Ok(())
    }

    /// One buffer's worth: a boundary, a part header line, part data, or data outside parts.
    fn line(&mut self, process_buffer: bool) -> Result<(), Stop> {
        let mut processed_as_boundary = false;
        match self.classify() {
            LineKind::Other => {}
            LineKind::Resembles => self.unmatched_boundary = 1,
            LineKind::Unmatched { quoted, spaced } => {
                if quoted {
                    self.out.flags.processor_error = true;
                    self.fail("Multipart: Invalid boundary (quotes).");
                    return Err(Stop);
                }
                if spaced {
                    self.out.flags.processor_error = true;
                    self.fail("Multipart: Invalid boundary (whitespace).");
                    return Err(Stop);
                }
                self.unmatched_boundary = 1;
            }
            LineKind::Boundary { is_final, ending } => {
                if self.crlf_state_buf_end == 2 {
                    self.lf_line = true;
                }
                if !self.data_read && self.boundary_count > 0 {
                    // "Invalid part (data contains boundary)": the line is not a boundary.
                    self.out.flags.invalid_part = true;
                } else {
                    if self.boundary_count > 0 {
                        self.unmatched_boundary = 2;
                    }
                    if is_final && self.is_complete {
                        self.out.flags.processor_error = true;
                        self.fail("Multipart: Invalid boundary (final duplicate).");
                        return Err(Stop);
                    }
                    match ending {
                        Some(lf) => {
                            if lf {
                                self.lf_line = true;
                            } else {
                                self.crlf_line = true;
                            }
                            self.process_boundary(is_final);
                            if is_final {
                                self.is_complete = true;
                            }
                            processed_as_boundary = true;
                            self.boundary_count += 1;
                        }
                        None => {
                            let message = format!(
                                "Multipart: Invalid boundary: {}",
                                String::from_utf8_lossy(c_str(&self.buf))
                            );
                            self.out.flags.processor_error = true;
                            self.fail(message);
                            return Err(Stop);
                        }
                    }
                }
            }
        }
        if !processed_as_boundary {
            if self.part.is_none() {
                self.out.flags.data_before = true;
            } else if !self.in_data {
                if self.buf.len() == BUF_SIZE || process_buffer {
                    self.out.flags.processor_error = true;
                    self.fail(format!(
                        "Multipart: Part header line over {BUF_SIZE} bytes long"
                    ));
                    return Err(Stop);
                }
                self.part_header()?;
            } else {
                self.part_data();
            }
        }
        Ok(())
    }

    /// What the buffered line is, as `process` tests it (C string view: up to the first NUL).
    fn classify(&self) -> LineKind {
        let boundary = &self.boundary[..];
        let text = c_str(&self.buf);
        let at = |k: usize| text.get(k).copied().unwrap_or(0);
        if !self.buf_contains_line {
            return LineKind::Other;
        }
        if text.len() > 3 && text.starts_with(b"--") {
            if text.len() >= boundary.len() + 2 && text[2..].starts_with(boundary) {
                let mut end = 2 + boundary.len();
                let is_final = at(end) == b'-' && at(end + 1) == b'-';
                if is_final {
                    end += 2;
                }
                let ending = if at(end) == b'\r' && at(end + 1) == b'\n' && at(end + 2) == 0 {
                    Some(false)
                } else if at(end) == b'\n' && at(end + 1) == 0 {
                    Some(true)
                } else {
                    None
                };
                return LineKind::Boundary { is_final, ending };
            }
            let quoted = self.out.flags.boundary_quoted
                && text.len() >= boundary.len() + 3
                && text[2] == b'"'
                && text[3..].starts_with(boundary);
            let spaces = text[2..].iter().take_while(|&&b| is_c_space(b)).count();
            let spaced = spaces > 0 && text[2 + spaces..].starts_with(boundary);
            return LineKind::Unmatched { quoted, spaced };
        }
        // Anything resembling a boundary inside the line (the whole buffer, NULs included)?
        let mut needle = Vec::with_capacity(boundary.len() + 2);
        needle.extend_from_slice(b"--");
        needle.extend_from_slice(boundary);
        if find(&self.buf, &needle).is_some() {
            LineKind::Resembles
        } else {
            LineKind::Other
        }
    }

    /// `process_part_header`: a header line, a folded continuation, or the blank line that ends
    /// the headers. Its errors set the message but do not stop the parse.
    fn part_header(&mut self) -> Result<(), Stop> {
        let Some(mut part) = self.part.take() else {
            return Ok(());
        };
        let result = self.part_header_of(&mut part);
        self.part = Some(part);
        result
    }

    fn part_header_of(&mut self, part: &mut Part) -> Result<(), Stop> {
        let buf = std::mem::take(&mut self.buf);
        let result = self.header_line(part, &buf);
        self.buf = buf;
        result
    }

    fn header_line(&mut self, part: &mut Part, buf: &[u8]) -> Result<(), Stop> {
        if buf.contains(&0) {
            self.fail("Multipart: Nul byte in part headers.");
            return Ok(());
        }
        let len = buf.len();
        if len > 1 && buf[len - 2] == b'\r' {
            self.crlf_line = true;
        } else {
            self.lf_line = true;
        }
        if buf == b"\r\n" || buf == b"\n" {
            part.record_pending_line();
            let Some(disposition) = part.headers.get(b"content-disposition".as_slice()).cloned()
            else {
                self.fail("Multipart: Part missing Content-Disposition header.");
                return Ok(());
            };
            if self.cd_budget < disposition.len() {
                // Our bound on pathological input: see CD_WORK_PER_BODY_BYTE.
                self.out.flags.processor_error = true;
                self.fail("Multipart: Content-Disposition parsing over its work limit.");
                return Err(Stop);
            }
            self.cd_budget -= disposition.len();
            let rc = self.content_disposition(part, &disposition);
            if rc < 0 {
                self.fail(format!(
                    "Multipart: Invalid Content-Disposition header ({rc}): {}",
                    String::from_utf8_lossy(&disposition)
                ));
                return Ok(());
            }
            if part.name.is_empty() {
                self.fail("Multipart: Content-Disposition header missing name field.");
                return Ok(());
            }
            if !part.filename.is_empty() {
                if find(c_str(&disposition), b"filename=").is_none() {
                    self.fail("Multipart: Invalid Content-Disposition header (filename).");
                    return Ok(());
                }
                part.kind = PartKind::File;
            } else {
                part.kind = PartKind::FormData;
            }
            self.in_data = true;
            self.data_read = false;
            part.last_header_name.clear();
        } else if is_c_space(buf[0]) {
            self.out.flags.header_folding = true;
            if buf[0] != b'\t' && buf[0] != b' ' {
                self.out.flags.invalid_header_folding = true;
            }
            if part.last_header_name.is_empty() {
                self.fail("Multipart: Invalid part header (folding error).");
                return Ok(());
            }
            let skip = buf.iter().take_while(|&&b| is_c_space(b)).count();
            if buf[..skip].iter().any(|&b| b != b'\t' && b != b' ') {
                self.out.flags.invalid_header_folding = true;
            }
            let mut continuation = buf[skip..].to_vec();
            chomp(&mut continuation);
            let name = part.last_header_name.clone();
            let Some(value) = part.headers.get_mut(&name.to_ascii_lowercase()) else {
                return Ok(());
            };
            let previous_len = value.len();
            value.push(b' ');
            value.extend_from_slice(&continuation);
            if value.len() > BUF_SIZE {
                self.fail("Multipart: Part header too long.");
                // ModSecurity keeps the longer value but not the new header line.
                if let PendingLine::Folded { len, .. } = &mut part.last_header_line {
                    *len = (*len).min(previous_len);
                }
                return Ok(());
            }
            part.last_header_line = PendingLine::Folded {
                name,
                len: value.len(),
            };
        } else {
            part.record_pending_line();
            let Some(colon) = buf.iter().position(|&b| b == b':') else {
                self.fail(format!(
                    "Multipart: Invalid part header (colon missing): {}",
                    String::from_utf8_lossy(buf)
                ));
                return Ok(());
            };
            if colon == 0 {
                self.fail("Multipart: Invalid part header (header name missing).");
                return Ok(());
            }
            let name = buf[..colon].to_vec();
            let start = colon
                + 1
                + buf[colon + 1..]
                    .iter()
                    .take_while(|&&b| b == b' ' || b == b'\t')
                    .count();
            let mut value = buf[start..].to_vec();
            chomp(&mut value);
            let key = name.to_ascii_lowercase();
            if part.headers.contains_key(&key) {
                // "Duplicate part header": ignored without a message.
                return Ok(());
            }
            part.last_header_name = name;
            part.headers.insert(key, value);
            part.last_header_line = PendingLine::Raw(buf.to_vec());
        }
        Ok(())
    }

    fn push_name(&mut self, list: NameList, value: &[u8]) {
        let target = match list {
            NameList::Name => &mut self.out.names,
            NameList::Filename => &mut self.out.filenames,
        };
        if target.len() < self.max_args {
            target.push(value.to_vec());
        } else {
            self.truncated = true;
        }
    }

    /// `parse_content_disposition`: 1 when understood, a negative code as ModSecurity numbers it.
    fn content_disposition(&mut self, part: &mut Part, header: &[u8]) -> i32 {
        let text = c_str(header);
        let at = |k: usize| text.get(k).copied().unwrap_or(0);
        if !text.starts_with(b"form-data") {
            return -1;
        }
        let mut p = 9;
        while at(p) == b'\t' || at(p) == b' ' {
            p += 1;
        }
        if at(p) == 0 {
            return 1;
        }
        if at(p) != b';' {
            return -2;
        }
        p += 1;
        let mut filename_star: Vec<u8> = Vec::new();
        while at(p) != 0 {
            while at(p) == b'\t' || at(p) == b' ' {
                p += 1;
            }
            if at(p) == 0 {
                return -3;
            }
            let start = p;
            while at(p) != 0 && at(p) != b'=' && at(p) != b'\t' && at(p) != b' ' {
                p += 1;
            }
            if at(p) == 0 {
                return -4;
            }
            let name = &text[start..p];
            while at(p) == b'\t' || at(p) == b' ' {
                p += 1;
            }
            if at(p) == 0 {
                return -5;
            }
            if at(p) != b'=' {
                return -13;
            }
            p += 1;
            while at(p) == b'\t' || at(p) == b' ' {
                p += 1;
            }
            if at(p) == 0 {
                return -6;
            }
            let mut quote = 0u8;
            let mut unterminated = false;
            let mut value = Vec::new();
            if name == b"filename*" {
                // filename*=charset'[language]'value (RFC 5987)
                let charset_start = p;
                while at(p) != 0
                    && (at(p).is_ascii_alphanumeric() || MIME_CHARSET_SPECIAL.contains(&at(p)))
                {
                    p += 1;
                }
                if at(p) != b'\'' || p == charset_start {
                    return -16;
                }
                p += 1;
                while at(p) != 0 && at(p) != b'\'' {
                    p += 1;
                }
                if at(p) != b'\'' {
                    return -17;
                }
                p += 1;
                let value_start = p;
                while at(p) != 0 && at(p) != b';' {
                    if at(p) == b'%' {
                        if !at(p + 1).is_ascii_hexdigit() || !at(p + 2).is_ascii_hexdigit() {
                            return -18;
                        }
                        p += 3;
                    } else if at(p).is_ascii_alphanumeric() || ATTR_CHAR_SPECIAL.contains(&at(p)) {
                        p += 1;
                    } else {
                        return -19;
                    }
                }
                value.extend_from_slice(&text[value_start..p]);
            } else if at(p) == b'"' || at(p) == b'\'' {
                quote = at(p);
                if quote == b'\'' {
                    self.out.flags.invalid_quoting = true;
                }
                p += 1;
                if at(p) == 0 {
                    return -7;
                }
                while at(p) != 0 {
                    if at(p) == b'\\' {
                        if at(p + 1) == 0 {
                            return -8;
                        }
                        // Only the quote and the backslash are escapes; others pass as they are.
                        if at(p + 1) == quote || at(p + 1) == b'\\' {
                            p += 1;
                        }
                    } else if at(p) == quote {
                        break;
                    }
                    value.push(at(p));
                    p += 1;
                }
                // ModSecurity steps over the closing quote, or past the string's terminator when
                // there is none, and then reads the byte beyond it: undefined behaviour. Against
                // libmodsecurity 3.0.9 about half such headers were accepted, half refused (that
                // byte was 0 or not). We refuse (-12, as for a bad character after a value):
                // it fails closed and is what ModSecurity does when that byte is not 0.
                unterminated = at(p) == 0;
                p += 1;
            } else {
                let start = p;
                while at(p) != 0 && is_token_char(at(p)) {
                    p += 1;
                }
                value.extend_from_slice(&text[start..p]);
            }
            if name == b"name" {
                self.validate_quotes(&value, quote);
                self.push_name(NameList::Name, &value);
                if !part.name.is_empty() {
                    return -14;
                }
                part.name = value;
            } else if name == b"filename" {
                self.validate_quotes(&value, quote);
                self.push_name(NameList::Filename, &value);
                if !part.filename.is_empty() {
                    return -15;
                }
                part.filename = value;
            } else if name == b"filename*" {
                if !filename_star.is_empty() {
                    return -20;
                }
                filename_star = value;
            } else {
                return -11;
            }
            if unterminated {
                return -12;
            }
            if at(p) != 0 {
                while at(p) == b'\t' || at(p) == b' ' {
                    p += 1;
                }
                if at(p) != 0 {
                    if at(p) != b';' {
                        if p > 0 && (text[p - 1] == b'\'' || text[p - 1] == b'"') {
                            self.out.flags.invalid_quoting = true;
                        }
                        return -12;
                    }
                    p += 1;
                }
            }
        }
        if !filename_star.is_empty() && part.filename.is_empty() {
            return -21;
        }
        1
    }

    /// `validate_quotes`: a single quote inside a value not enclosed in double quotes.
    fn validate_quotes(&mut self, value: &[u8], quote: u8) {
        if quote != b'"' && c_str(value).contains(&b'\'') {
            self.out.flags.invalid_quoting = true;
        }
    }

    /// `process_part_data`: the line's trailing CRLF or LF is held back; for a file it counts
    /// when more data follows, for a text field it is dropped (ModSecurity overwrites it).
    fn part_data(&mut self) {
        self.data_read = true;
        let Some(part) = self.part.as_mut() else {
            return;
        };
        let len = self.buf.len();
        let reserved: u8 = if self.buf.ends_with(b"\r\n") {
            2
        } else if self.buf.ends_with(b"\n") {
            1
        } else {
            0
        };
        let data = &self.buf[..len - usize::from(reserved)];
        match part.kind {
            PartKind::File => {
                part.file_size += data.len() as u64 + u64::from(self.reserve);
            }
            PartKind::FormData => part.value.extend_from_slice(data),
            PartKind::Unknown => {}
        }
        self.reserve = reserved;
    }

    /// `process_boundary`: finishes the current part and, unless final, starts the next.
    fn process_boundary(&mut self, last: bool) {
        if let Some(mut part) = self.part.take() {
            for line in std::mem::take(&mut part.header_lines) {
                self.out.part_headers.push((part.name.clone(), line));
            }
            if part.name.is_empty() {
                self.out.flags.invalid_part = true;
            } else {
                self.parts.push(part);
            }
        }
        if !last {
            self.part = Some(Part::new());
            self.in_data = false;
            self.data_read = false;
            self.reserve = 0;
        }
    }

    /// `multipart_complete`: the final boundary check, then arguments and files.
    fn complete(&mut self) {
        if self.seen_data && !self.is_complete {
            if self.boundary_count == 0 {
                self.fail("Multipart: No boundaries found in payload.");
                return;
            }
            let n = self.boundary.len();
            if self.buf_contains_line
                && self.buf.len() == 4 + n
                && self.buf.starts_with(b"--")
                && self.buf[2..2 + n] == self.boundary[..]
                && self.buf.ends_with(b"--")
            {
                if self.crlf_state_buf_end == 2 {
                    self.lf_line = true;
                }
                if !self.data_read {
                    // "Invalid part (data contains final boundary)", processed all the same.
                    self.out.flags.invalid_part = true;
                }
                self.process_boundary(true);
                self.is_complete = true;
            }
            if !self.is_complete {
                self.fail("Multipart: Final boundary missing.");
                return;
            }
        }
        for part in std::mem::take(&mut self.parts) {
            if self.out.args.len() + self.out.files.len() >= self.max_args {
                self.truncated = true;
                break;
            }
            match part.kind {
                PartKind::File => self.out.files.push(FilePart {
                    name: part.name,
                    filename: part.filename,
                    size: part.file_size,
                }),
                _ => self.out.args.push((part.name, part.value) as Pair),
            }
        }
    }
}

/// How `process` sees a buffered line.
enum LineKind {
    /// Not boundary-like.
    Other,
    /// Contains `--boundary` somewhere inside.
    Resembles,
    /// Starts with `--` but not with our boundary; flags fatal quoting/white-space attempts.
    Unmatched { quoted: bool, spaced: bool },
    /// Starts with `--boundary`: final or not, and its line ending (`Some(true)` for LF,
    /// `Some(false)` for CRLF, `None` for anything else, which is fatal).
    Boundary {
        is_final: bool,
        ending: Option<bool>,
    },
}

#[derive(Clone, Copy)]
enum NameList {
    Name,
    Filename,
}
