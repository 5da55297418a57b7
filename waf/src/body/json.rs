//! JSON request bodies turned into arguments as ModSecurity v3.0.9 does it: its `JSON` body
//! processor (`src/request_body_processor/json.cc`) driving yajl 2.1 (`yajl_lex.c`, `yajl_parser.c`).
//!
//! Hand-written rather than `serde_json` because ModSecurity's results depend on yajl's streaming
//! behaviour, which a tree parser cannot reproduce: arguments seen before a syntax error are kept,
//! numbers are passed as written (`2.50e1`, 30-digit integers), yajl's UTF-8 check is structural
//! only (`\xc0\x80` passes), a lone high surrogate escape becomes `?`, an unterminated string after
//! a complete document is not an error, and every error has yajl's own message. The parser is
//! iterative: its stack is bounded by `max_depth`, its time is linear in the body.

use super::{BodyError, Pair};

/// Why ModSecurity stopped: yajl's "parse error" or "lexical error" texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Parse(&'static str),
    Lexical(&'static str),
    /// A callback refused (argument limit); `depth` says whether the depth limit was the cause.
    Cancelled {
        depth: bool,
    },
}

impl Failure {
    /// `REQBODY_ERROR_MSG` as `Transaction::processRequestBody` builds it from `yajl_get_error`.
    fn message(self) -> String {
        let text = match self {
            Failure::Parse(reason) => format!("parse error: {reason}\n"),
            Failure::Lexical(reason) => format!("lexical error: {reason}\n"),
            Failure::Cancelled { depth: false } => {
                "parse error: client cancelled parse via callback return value\n".to_string()
            }
            Failure::Cancelled { depth: true } => {
                "parse error: client cancelled parse via callback return value\n. Parsing depth limit exceeded"
                    .to_string()
            }
        };
        format!("JSON parsing error: {text}")
    }
}

const INVALID_UTF8: &str = "invalid bytes in UTF8 string.";
const INVALID_ESCAPE: &str = "inside a string, '\\' occurs before a character which it may not.";
const INVALID_STRING_CHAR: &str = "invalid character inside string.";
const INVALID_HEX: &str = "invalid (non-hex) character occurs after '\\u' inside string.";
const INVALID_CHAR: &str = "invalid char in json text.";
const INVALID_LITERAL: &str = "invalid string in json text.";
const NO_EXPONENT_DIGIT: &str = "malformed number, a digit is required after the exponent.";
const NO_FRACTION_DIGIT: &str = "malformed number, a digit is required after the decimal point.";
const NO_INTEGER_DIGIT: &str = "malformed number, a digit is required after the minus sign.";
const COMMENT: &str = "probable comment found in input text, comments are not enabled.";

/// One lexed token.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    OpenObject,
    CloseObject,
    OpenArray,
    CloseArray,
    Comma,
    Colon,
    /// A string's content between the quotes, still escaped.
    String {
        start: usize,
        end: usize,
        escaped: bool,
    },
    /// `true`, `false`, `null` or a number, as written (`null` is passed as an empty value).
    Scalar {
        start: usize,
        end: usize,
    },
    /// The input ended inside a token or before any: yajl asks for more data.
    End,
}

/// The body with the single space `yajl_complete_parse` feeds after it, so numbers and
/// literals at the very end are finished the way yajl finishes them.
struct Lexer<'a> {
    body: &'a [u8],
    offset: usize,
}

impl Lexer<'_> {
    fn at(&self, index: usize) -> Option<u8> {
        match self.body.get(index) {
            Some(&byte) => Some(byte),
            None if index == self.body.len() => Some(b' '),
            None => None,
        }
    }

    fn next(&mut self) -> Result<Token, &'static str> {
        // yajl's white space includes \v and \f.
        while let Some(b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') = self.at(self.offset) {
            self.offset += 1;
        }
        let Some(byte) = self.at(self.offset) else {
            return Ok(Token::End);
        };
        let start = self.offset;
        self.offset += 1;
        Ok(match byte {
            b'{' => Token::OpenObject,
            b'}' => Token::CloseObject,
            b'[' => Token::OpenArray,
            b']' => Token::CloseArray,
            b',' => Token::Comma,
            b':' => Token::Colon,
            b'"' => return self.string(),
            b't' => return self.literal(start, b"rue"),
            b'f' => return self.literal(start, b"alse"),
            b'n' => return self.literal(start, b"ull"),
            b'-' | b'0'..=b'9' => return self.number(start),
            b'/' => return Err(COMMENT),
            _ => return Err(INVALID_CHAR),
        })
    }

    fn literal(&mut self, start: usize, rest: &[u8]) -> Result<Token, &'static str> {
        for &expected in rest {
            match self.at(self.offset) {
                None => return Ok(Token::End),
                Some(byte) if byte == expected => self.offset += 1,
                Some(_) => return Err(INVALID_LITERAL),
            }
        }
        let end = self.offset;
        // null is handed to ModSecurity as an empty value.
        let start = if rest == b"ull" { end } else { start };
        Ok(Token::Scalar { start, end })
    }

    fn digits(&mut self) -> usize {
        let from = self.offset;
        while let Some(b'0'..=b'9') = self.at(self.offset) {
            self.offset += 1;
        }
        self.offset - from
    }

    fn number(&mut self, start: usize) -> Result<Token, &'static str> {
        // `start` holds '-' or the first digit; re-read from there.
        self.offset = start;
        if self.at(self.offset) == Some(b'-') {
            self.offset += 1;
        }
        match self.at(self.offset) {
            Some(b'0') => self.offset += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            None => return Ok(Token::End),
            Some(_) => return Err(NO_INTEGER_DIGIT),
        }
        if self.at(self.offset) == Some(b'.') {
            self.offset += 1;
            if self.digits() == 0 {
                return match self.at(self.offset) {
                    None => Ok(Token::End),
                    Some(_) => Err(NO_FRACTION_DIGIT),
                };
            }
        }
        if let Some(b'e' | b'E') = self.at(self.offset) {
            self.offset += 1;
            if let Some(b'+' | b'-') = self.at(self.offset) {
                self.offset += 1;
            }
            if self.digits() == 0 {
                return match self.at(self.offset) {
                    None => Ok(Token::End),
                    Some(_) => Err(NO_EXPONENT_DIGIT),
                };
            }
        }
        Ok(Token::Scalar {
            start,
            end: self.offset,
        })
    }

    fn string(&mut self) -> Result<Token, &'static str> {
        let start = self.offset;
        let mut escaped = false;
        loop {
            let Some(byte) = self.at(self.offset) else {
                return Ok(Token::End);
            };
            // The sentinel space after the body is not part of any string: an unterminated
            // string at the end is "need more data" for yajl.
            if self.offset >= self.body.len() {
                return Ok(Token::End);
            }
            self.offset += 1;
            match byte {
                b'"' => {
                    return Ok(Token::String {
                        start,
                        end: self.offset - 1,
                        escaped,
                    });
                }
                b'\\' => {
                    escaped = true;
                    let Some(next) = self.body.get(self.offset).copied() else {
                        // Cut by the end: yajl reads the sentinel space next.
                        return Err(INVALID_ESCAPE);
                    };
                    self.offset += 1;
                    match next {
                        b'u' => {
                            for _ in 0..4 {
                                match self.body.get(self.offset) {
                                    Some(b) if b.is_ascii_hexdigit() => self.offset += 1,
                                    Some(_) => return Err(INVALID_HEX),
                                    None => return Err(INVALID_HEX),
                                }
                            }
                        }
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        _ => return Err(INVALID_ESCAPE),
                    }
                }
                0x00..=0x1f => return Err(INVALID_STRING_CHAR),
                0x80..=0xff => {
                    // yajl_lex_utf8_char: the lead byte's shape decides how many continuation
                    // bytes (10xxxxxx) must follow; values are not checked further.
                    let continuation = match byte {
                        0xc0..=0xdf => 1,
                        0xe0..=0xef => 2,
                        0xf0..=0xf7 => 3,
                        _ => return Err(INVALID_UTF8),
                    };
                    for _ in 0..continuation {
                        match self.body.get(self.offset) {
                            Some(b) if b & 0xc0 == 0x80 => self.offset += 1,
                            Some(_) => return Err(INVALID_UTF8),
                            None => return Err(INVALID_UTF8),
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// yajl_string_decode: escapes to bytes; `\uD8xx` followed by another `\u` escape is combined
/// with it without checking that it is a low surrogate; a lone high surrogate becomes `?`.
fn decode_string(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(&byte) = raw.get(i) {
        if byte != b'\\' {
            out.push(byte);
            i += 1;
            continue;
        }
        let escape = raw.get(i + 1).copied().unwrap_or(b'?');
        i += 2;
        let simple = match escape {
            b'r' => b'\r',
            b'n' => b'\n',
            b'b' => b'\x08',
            b'f' => b'\x0c',
            b't' => b'\t',
            b'u' => {
                let mut code = hex4(raw, i);
                i += 4;
                if code & 0xfc00 == 0xd800 {
                    if raw.get(i) == Some(&b'\\') && raw.get(i + 1) == Some(&b'u') {
                        let low = hex4(raw, i + 2);
                        code = ((code & 0x3f) << 10)
                            | ((((code >> 6) & 0xf) + 1) << 16)
                            | (low & 0x3ff);
                        i += 6;
                    } else {
                        out.push(b'?');
                        continue;
                    }
                }
                push_utf8(code, out);
                continue;
            }
            other => other, // `"`, `\`, `/`
        };
        out.push(simple);
    }
}

fn hex4(raw: &[u8], at: usize) -> u32 {
    (0..4).fold(0u32, |code, k| {
        let digit = raw
            .get(at + k)
            .and_then(|b| (*b as char).to_digit(16))
            .unwrap_or(0);
        code << 4 | digit
    })
}

/// yajl's Utf32toUtf8, which encodes surrogates too and gives `?` above 0x1FFFFF.
fn push_utf8(code: u32, out: &mut Vec<u8>) {
    // Each `as u8` keeps the low bits on purpose: the masks make them the encoded bytes.
    if code < 0x80 {
        out.push(code as u8);
    } else if code < 0x800 {
        out.extend_from_slice(&[0xc0 | (code >> 6) as u8, 0x80 | (code & 0x3f) as u8]);
    } else if code < 0x10000 {
        out.extend_from_slice(&[
            0xe0 | (code >> 12) as u8,
            0x80 | ((code >> 6) & 0x3f) as u8,
            0x80 | (code & 0x3f) as u8,
        ]);
    } else if code < 0x20_0000 {
        out.extend_from_slice(&[
            0xf0 | (code >> 18) as u8,
            0x80 | ((code >> 12) & 0x3f) as u8,
            0x80 | ((code >> 6) & 0x3f) as u8,
            0x80 | (code & 0x3f) as u8,
        ]);
    } else {
        out.push(b'?');
    }
}

/// yajl's parser states for the innermost open container (or the document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Complete,
    MapStart,
    MapNeedKey,
    MapSep,
    MapNeedVal,
    MapGotVal,
    ArrayStart,
    ArrayNeedVal,
    ArrayGotVal,
}

/// An open object or array: where its name ends in the path, and its element counter.
struct Container {
    is_array: bool,
    path_len: usize,
    elements: usize,
}

/// The naming state: ModSecurity's `m_containers` and `m_current_key`.
struct Names {
    /// `json` followed by `.name` for every open container below the root.
    path: Vec<u8>,
    containers: Vec<Container>,
    current_key: Vec<u8>,
}

impl Names {
    /// `JSON::getCurrentKey`: `json` at the top; `array_N` in an array; the key, or `empty-key`,
    /// in an object. Appends it to `path` after a dot (no dot at the top).
    fn push_current(&mut self) {
        match self.containers.last_mut() {
            None => self.path.extend_from_slice(b"json"),
            Some(container) => {
                self.path.push(b'.');
                if container.is_array {
                    self.path.extend_from_slice(b"array_");
                    self.path
                        .extend_from_slice(container.elements.to_string().as_bytes());
                    container.elements += 1;
                } else if self.current_key.is_empty() {
                    self.path.extend_from_slice(b"empty-key");
                } else {
                    self.path.extend_from_slice(&self.current_key);
                }
            }
        }
    }
}

/// Parses `body` as ModSecurity's JSON processor does; on error `out` keeps the arguments
/// found before it, as ModSecurity keeps them.
pub(super) fn parse(
    body: &[u8],
    max_depth: usize,
    max_args: usize,
    out: &mut Vec<Pair>,
) -> Result<(), BodyError> {
    // processRequestBody ignores yajl's "premature EOF" for an empty body.
    if body.is_empty() {
        return Ok(());
    }
    run(body, max_depth, max_args, out).map_err(|failure| BodyError {
        message: failure.message(),
    })
}

fn run(body: &[u8], max_depth: usize, max_args: usize, out: &mut Vec<Pair>) -> Result<(), Failure> {
    let mut lexer = Lexer { body, offset: 0 };
    let mut states = vec![State::Start];
    let mut names = Names {
        path: Vec::new(),
        containers: Vec::new(),
        current_key: Vec::new(),
    };
    let mut added = 0usize;
    loop {
        let state = states.last().copied().unwrap_or(State::Complete);
        if state == State::Complete {
            // After the document yajl only asks whether another token starts: anything but the
            // end (even a lexical error, but not an unterminated string) is trailing garbage.
            return match lexer.next() {
                Ok(Token::End) => Ok(()),
                _ => Err(Failure::Parse("trailing garbage")),
            };
        }
        let token = lexer.next().map_err(Failure::Lexical)?;
        if token == Token::End {
            return match state {
                State::Complete => Ok(()),
                _ => Err(Failure::Parse("premature EOF")),
            };
        }
        match state {
            State::Complete => return Ok(()),
            State::MapStart | State::MapNeedKey => match token {
                Token::String {
                    start,
                    end,
                    escaped,
                } => {
                    names.current_key.clear();
                    copy_string(body, start, end, escaped, &mut names.current_key);
                    set_top(&mut states, State::MapSep);
                }
                Token::CloseObject if state == State::MapStart => close(&mut states, &mut names),
                _ => return Err(Failure::Parse("invalid object key (must be a string)")),
            },
            State::MapSep => match token {
                Token::Colon => set_top(&mut states, State::MapNeedVal),
                _ => {
                    return Err(Failure::Parse(
                        "object key and value must be separated by a colon (':')",
                    ))
                }
            },
            State::MapGotVal => match token {
                Token::CloseObject => close(&mut states, &mut names),
                Token::Comma => set_top(&mut states, State::MapNeedKey),
                _ => {
                    return Err(Failure::Parse(
                        "after key and value, inside map, I expect ',' or '}'",
                    ))
                }
            },
            State::ArrayGotVal => match token {
                Token::CloseArray => close(&mut states, &mut names),
                Token::Comma => set_top(&mut states, State::ArrayNeedVal),
                _ => return Err(Failure::Parse("after array element, I expect ',' or ']'")),
            },
            State::Start | State::MapNeedVal | State::ArrayStart | State::ArrayNeedVal => {
                let opens = match token {
                    Token::CloseArray if state == State::ArrayStart => {
                        close(&mut states, &mut names);
                        continue;
                    }
                    Token::String {
                        start,
                        end,
                        escaped,
                    } => {
                        let mut value = Vec::new();
                        copy_string(body, start, end, escaped, &mut value);
                        add_argument(&mut names, value, &mut added, max_args, out)?;
                        None
                    }
                    Token::Scalar { start, end } => {
                        let value = body.get(start..end).unwrap_or_default().to_vec();
                        add_argument(&mut names, value, &mut added, max_args, out)?;
                        None
                    }
                    Token::OpenObject => Some(false),
                    Token::OpenArray => Some(true),
                    _ => return Err(Failure::Parse("unallowed token at this point in JSON text")),
                };
                // yajl moves the enclosing state to "got a value" before it pushes a container.
                set_top(&mut states, got_value(state));
                if let Some(is_array) = opens {
                    if names.containers.len() >= max_depth {
                        return Err(Failure::Cancelled { depth: true });
                    }
                    let path_len = names.path.len();
                    names.push_current();
                    names.containers.push(Container {
                        is_array,
                        path_len,
                        elements: 0,
                    });
                    states.push(if is_array {
                        State::ArrayStart
                    } else {
                        State::MapStart
                    });
                }
            }
        }
    }
}

fn got_value(state: State) -> State {
    match state {
        State::Start => State::Complete,
        State::MapNeedVal => State::MapGotVal,
        _ => State::ArrayGotVal,
    }
}

fn set_top(states: &mut [State], state: State) {
    if let Some(top) = states.last_mut() {
        *top = state;
    }
}

fn close(states: &mut Vec<State>, names: &mut Names) {
    states.pop();
    if let Some(container) = names.containers.pop() {
        names.path.truncate(container.path_len);
    }
}

fn copy_string(body: &[u8], start: usize, end: usize, escaped: bool, out: &mut Vec<u8>) {
    let raw = body.get(start..end).unwrap_or_default();
    if escaped {
        decode_string(raw, out);
    } else {
        out.extend_from_slice(raw);
    }
}

/// `JSON::addArgument` → `Transaction::addArgument("JSON", ...)`: over the limit the callback
/// refuses, and yajl reports the cancellation as the body's error.
fn add_argument(
    names: &mut Names,
    value: Vec<u8>,
    added: &mut usize,
    max_args: usize,
    out: &mut Vec<Pair>,
) -> Result<(), Failure> {
    let path_len = names.path.len();
    names.push_current();
    let name = names.path.clone();
    names.path.truncate(path_len);
    if *added >= max_args {
        return Err(Failure::Cancelled { depth: false });
    }
    *added += 1;
    out.push((name, value));
    Ok(())
}
