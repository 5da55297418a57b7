//! A minimal HTTP/1.1 client whose connection leaves from a chosen loopback source address
//! (`127.0.0.2`, `127.0.0.3`, …, `::1`), so one test can be several peers.

use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// One request (sent with `connection: close`).
#[derive(Debug, Clone)]
pub struct Request {
    source: IpAddr,
    method: String,
    path: String,
    host: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// Send the body with `transfer-encoding: chunked`, in chunks of this size.
    chunk_size: Option<usize>,
}

impl Request {
    /// `GET path` from 127.0.0.1 with `host: example.com`.
    pub fn get(path: &str) -> Request {
        Request {
            source: IpAddr::from([127, 0, 0, 1]),
            method: "GET".into(),
            path: path.into(),
            host: "example.com".into(),
            headers: Vec::new(),
            body: None,
            chunk_size: None,
        }
    }

    /// `POST path` with `body` and `content-type` (sent with `content-length`).
    pub fn post(path: &str, content_type: &str, body: &[u8]) -> Request {
        let mut r = Request::get(path).header("content-type", content_type);
        r.method = "POST".into();
        r.body = Some(body.to_vec());
        r
    }

    /// Sets the method (sent as written: `PUT`, `get`, `PROPFIND`, …).
    pub fn method(mut self, method: &str) -> Request {
        self.method = method.into();
        self
    }

    /// Sends the body with `transfer-encoding: chunked`, `size` bytes per chunk.
    pub fn chunked(mut self, size: usize) -> Request {
        self.chunk_size = Some(size.max(1));
        self
    }

    /// Connects from this loopback address.
    pub fn from(mut self, source: &str) -> Request {
        let ip: IpAddr = source.parse().expect("a source IP address");
        assert!(
            ip.is_loopback(),
            "{ip} is not a loopback address: tests stay on loopback"
        );
        self.source = ip;
        self
    }

    /// Sets the `host` header.
    pub fn host(mut self, host: &str) -> Request {
        self.host = host.into();
        self
    }

    /// Adds a header (may repeat).
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends the request to `to` and reads the whole response; panics on I/O errors.
    pub fn send(&self, to: SocketAddr) -> Response {
        self.try_send(to).unwrap_or_else(|e| {
            panic!(
                "{} {} from {} to {to}: {e}",
                self.method, self.path, self.source
            )
        })
    }

    /// Sends the request to `to` and reads the whole response.
    pub fn try_send(&self, to: SocketAddr) -> io::Result<Response> {
        assert!(to.ip().is_loopback(), "{to} is not a loopback address");
        let mut stream = connect_from(self.source, to)?;
        stream.write_all(&self.encode(true))?;
        read_response(&mut BufReader::new(stream))
    }

    fn encode(&self, close: bool) -> Vec<u8> {
        let mut req = format!(
            "{} {} HTTP/1.1\r\nhost: {}\r\n",
            self.method, self.path, self.host
        );
        for (k, v) in &self.headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        match (&self.body, self.chunk_size) {
            (Some(_), Some(_)) => req.push_str("transfer-encoding: chunked\r\n"),
            (Some(b), None) => req.push_str(&format!("content-length: {}\r\n", b.len())),
            (None, _) => {}
        }
        if close {
            req.push_str("connection: close\r\n");
        }
        req.push_str("\r\n");
        let mut out = req.into_bytes();
        if let Some(body) = &self.body {
            match self.chunk_size {
                Some(n) => {
                    for chunk in body.chunks(n) {
                        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                        out.extend_from_slice(chunk);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                None => out.extend_from_slice(body),
            }
        }
        out
    }
}

/// A keep-alive connection from one source address: several requests, one after the other.
pub struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// Connects from `source` (a loopback address) to `to`.
    pub fn open(source: &str, to: SocketAddr) -> Connection {
        let ip: IpAddr = source.parse().expect("a source IP address");
        assert!(
            ip.is_loopback() && to.ip().is_loopback(),
            "tests stay on loopback"
        );
        let stream = connect_from(ip, to).unwrap_or_else(|e| panic!("connect {ip} -> {to}: {e}"));
        Connection {
            reader: BufReader::new(stream),
        }
    }

    /// Sends `req` (its source address is ignored: the connection's is used) and reads
    /// the response, which must be framed (content-length or chunked).
    pub fn send(&mut self, req: &Request) -> Response {
        let r = (|| {
            self.reader.get_mut().write_all(&req.encode(false))?;
            let (status_line, headers) = read_head(&mut self.reader)?
                .ok_or_else(|| invalid("connection closed before a response"))?;
            let body = read_body(&mut self.reader, &headers, false)?;
            Ok::<_, io::Error>(Response {
                status: parse_status(&status_line)?,
                headers,
                body,
            })
        })();
        r.unwrap_or_else(|e| {
            panic!(
                "{} {} on a kept-alive connection: {e}",
                req.method, req.path
            )
        })
    }
}

/// A TCP connection bound to `source` (any port) before connecting to `to`.
pub fn connect_from(source: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(5))?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.set_write_timeout(Some(Duration::from_secs(15)))?;
    Ok(stream)
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }

    /// For a response from the echo upstream: the request headers that reached it, in
    /// order, as `(lower-case name, value)`. Panics when the response is not an echo.
    pub fn upstream_headers(&self) -> Vec<(String, String)> {
        let v = self.json();
        let hs = v
            .get("headers")
            .and_then(|h| h.as_array())
            .unwrap_or_else(|| {
                panic!(
                    "not an echo response (status {}): {}",
                    self.status,
                    self.text()
                )
            });
        hs.iter()
            .map(|pair| {
                let s = |i: usize| pair[i].as_str().expect("string").to_string();
                (s(0), s(1))
            })
            .collect()
    }

    /// For a response from the echo upstream: all values of request header `name` that
    /// reached it.
    pub fn upstream_header_values(&self, name: &str) -> Vec<String> {
        let name = name.to_ascii_lowercase();
        self.upstream_headers()
            .into_iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .collect()
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A status line (or request line) and its headers (names lower-cased).
pub(crate) type Head = (String, Vec<(String, String)>);

/// Reads a status line (or request line) and headers, names lower-cased.
pub(crate) fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<Head>> {
    let mut first = String::new();
    if r.read_line(&mut first)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(invalid("connection closed inside the header block"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(Some((first.trim_end().to_string(), headers)))
}

/// Reads a body framed by `content-length` or chunked encoding; otherwise, when
/// `until_eof`, everything up to EOF (else nothing).
pub(crate) fn read_body<R: BufRead>(
    r: &mut R,
    headers: &[(String, String)],
    until_eof: bool,
) -> io::Result<Vec<u8>> {
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let size = size.trim().split(';').next().unwrap_or("");
            let n = usize::from_str_radix(size, 16)
                .map_err(|_| invalid(format!("bad chunk size {size:?}")))?;
            if n == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l)? == 0 || l.trim().is_empty() {
                        return Ok(body);
                    }
                }
            }
            let start = body.len();
            body.resize(start + n, 0);
            r.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = get("content-length") {
        let n: usize = len
            .parse()
            .map_err(|_| invalid(format!("bad content-length {len:?}")))?;
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if until_eof {
        r.read_to_end(&mut body)?;
    }
    Ok(body)
}

fn read_response<R: BufRead>(r: &mut R) -> io::Result<Response> {
    let (status_line, headers) =
        read_head(r)?.ok_or_else(|| invalid("connection closed before a response"))?;
    let status = parse_status(&status_line)?;
    let body = read_body(r, &headers, true)?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn parse_status(status_line: &str) -> io::Result<u16> {
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))
}
