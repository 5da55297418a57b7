//! The proxy-wasm imports the filter calls, declared here with status-returning wrappers
//! (wasm32 only). The SDK's own wrappers (proxy-wasm 0.2.5) panic on any status they do
//! not list — a trap, which skips `fail_open` and kills the VM — and read an unknown
//! status into a Rust enum; here every status is a plain `u32` turned into [`HostError`].

pub use crate::error::HostError;
use crate::wire;
use std::ptr::null_mut;
use std::time::Duration;

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

/// `proxy_log` levels.
#[derive(Debug, Clone, Copy)]
pub enum LogLevel {
    /// 2
    Info = 2,
    /// 3
    Warn = 3,
    /// 4
    Error = 4,
}

/// Header map and buffer types used here.
const HTTP_REQUEST_HEADERS: u32 = 0;
const HTTP_RESPONSE_HEADERS: u32 = 2;
const HTTP_REQUEST_BODY: u32 = 0;
const HTTP_RESPONSE_BODY: u32 = 1;
const PLUGIN_CONFIGURATION: u32 = 7;
const HTTP_CALL_RESPONSE_BODY: u32 = 4;
const HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
/// `proxy_close_stream` stream type.
const HTTP_REQUEST: u32 = 0;
/// `proxy_define_metric` types.
const COUNTER: u32 = 0;
const GAUGE: u32 = 1;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        details_data: *const u8,
        details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_close_stream(stream_type: u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_get_metric(metric_id: u32, return_value: *mut u64) -> u32;
}

fn check(call: &'static str, status: u32) -> Result<(), HostError> {
    match status {
        OK => Ok(()),
        status => Err(HostError { call, status }),
    }
}

/// Takes ownership of bytes the host allocated in our memory (through the SDK's
/// `proxy_on_memory_allocate`, a `Vec<u8>` of exactly `size`).
///
/// # Safety
/// `data`/`size` must come from a host call that returned OK.
unsafe fn owned(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    // SAFETY: allocated by proxy_on_memory_allocate as Vec::with_capacity(size), then
    // filled by the host; we are the only owner.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Logs a line; a failing log is ignored (there is nowhere to report it).
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: the pointer/length pair is a live buffer for the whole call.
    let _ = unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
}

/// The plugin configuration (empty when there is none).
pub fn plugin_configuration() -> Result<Vec<u8>, HostError> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: out-pointers to locals; the result is owned below only on OK.
    let status = unsafe {
        proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, usize::MAX, &mut data, &mut size)
    };
    match status {
        OK => Ok(unsafe { owned(data, size) }.unwrap_or_default()),
        NOT_FOUND => Ok(Vec::new()),
        status => Err(HostError {
            call: "proxy_get_buffer_bytes",
            status,
        }),
    }
}

/// The request headers, values as bytes.
pub fn request_headers() -> Result<Vec<(String, Vec<u8>)>, HostError> {
    header_pairs(HTTP_REQUEST_HEADERS)
}

/// The response headers, values as bytes (`:status` among them).
pub fn response_headers() -> Result<Vec<(String, Vec<u8>)>, HostError> {
    header_pairs(HTTP_RESPONSE_HEADERS)
}

fn header_pairs(map: u32) -> Result<Vec<(String, Vec<u8>)>, HostError> {
    const CALL: &str = "proxy_get_header_map_pairs";
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: as above.
    let status = unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) };
    check(CALL, status)?;
    let bytes = unsafe { owned(data, size) }.unwrap_or_default();
    // A map we cannot decode is the host's failure (status 3: SerializationFailure).
    wire::decode_pairs(&bytes).map_err(|_| HostError {
        call: CALL,
        status: 3,
    })
}

/// Sets (replacing) a request header.
pub fn set_request_header(name: &str, value: &str) -> Result<(), HostError> {
    // SAFETY: live buffers for the whole call.
    let status = unsafe {
        proxy_replace_header_map_value(
            HTTP_REQUEST_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    };
    check("proxy_replace_header_map_value", status)
}

/// Sets (replacing) a response header.
pub fn set_response_header(name: &str, value: &str) -> Result<(), HostError> {
    // SAFETY: live buffers for the whole call.
    let status = unsafe {
        proxy_replace_header_map_value(
            HTTP_RESPONSE_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    };
    check("proxy_replace_header_map_value", status)
}

/// The first `len` bytes of the buffered request body (empty when there is none).
pub fn request_body(len: usize) -> Result<Vec<u8>, HostError> {
    body_bytes(HTTP_REQUEST_BODY, len)
}

/// The first `len` bytes of the buffered response body (empty when there is none).
pub fn response_body(len: usize) -> Result<Vec<u8>, HostError> {
    body_bytes(HTTP_RESPONSE_BODY, len)
}

fn body_bytes(buffer: u32, len: usize) -> Result<Vec<u8>, HostError> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: out-pointers to locals; the result is owned below only on OK.
    let status = unsafe { proxy_get_buffer_bytes(buffer, 0, len, &mut data, &mut size) };
    match status {
        OK => Ok(unsafe { owned(data, size) }.unwrap_or_default()),
        NOT_FOUND => Ok(Vec::new()),
        status => Err(HostError {
            call: "proxy_get_buffer_bytes",
            status,
        }),
    }
}

/// Removes a request header.
pub fn remove_request_header(name: &str) -> Result<(), HostError> {
    // SAFETY: a live buffer for the whole call.
    let status =
        unsafe { proxy_remove_header_map_value(HTTP_REQUEST_HEADERS, name.as_ptr(), name.len()) };
    check("proxy_remove_header_map_value", status)
}

/// A property; `None` when the host does not have it.
pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
    let path = wire::encode_path(path);
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: as above.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    match status {
        OK => Ok(unsafe { owned(data, size) }),
        NOT_FOUND => Ok(None),
        status => Err(HostError {
            call: "proxy_get_property",
            status,
        }),
    }
}

/// Asks for `on_tick` every `period` (whole milliseconds, at least 1).
pub fn set_tick_period(period: Duration) -> Result<(), HostError> {
    let ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX).max(1);
    // SAFETY: no pointers.
    check("proxy_set_tick_period_milliseconds", unsafe {
        proxy_set_tick_period_milliseconds(ms)
    })
}

/// Defines a counter; its id.
pub fn define_counter(name: &str) -> Result<u32, HostError> {
    let mut id = 0;
    // SAFETY: a live buffer and an out-pointer to a local.
    let status = unsafe { proxy_define_metric(COUNTER, name.as_ptr(), name.len(), &mut id) };
    check("proxy_define_metric", status).map(|()| id)
}

/// Adds `n` to a counter.
pub fn increment_counter(id: u32, n: u64) -> Result<(), HostError> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    // SAFETY: no pointers.
    check("proxy_increment_metric", unsafe {
        proxy_increment_metric(id, n)
    })
}

/// Answers the request with a local reply (`headers` in [`wire::encode_pairs`] form).
pub fn send_local_response(
    status_code: u32,
    details: &str,
    body: &[u8],
    headers: &[u8],
) -> Result<(), HostError> {
    // SAFETY: every pointer/length pair is a live buffer for the whole call.
    let status = unsafe {
        proxy_send_local_response(
            status_code,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    };
    check("proxy_send_local_response", status)
}

/// Resets the request stream (the last resort when no reply can be sent).
pub fn reset_request() -> Result<(), HostError> {
    // SAFETY: no pointers.
    check("proxy_close_stream", unsafe {
        proxy_close_stream(HTTP_REQUEST)
    })
}

/// The wall clock in milliseconds since the Unix epoch.
pub fn now_ms() -> Result<u64, HostError> {
    let mut ns = 0u64;
    // SAFETY: an out-pointer to a local.
    check("proxy_get_current_time_nanoseconds", unsafe {
        proxy_get_current_time_nanoseconds(&mut ns)
    })?;
    Ok(ns / 1_000_000)
}

/// A shared-data value and its CAS token; `None` when the key is absent.
pub fn shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
    let (mut data, mut size, mut cas) = (null_mut(), 0, 0);
    // SAFETY: a live key buffer and out-pointers to locals; owned below only on OK.
    let status =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match status {
        OK => Ok(Some((
            unsafe { owned(data, size) }.unwrap_or_default(),
            cas,
        ))),
        NOT_FOUND => Ok(None),
        status => Err(HostError {
            call: "proxy_get_shared_data",
            status,
        }),
    }
}

/// Sets a shared-data value if `cas` is still its token (0: unconditionally); a CAS
/// mismatch is status 8.
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
    // SAFETY: live buffers for the whole call.
    check("proxy_set_shared_data", unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    })
}

/// Starts an HTTP call from the current (root) context; its token.
///
/// Through the SDK, not the import: the SDK's dispatcher must record the token, or it
/// panics when the response arrives. The SDK turns BadArgument and InternalFailure (what
/// Envoy returns) into errors and panics on any other status.
pub fn http_call(
    cluster: &str,
    headers: Vec<(&str, &str)>,
    timeout: Duration,
) -> Result<u32, HostError> {
    proxy_wasm::hostcalls::dispatch_http_call(cluster, headers, None, vec![], timeout).map_err(
        |status| HostError {
            call: "proxy_http_call",
            status: status as u32,
        },
    )
}

/// The headers of an HTTP call's response (in `on_http_call_response`).
pub fn http_call_response_headers() -> Result<Vec<(String, Vec<u8>)>, HostError> {
    header_pairs(HTTP_CALL_RESPONSE_HEADERS)
}

/// The first `len` bytes of an HTTP call's response body.
pub fn http_call_response_body(len: usize) -> Result<Vec<u8>, HostError> {
    body_bytes(HTTP_CALL_RESPONSE_BODY, len)
}

/// Defines a gauge; its id.
pub fn define_gauge(name: &str) -> Result<u32, HostError> {
    let mut id = 0;
    // SAFETY: a live buffer and an out-pointer to a local.
    let status = unsafe { proxy_define_metric(GAUGE, name.as_ptr(), name.len(), &mut id) };
    check("proxy_define_metric", status).map(|()| id)
}

/// Sets a gauge.
pub fn record_gauge(id: u32, value: u64) -> Result<(), HostError> {
    // SAFETY: no pointers.
    check("proxy_record_metric", unsafe {
        proxy_record_metric(id, value)
    })
}

/// A metric's current value (Envoy answers for counters and gauges).
pub fn metric_value(id: u32) -> Result<u64, HostError> {
    let mut value = 0;
    // SAFETY: an out-pointer to a local.
    let status = unsafe { proxy_get_metric(id, &mut value) };
    check("proxy_get_metric", status).map(|()| value)
}

/// This VM's linear memory in bytes (memory 0; Wasm pages are 64 KiB). A Wasm memory
/// only grows, so this is also the most the VM ever held.
pub fn linear_memory_bytes() -> u64 {
    core::arch::wasm32::memory_size(0) as u64 * 65536
}
