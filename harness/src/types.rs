//! The ABI's own enums and encodings (proxy-wasm 0.2.1), seen from the host side.
//! Values match the spec, the Rust SDK's `types.rs` and proxy-wasm-cpp-host.

/// `proxy_status_t`: what every host import returns to the filter.
///
/// ```
/// use portcullis_harness::Status;
/// assert_eq!(Status::CasMismatch as i32, 8);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The key, buffer, map, queue or property does not exist.
    NotFound = 1,
    /// An argument is out of range, or the object is not available in this phase.
    BadArgument = 2,
    /// A value could not be serialized.
    SerializationFailure = 3,
    /// A value could not be parsed.
    ParseFailure = 4,
    /// A pointer/length pair points outside the filter's memory.
    InvalidMemoryAccess = 6,
    /// The shared queue is empty.
    Empty = 7,
    /// Shared-data compare-and-swap failed.
    CasMismatch = 8,
    /// The host failed internally.
    InternalFailure = 10,
    /// The host does not implement this call.
    Unimplemented = 12,
}

/// Log levels of `proxy_log` (`LogLevel`).
///
/// ```
/// use portcullis_harness::LogLevel;
/// assert_eq!(LogLevel::from_i32(5), Some(LogLevel::Critical));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// 0
    Trace,
    /// 1
    Debug,
    /// 2
    Info,
    /// 3
    Warn,
    /// 4
    Error,
    /// 5 (the Rust SDK logs panics at this level before trapping)
    Critical,
}

impl LogLevel {
    /// The level for an ABI value, `None` if out of range.
    ///
    /// ```
    /// use portcullis_harness::LogLevel;
    /// assert_eq!(LogLevel::from_i32(2), Some(LogLevel::Info));
    /// assert_eq!(LogLevel::from_i32(9), None);
    /// ```
    pub fn from_i32(v: i32) -> Option<LogLevel> {
        Some(match v {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

/// `BufferType` of `proxy_get_buffer_bytes` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BufferType {
    HttpRequestBody,
    HttpResponseBody,
    DownstreamData,
    UpstreamData,
    HttpCallResponseBody,
    GrpcReceiveBuffer,
    VmConfiguration,
    PluginConfiguration,
    CallData,
}

impl BufferType {
    pub(crate) fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::HttpRequestBody,
            1 => Self::HttpResponseBody,
            2 => Self::DownstreamData,
            3 => Self::UpstreamData,
            4 => Self::HttpCallResponseBody,
            5 => Self::GrpcReceiveBuffer,
            6 => Self::VmConfiguration,
            7 => Self::PluginConfiguration,
            8 => Self::CallData,
            _ => return None,
        })
    }
}

/// `MapType` of the header-map imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapType {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
    GrpcInitialMetadata,
    GrpcTrailingMetadata,
    HttpCallResponseHeaders,
    HttpCallResponseTrailers,
}

impl MapType {
    pub(crate) fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::RequestHeaders,
            1 => Self::RequestTrailers,
            2 => Self::ResponseHeaders,
            3 => Self::ResponseTrailers,
            4 => Self::GrpcInitialMetadata,
            5 => Self::GrpcTrailingMetadata,
            6 => Self::HttpCallResponseHeaders,
            7 => Self::HttpCallResponseTrailers,
            _ => return None,
        })
    }
}

/// `MetricType` of `proxy_define_metric`.
///
/// ```
/// use portcullis_harness::MetricType;
/// assert_ne!(MetricType::Counter, MetricType::Gauge);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// 0: monotonically increasing.
    Counter,
    /// 1: set / add / subtract.
    Gauge,
    /// 2: recorded samples (value reads are `BadArgument`, as in Envoy).
    Histogram,
}

/// What a stream callback decided, after the host applied Envoy's rules
/// (a local reply overrides whatever the filter returned).
///
/// ```
/// use portcullis_harness::Action;
/// assert_ne!(Action::Continue, Action::Pause);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The phase continued (the data went on upstream/downstream).
    Continue,
    /// The stream is paused (headers: StopAllIteration; body: StopIterationAndBuffer).
    Pause,
    /// The filter sent a local reply (see [`crate::StreamRecord::local_reply`]).
    LocalReply,
    /// The filter reset the stream (`proxy_close_stream`).
    Reset,
}

/// Header (or trailer, or metadata) pairs, in order, keys as the host stores them.
pub type Headers = Vec<(String, String)>;

/// One header pair handed to [`crate::HttpStream`]: an owned or borrowed `(key, value)`
/// tuple of anything string-like, so `[("a", "1")]`, `&[("a", "1")]`, `Vec<(String,
/// String)>` and `&Headers` all work.
///
/// ```
/// use portcullis_harness::HeaderPair;
/// let owned = ("k", String::from("v"));
/// assert_eq!((owned.key(), (&owned).value()), ("k", "v"));
/// ```
pub trait HeaderPair {
    /// The key.
    fn key(&self) -> &str;
    /// The value.
    fn value(&self) -> &str;
}

impl<K: AsRef<str>, V: AsRef<str>> HeaderPair for (K, V) {
    fn key(&self) -> &str {
        self.0.as_ref()
    }
    fn value(&self) -> &str {
        self.1.as_ref()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> HeaderPair for &(K, V) {
    fn key(&self) -> &str {
        self.0.as_ref()
    }
    fn value(&self) -> &str {
        self.1.as_ref()
    }
}

/// Serializes pairs in the ABI encoding: `u32 N`, N × (`u32 klen`, `u32 vlen`), then
/// N × (`key\0value\0`), all little-endian.
///
/// ```
/// let b = portcullis_harness::encode_pairs(&[("a".to_string(), "bc".to_string())]);
/// assert_eq!(b, [1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'b', b'c', 0]);
/// ```
pub fn encode_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    let size: usize = 4 + pairs
        .iter()
        .map(|(k, v)| 10 + k.len() + v.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Parses the ABI pairs encoding. Like proxy-wasm-cpp-host, malformed input, more than
/// 1024 pairs or more than 1 MiB yield `None` (the host treats that as an empty map).
/// A single `0x00` byte or an empty slice is an empty map.
///
/// ```
/// let b = portcullis_harness::encode_pairs(&[("k".into(), "v".into())]);
/// assert_eq!(portcullis_harness::decode_pairs(&b), Some(vec![("k".into(), "v".into())]));
/// assert_eq!(portcullis_harness::decode_pairs(&[1, 2]), None);
/// ```
pub fn decode_pairs(data: &[u8]) -> Option<Headers> {
    if data.is_empty() || data == [0] {
        return Some(Vec::new());
    }
    if data.len() > 1 << 20 || data.len() < 4 {
        return None;
    }
    let n = u32::from_le_bytes(data[0..4].try_into().ok()?) as usize;
    if n > 1024 {
        return None;
    }
    let mut sizes = Vec::with_capacity(n);
    let mut pos = 4usize;
    for _ in 0..n {
        let k = u32::from_le_bytes(data.get(pos..pos + 4)?.try_into().ok()?) as usize;
        let v = u32::from_le_bytes(data.get(pos + 4..pos + 8)?.try_into().ok()?) as usize;
        sizes.push((k, v));
        pos += 8;
    }
    let mut out = Vec::with_capacity(n);
    for (k, v) in sizes {
        let key = data.get(pos..pos.checked_add(k)?)?;
        pos += k;
        if *data.get(pos)? != 0 {
            return None;
        }
        pos += 1;
        let val = data.get(pos..pos.checked_add(v)?)?;
        pos += v;
        if *data.get(pos)? != 0 {
            return None;
        }
        pos += 1;
        out.push((
            String::from_utf8_lossy(key).into_owned(),
            String::from_utf8_lossy(val).into_owned(),
        ));
    }
    if pos != data.len() {
        return None;
    }
    Some(out)
}
