//! The `env.*` imports of proxy-wasm ABI 0.2.1 (plus the 0.1.0-only and Envoy-only ones
//! Envoy registers): one function per import, named as in the ABI, answering as Envoy does.

use std::time::Duration;

use wasmtime::Result;
use wasmtime::{Caller, Linker};

use crate::context::{GrpcCallRecord, HostState, HttpCallRecord, LocalReply, PendingReply, Phase};
use crate::properties::get_property;
use crate::types::{
    decode_pairs, encode_pairs, BufferType, Headers, LogLevel, MapType, MetricType, Status,
};
use crate::vm::{GrpcReply, HttpReply};

type C<'a> = Caller<'a, HostState>;

const OK: i32 = Status::Ok as i32;

fn st(s: Status) -> i32 {
    s as i32
}

/// Envoy's "restricted callback" mode during `_initialize`/`_start`: only logging and WASI.
fn allowed(c: &C<'_>, name: &str) -> Result<()> {
    if c.data().phase == Phase::Start {
        return Err(wasmtime::Error::msg(format!(
            "restricted_callback: {name} called during VM start-up (_initialize/_start/main)"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------- memory helpers

pub(crate) fn read_bytes(c: &mut C<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    let mem = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    mem.data(&*c)
        .get(ptr..ptr.checked_add(len).ok_or(Status::InvalidMemoryAccess)?)
        .map(|b| b.to_vec())
        .ok_or(Status::InvalidMemoryAccess)
}

fn read_string(c: &mut C<'_>, ptr: i32, len: i32) -> Result<String, Status> {
    read_bytes(c, ptr, len).map(|b| {
        String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    })
}

pub(crate) fn write_bytes(c: &mut C<'_>, ptr: i32, data: &[u8]) -> Result<(), Status> {
    let mem = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let ptr = ptr as u32 as usize;
    let end = ptr
        .checked_add(data.len())
        .ok_or(Status::InvalidMemoryAccess)?;
    mem.data_mut(&mut *c)
        .get_mut(ptr..end)
        .ok_or(Status::InvalidMemoryAccess)?
        .copy_from_slice(data);
    Ok(())
}

pub(crate) fn write_u32(c: &mut C<'_>, ptr: i32, v: u32) -> Result<(), Status> {
    write_bytes(c, ptr, &v.to_le_bytes())
}

/// Copies `data` into guest memory allocated with the guest's `malloc` and writes
/// pointer and size. Zero bytes: ptr 0, size 0, no allocation. A trapping malloc is a trap.
pub(crate) fn copy_out(c: &mut C<'_>, data: &[u8], ret_ptr: i32, ret_size: i32) -> Result<i32> {
    if data.is_empty() {
        return Ok(status_of(
            write_u32(c, ret_ptr, 0).and_then(|_| write_u32(c, ret_size, 0)),
        ));
    }
    // Taken out for the call rather than cloned (a clone bumps type-registry counts on
    // every copy out); a malloc that re-enters copy_out gets INTERNAL_FAILURE.
    let Some(malloc) = c.data_mut().malloc.take() else {
        return Ok(st(Status::InternalFailure));
    };
    let r = malloc.call(&mut *c, data.len() as i32);
    c.data_mut().malloc = Some(malloc);
    let addr = r?;
    if addr == 0 {
        return Ok(st(Status::InternalFailure));
    }
    Ok(status_of(
        write_bytes(c, addr, data)
            .and_then(|_| write_u32(c, ret_ptr, addr as u32))
            .and_then(|_| write_u32(c, ret_size, data.len() as u32)),
    ))
}

fn status_of(r: Result<(), Status>) -> i32 {
    match r {
        Ok(()) => OK,
        Err(s) => st(s),
    }
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(s) => return Ok(st(s)),
        }
    };
}

// ---------------------------------------------------------------- logging, time, config

/// `proxy_log(level, msg_ptr, msg_len)`
pub fn proxy_log(mut c: C<'_>, level: i32, ptr: i32, len: i32) -> Result<i32> {
    let msg = tri!(read_string(&mut c, ptr, len));
    let Some(level) = LogLevel::from_i32(level) else {
        return Ok(st(Status::BadArgument));
    };
    c.data_mut().log(level, msg);
    Ok(OK)
}

/// `proxy_get_log_level(ret_level_ptr)`
pub fn proxy_get_log_level(mut c: C<'_>, ret: i32) -> Result<i32> {
    let lvl = c.data().settings.log_level as u32;
    Ok(status_of(write_u32(&mut c, ret, lvl)))
}

/// `proxy_get_current_time_nanoseconds(ret_u64_ptr)` — the virtual realtime clock.
pub fn proxy_get_current_time_nanoseconds(mut c: C<'_>, ret: i32) -> Result<i32> {
    allowed(&c, "proxy_get_current_time_nanoseconds")?;
    let now = c.data().realtime_ns;
    Ok(status_of(write_bytes(&mut c, ret, &now.to_le_bytes())))
}

/// `proxy_set_tick_period_milliseconds(period)` — 0 disables; fired by `Vm::advance_time`.
pub fn proxy_set_tick_period_milliseconds(mut c: C<'_>, period: i32) -> Result<i32> {
    allowed(&c, "proxy_set_tick_period_milliseconds")?;
    c.data_mut().tick_period_ms = period as u32 as u64;
    Ok(OK)
}

/// 0.1.0 only: `proxy_get_configuration(ret_ptr_ptr, ret_size_ptr)`.
pub fn proxy_get_configuration(mut c: C<'_>, ret_ptr: i32, ret_size: i32) -> Result<i32> {
    allowed(&c, "proxy_get_configuration")?;
    let cfg = c.data().settings.plugin_configuration.clone();
    copy_out(&mut c, &cfg, ret_ptr, ret_size)
}

// ---------------------------------------------------------------- buffers

fn buffer_of(s: &mut HostState, t: BufferType) -> Option<Vec<u8>> {
    match t {
        // A direction's body exists once its headers arrived (before that Envoy has no
        // buffer: NOT_FOUND).
        BufferType::HttpRequestBody => s
            .effective_stream()
            .filter(|x| x.dirs[0].headers_seen)
            .map(|x| x.dirs[0].buffer.clone()),
        BufferType::HttpResponseBody => s
            .effective_stream()
            .filter(|x| x.dirs[1].headers_seen)
            .map(|x| x.dirs[1].buffer.clone()),
        // Network filters: the data of the current read, and what the filter held.
        BufferType::DownstreamData => s
            .effective_stream()
            .filter(|x| x.network)
            .map(|x| x.dirs[0].buffer.clone()),
        BufferType::UpstreamData => s
            .effective_stream()
            .filter(|x| x.network)
            .map(|x| x.dirs[1].buffer.clone()),
        BufferType::VmConfiguration if s.phase == Phase::VmStart => {
            Some(s.settings.vm_configuration.clone())
        }
        BufferType::PluginConfiguration if s.phase == Phase::Configure => {
            Some(s.settings.plugin_configuration.clone())
        }
        BufferType::HttpCallResponseBody | BufferType::GrpcReceiveBuffer => {
            Some(s.callout.body.clone())
        }
        BufferType::CallData => Some(s.callout.body.clone()),
        _ => None,
    }
}

/// `proxy_get_buffer_bytes(type, start, max_size, ret_ptr_ptr, ret_size_ptr)`
pub fn proxy_get_buffer_bytes(
    mut c: C<'_>,
    t: i32,
    start: i32,
    max: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Result<i32> {
    allowed(&c, "proxy_get_buffer_bytes")?;
    let Some(t) = BufferType::from_i32(t) else {
        return Ok(st(Status::BadArgument));
    };
    let Some(buf) = buffer_of(c.data_mut(), t) else {
        return Ok(st(Status::NotFound));
    };
    let start = start as u32 as usize;
    let max = max as u32 as usize;
    if start > buf.len() {
        return Ok(st(Status::BadArgument));
    }
    let end = buf.len().min(start.saturating_add(max));
    copy_out(&mut c, &buf[start..end], ret_ptr, ret_size)
}

/// `proxy_get_buffer_status(type, ret_len_ptr, ret_flags_ptr)` — flags always 0 (cpp-host).
pub fn proxy_get_buffer_status(mut c: C<'_>, t: i32, ret_len: i32, ret_flags: i32) -> Result<i32> {
    allowed(&c, "proxy_get_buffer_status")?;
    let Some(t) = BufferType::from_i32(t) else {
        return Ok(st(Status::BadArgument));
    };
    let Some(buf) = buffer_of(c.data_mut(), t) else {
        return Ok(st(Status::NotFound));
    };
    Ok(status_of(
        write_u32(&mut c, ret_len, buf.len() as u32).and_then(|_| write_u32(&mut c, ret_flags, 0)),
    ))
}

/// `proxy_set_buffer_bytes(type, start, size, data_ptr, data_len)` with Envoy's rules:
/// start=0,size=0 prepend; start=0,size>=len replace; start>=len append; else BAD_ARGUMENT.
pub fn proxy_set_buffer_bytes(
    mut c: C<'_>,
    t: i32,
    start: i32,
    size: i32,
    ptr: i32,
    len: i32,
) -> Result<i32> {
    allowed(&c, "proxy_set_buffer_bytes")?;
    let data = tri!(read_bytes(&mut c, ptr, len));
    let (dir, network) = match BufferType::from_i32(t) {
        Some(BufferType::HttpRequestBody) => (0, false),
        Some(BufferType::HttpResponseBody) => (1, false),
        Some(BufferType::DownstreamData) => (0, true),
        Some(BufferType::UpstreamData) => (1, true),
        Some(_) => return Ok(st(Status::NotFound)),
        None => return Ok(st(Status::BadArgument)),
    };
    let Some(s) = c.data_mut().effective_stream() else {
        return Ok(st(Status::NotFound));
    };
    if s.network != network {
        return Ok(st(Status::NotFound));
    }
    let buf = &mut s.dirs[dir].buffer;
    let (start, size) = (start as u32 as usize, size as u32 as usize);
    if start == 0 && size == 0 {
        buf.splice(0..0, data);
    } else if start == 0 && size >= buf.len() {
        *buf = data;
    } else if start >= buf.len() {
        buf.extend_from_slice(&data);
    } else {
        return Ok(st(Status::BadArgument));
    }
    Ok(OK)
}

// ---------------------------------------------------------------- header maps

enum MapAccess {
    Read,
    Write,
}

/// The map for `t` in the effective context, honouring Envoy's lifetimes.
fn map_of(s: &mut HostState, t: MapType, access: MapAccess) -> Result<&mut Headers, Status> {
    match t {
        MapType::HttpCallResponseHeaders | MapType::GrpcInitialMetadata => {
            return Ok(&mut s.callout.headers)
        }
        MapType::HttpCallResponseTrailers | MapType::GrpcTrailingMetadata => {
            return Ok(&mut s.callout.trailers)
        }
        _ => {}
    }
    let stream = s.effective_stream().ok_or(Status::BadArgument)?;
    let (dir, trailers) = match t {
        MapType::RequestHeaders => (0, false),
        MapType::RequestTrailers => (0, true),
        MapType::ResponseHeaders => (1, false),
        _ => (1, true),
    };
    let d = &stream.dirs[dir];
    let avail = if trailers {
        d.trailers_avail
    } else {
        d.headers_avail
    };
    let ok = match access {
        MapAccess::Read => avail || stream.in_log,
        MapAccess::Write => avail && !stream.in_log,
    };
    // Request trailers may be added from the last request body callback (addDecodedTrailers).
    let trailers_add = trailers && dir == 0 && d.end_seen && !stream.in_log && !d.headers_avail;
    if !ok && !trailers_add {
        return Err(if stream.in_log {
            Status::NotFound
        } else {
            Status::BadArgument
        });
    }
    let r = &mut stream.record;
    Ok(match (dir, trailers) {
        (0, false) => &mut r.request_headers,
        (0, true) => &mut r.request_trailers,
        (1, false) => &mut r.response_headers,
        _ => &mut r.response_trailers,
    })
}

/// The stream's non-UTF-8 request header values, taken out while `t`'s map is borrowed
/// (empty for other maps: only request headers can carry them).
fn take_raw(s: &mut HostState, t: MapType) -> Vec<(String, String, Vec<u8>)> {
    if t != MapType::RequestHeaders {
        return Vec::new();
    }
    s.effective_stream()
        .map(|st| std::mem::take(&mut st.raw_request_values))
        .unwrap_or_default()
}

fn put_raw(s: &mut HostState, raw: Vec<(String, String, Vec<u8>)>) {
    if raw.is_empty() {
        return;
    }
    if let Some(st) = s.effective_stream() {
        st.raw_request_values = raw;
    }
}

/// The bytes sent for `key: lossy`, when that pair arrived as non-UTF-8 and is unchanged.
fn raw_value<'a>(raw: &'a [(String, String, Vec<u8>)], key: &str, lossy: &str) -> Option<&'a [u8]> {
    raw.iter()
        .find(|(k, v, _)| k == key && v == lossy)
        .map(|(_, _, b)| b.as_slice())
}

/// [`encode_pairs`] with the raw bytes of non-UTF-8 values.
fn encode_raw_pairs(pairs: &Headers, raw: &[(String, String, Vec<u8>)]) -> Vec<u8> {
    let values: Vec<&[u8]> = pairs
        .iter()
        .map(|(k, v)| raw_value(raw, k, v).unwrap_or(v.as_bytes()))
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for ((k, _), v) in pairs.iter().zip(&values) {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for ((k, _), v) in pairs.iter().zip(&values) {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

fn map_type(t: i32) -> Result<MapType, Status> {
    MapType::from_i32(t).ok_or(Status::BadArgument)
}

/// `proxy_get_header_map_pairs(type, ret_ptr_ptr, ret_size_ptr)` — never fails on an
/// unavailable map: returns an empty map, as Envoy's getHeaderMapPairs does.
pub fn proxy_get_header_map_pairs(
    mut c: C<'_>,
    t: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Result<i32> {
    allowed(&c, "proxy_get_header_map_pairs")?;
    let t = tri!(map_type(t));
    let raw = take_raw(c.data_mut(), t);
    let bytes = match map_of(c.data_mut(), t, MapAccess::Read) {
        Ok(m) if !m.is_empty() && raw.is_empty() => encode_pairs(m),
        Ok(m) if !m.is_empty() => encode_raw_pairs(m, &raw),
        _ => Vec::new(),
    };
    put_raw(c.data_mut(), raw);
    copy_out(&mut c, &bytes, ret_ptr, ret_size)
}

/// `proxy_set_header_map_pairs(type, pairs_ptr, pairs_len)` — replaces the whole map,
/// keys lower-cased.
pub fn proxy_set_header_map_pairs(mut c: C<'_>, t: i32, ptr: i32, len: i32) -> Result<i32> {
    allowed(&c, "proxy_set_header_map_pairs")?;
    let t = tri!(map_type(t));
    let data = tri!(read_bytes(&mut c, ptr, len));
    let pairs = decode_pairs(&data).unwrap_or_default();
    let m = tri!(map_of(c.data_mut(), t, MapAccess::Write));
    *m = pairs
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    Ok(OK)
}

/// `proxy_get_header_map_value(type, key_ptr, key_len, ret_ptr_ptr, ret_size_ptr)` —
/// first value; NOT_FOUND if absent; BAD_ARGUMENT once the phase continued.
pub fn proxy_get_header_map_value(
    mut c: C<'_>,
    t: i32,
    kp: i32,
    kl: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Result<i32> {
    allowed(&c, "proxy_get_header_map_value")?;
    let t = tri!(map_type(t));
    let key = tri!(read_string(&mut c, kp, kl));
    let raw = take_raw(c.data_mut(), t);
    let m = map_of(c.data_mut(), t, MapAccess::Read);
    let found = m.map(|m| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&key))
            .map(|(k, v)| raw_value(&raw, k, v).unwrap_or(v.as_bytes()).to_vec())
    });
    put_raw(c.data_mut(), raw);
    let Some(v) = tri!(found) else {
        return Ok(st(Status::NotFound));
    };
    copy_out(&mut c, &v, ret_ptr, ret_size)
}

/// `proxy_add_header_map_value(type, key_ptr, key_len, val_ptr, val_len)`
pub fn proxy_add_header_map_value(
    mut c: C<'_>,
    t: i32,
    kp: i32,
    kl: i32,
    vp: i32,
    vl: i32,
) -> Result<i32> {
    allowed(&c, "proxy_add_header_map_value")?;
    let t = tri!(map_type(t));
    let key = tri!(read_string(&mut c, kp, kl)).to_ascii_lowercase();
    let val = tri!(read_string(&mut c, vp, vl));
    let m = tri!(map_of(c.data_mut(), t, MapAccess::Write));
    m.push((key, val));
    Ok(OK)
}

/// `proxy_replace_header_map_value(type, key_ptr, key_len, val_ptr, val_len)` — add or replace.
pub fn proxy_replace_header_map_value(
    mut c: C<'_>,
    t: i32,
    kp: i32,
    kl: i32,
    vp: i32,
    vl: i32,
) -> Result<i32> {
    allowed(&c, "proxy_replace_header_map_value")?;
    let t = tri!(map_type(t));
    let key = tri!(read_string(&mut c, kp, kl)).to_ascii_lowercase();
    let val = tri!(read_string(&mut c, vp, vl));
    let m = tri!(map_of(c.data_mut(), t, MapAccess::Write));
    match m.iter().position(|(k, _)| *k == key) {
        Some(i) => {
            m[i].1 = val;
            let mut j = i + 1;
            while j < m.len() {
                if m[j].0 == key {
                    m.remove(j);
                } else {
                    j += 1;
                }
            }
        }
        None => m.push((key, val)),
    }
    Ok(OK)
}

/// `proxy_remove_header_map_value(type, key_ptr, key_len)` — OK even if absent.
pub fn proxy_remove_header_map_value(mut c: C<'_>, t: i32, kp: i32, kl: i32) -> Result<i32> {
    allowed(&c, "proxy_remove_header_map_value")?;
    let t = tri!(map_type(t));
    let key = tri!(read_string(&mut c, kp, kl)).to_ascii_lowercase();
    let m = tri!(map_of(c.data_mut(), t, MapAccess::Write));
    m.retain(|(k, _)| *k != key);
    Ok(OK)
}

/// `proxy_get_header_map_size(type, ret_size_ptr)` — Envoy's `byteSize()` (Σ key+value).
pub fn proxy_get_header_map_size(mut c: C<'_>, t: i32, ret: i32) -> Result<i32> {
    allowed(&c, "proxy_get_header_map_size")?;
    let t = tri!(map_type(t));
    let m = tri!(map_of(c.data_mut(), t, MapAccess::Read));
    let size: usize = m.iter().map(|(k, v)| k.len() + v.len()).sum();
    Ok(status_of(write_u32(&mut c, ret, size as u32)))
}

// ---------------------------------------------------------------- properties

/// `proxy_get_property(path_ptr, path_len, ret_ptr_ptr, ret_size_ptr)`
pub fn proxy_get_property(
    mut c: C<'_>,
    pp: i32,
    pl: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Result<i32> {
    allowed(&c, "proxy_get_property")?;
    let path = tri!(read_bytes(&mut c, pp, pl));
    let s = c.data();
    let v = get_property(
        &path,
        &s.settings,
        s.streams.get(&s.effective),
        s.monotonic_ns,
    );
    match v {
        Some(v) => copy_out(&mut c, &v, ret_ptr, ret_size),
        None => Ok(st(Status::NotFound)),
    }
}

/// `proxy_set_property(path_ptr, path_len, val_ptr, val_len)` — recorded on the stream
/// (Envoy: filter state `wasm.<path>`) and readable back.
pub fn proxy_set_property(mut c: C<'_>, pp: i32, pl: i32, vp: i32, vl: i32) -> Result<i32> {
    allowed(&c, "proxy_set_property")?;
    // Kept in segment form (`\0`-joined), as the filter gave it.
    let path = String::from_utf8_lossy(&tri!(read_bytes(&mut c, pp, pl))).into_owned();
    let val = tri!(read_bytes(&mut c, vp, vl));
    let s = c.data_mut();
    match s.effective_stream() {
        Some(stream) => stream.record.properties_set.push((path, val)),
        None => {
            let settings = std::sync::Arc::make_mut(&mut s.settings);
            settings.properties.push((path, val));
        }
    }
    Ok(OK)
}

// ---------------------------------------------------------------- stream control

/// `proxy_continue_stream(stream_type)` — deferred resume (applied after the callback).
pub fn proxy_continue_stream(mut c: C<'_>, t: i32) -> Result<i32> {
    allowed(&c, "proxy_continue_stream")?;
    match t {
        0 | 1 => {
            let Some(s) = c.data_mut().effective_stream() else {
                return Ok(st(Status::NotFound));
            };
            s.dirs[t as usize].resume = true;
            Ok(OK)
        }
        // Downstream: Envoy's `continueReading()` on a network filter (the held data
        // goes on); nothing to do for an HTTP stream.
        2 => {
            if let Some(s) = c.data_mut().effective_stream().filter(|s| s.network) {
                s.dirs[0].resume = true;
            }
            Ok(OK)
        }
        // Envoy cannot resume upstream data (context.cc `continueStream`: Unimplemented).
        3 => Ok(st(Status::Unimplemented)),
        _ => Ok(st(Status::BadArgument)),
    }
}

/// `proxy_close_stream(stream_type)` — Envoy resets the stream ("wasm_close_stream").
pub fn proxy_close_stream(mut c: C<'_>, t: i32) -> Result<i32> {
    allowed(&c, "proxy_close_stream")?;
    match t {
        0..=3 => {
            if let Some(s) = c.data_mut().effective_stream() {
                s.record.reset = true;
                s.ended = true;
            }
            Ok(OK)
        }
        _ => Ok(st(Status::BadArgument)),
    }
}

/// 0.1.0 only: `proxy_continue_request()`.
pub fn proxy_continue_request(c: C<'_>) -> Result<i32> {
    proxy_continue_stream(c, 0)
}

/// 0.1.0 only: `proxy_continue_response()`.
pub fn proxy_continue_response(c: C<'_>) -> Result<i32> {
    proxy_continue_stream(c, 1)
}

/// 0.1.0 only: `proxy_clear_route_cache()` — nothing to clear here.
pub fn proxy_clear_route_cache(c: C<'_>) -> Result<i32> {
    allowed(&c, "proxy_clear_route_cache")?;
    Ok(OK)
}

/// `proxy_send_local_response(status, details, body, headers, grpc_status)` — recorded;
/// the stream stops and the reply runs through the response path after the callback.
#[allow(clippy::too_many_arguments)]
pub fn proxy_send_local_response(
    mut c: C<'_>,
    status: i32,
    dp: i32,
    dl: i32,
    bp: i32,
    bl: i32,
    hp: i32,
    hl: i32,
    grpc: i32,
) -> Result<i32> {
    allowed(&c, "proxy_send_local_response")?;
    let details = tri!(read_string(&mut c, dp, dl)).replace(' ', "_");
    let body = tri!(read_bytes(&mut c, bp, bl));
    let hdrs = tri!(read_bytes(&mut c, hp, hl));
    let headers = decode_pairs(&hdrs)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let Some(s) = c.data_mut().effective_stream() else {
        return Ok(st(Status::NotFound));
    };
    if s.record.local_reply.is_some() && !s.local_reply_new {
        // Envoy ignores a second local reply once one is on its way.
        return Ok(OK);
    }
    s.record.local_reply = Some(LocalReply {
        status: status as u32,
        body,
        headers,
        details,
        grpc_status: (0..=16).contains(&grpc).then_some(grpc as u32),
    });
    s.local_reply_new = true;
    Ok(OK)
}

// ---------------------------------------------------------------- http / grpc callouts

fn next_token(s: &mut HostState) -> u32 {
    s.next_token = s.next_token.wrapping_add(1).max(1);
    s.next_token
}

/// `proxy_http_call(upstream, headers, body, trailers, timeout_ms, ret_token_ptr)` —
/// answered by the responder registered for the upstream; unknown upstream or missing
/// `:method`/`:path`/`:authority` => BAD_ARGUMENT (as Envoy).
#[allow(clippy::too_many_arguments)]
pub fn proxy_http_call(
    mut c: C<'_>,
    up: i32,
    ul: i32,
    hp: i32,
    hl: i32,
    bp: i32,
    bl: i32,
    tp: i32,
    tl: i32,
    timeout_ms: i32,
    ret_token: i32,
) -> Result<i32> {
    allowed(&c, "proxy_http_call")?;
    let cluster = tri!(read_string(&mut c, up, ul));
    let headers = decode_pairs(&tri!(read_bytes(&mut c, hp, hl))).unwrap_or_default();
    let body = tri!(read_bytes(&mut c, bp, bl));
    let trailers = decode_pairs(&tri!(read_bytes(&mut c, tp, tl))).unwrap_or_default();
    let has = |n: &str| headers.iter().any(|(k, v)| k == n && !v.is_empty());
    if !has(":method") || !has(":path") || !has(":authority") {
        return Ok(st(Status::BadArgument));
    }
    let s = c.data_mut();
    if !s.http_responders.contains_key(&cluster) {
        return Ok(st(Status::BadArgument));
    }
    let token = next_token(s);
    let rec = HttpCallRecord {
        token,
        cluster: cluster.clone(),
        headers,
        body,
        trailers,
        timeout: Duration::from_millis(timeout_ms as u32 as u64),
        context_id: s.effective,
    };
    let reply = match s.http_responders.get_mut(&cluster) {
        Some(r) => r(&rec),
        None => HttpReply::Reset,
    };
    let now = s.monotonic_ns;
    let due = match &reply {
        HttpReply::Response { delay, .. } => now + delay.as_nanos() as u64,
        HttpReply::Timeout => now + rec.timeout.as_nanos() as u64,
        HttpReply::Reset => now,
    };
    let pending = match reply {
        HttpReply::Timeout => PendingReply::HttpTimeout(token),
        r => PendingReply::Http(token, r),
    };
    s.pending.push((due, pending));
    if let Some(stream) = s.streams.get_mut(&rec.context_id) {
        stream.record.http_calls.push(rec.clone());
    }
    s.all_http_calls.push(rec.clone());
    s.http_calls.insert(token, rec);
    Ok(status_of(write_u32(&mut c, ret_token, token)))
}

#[allow(clippy::too_many_arguments)]
fn grpc_open(
    c: &mut C<'_>,
    up: i32,
    ul: i32,
    sp: i32,
    sl: i32,
    mp: i32,
    ml: i32,
    mdp: i32,
    mdl: i32,
    message: Option<Vec<u8>>,
    timeout_ms: i32,
    ret_token: i32,
) -> Result<i32> {
    let cluster = tri!(read_string(c, up, ul));
    let service = tri!(read_string(c, sp, sl));
    let method = tri!(read_string(c, mp, ml));
    let md = decode_pairs(&tri!(read_bytes(c, mdp, mdl))).unwrap_or_default();
    let s = c.data_mut();
    if !s.grpc_responders.contains_key(&cluster) {
        return Ok(st(Status::ParseFailure));
    }
    let token = next_token(s);
    let streaming = message.is_none();
    let rec = GrpcCallRecord {
        token,
        cluster: cluster.clone(),
        service,
        method,
        initial_metadata: md,
        messages: message.into_iter().collect(),
        timeout: Duration::from_millis(timeout_ms as u32 as u64),
        streaming,
        closed: false,
        context_id: s.effective,
    };
    if !streaming {
        let reply = match s.grpc_responders.get_mut(&cluster) {
            Some(r) => r(&rec),
            None => GrpcReply::status(14, "no responder"),
        };
        let now = s.monotonic_ns;
        let due = match &reply {
            GrpcReply::Timeout => now + rec.timeout.as_nanos() as u64,
            GrpcReply::Message { delay, .. } | GrpcReply::Status { delay, .. } => {
                now + delay.as_nanos() as u64
            }
        };
        s.pending.push((due, PendingReply::Grpc(token, reply)));
    }
    if let Some(stream) = s.streams.get_mut(&rec.context_id) {
        stream.record.grpc_calls.push(rec.clone());
    }
    s.grpc_calls.insert(token, rec.clone());
    s.all_grpc_calls.push(rec);
    Ok(status_of(write_u32(c, ret_token, token)))
}

/// `proxy_grpc_call(upstream, service, method, initial_metadata, message, timeout_ms, ret_token_ptr)`
/// — unknown upstream => PARSE_FAILURE (as Envoy).
#[allow(clippy::too_many_arguments)]
pub fn proxy_grpc_call(
    mut c: C<'_>,
    up: i32,
    ul: i32,
    sp: i32,
    sl: i32,
    mp: i32,
    ml: i32,
    mdp: i32,
    mdl: i32,
    msgp: i32,
    msgl: i32,
    timeout_ms: i32,
    ret_token: i32,
) -> Result<i32> {
    allowed(&c, "proxy_grpc_call")?;
    let msg = tri!(read_bytes(&mut c, msgp, msgl));
    grpc_open(
        &mut c,
        up,
        ul,
        sp,
        sl,
        mp,
        ml,
        mdp,
        mdl,
        Some(msg),
        timeout_ms,
        ret_token,
    )
}

/// `proxy_grpc_stream(upstream, service, method, initial_metadata, ret_token_ptr)` —
/// recorded; messages the filter sends are recorded; nothing is received.
#[allow(clippy::too_many_arguments)]
pub fn proxy_grpc_stream(
    mut c: C<'_>,
    up: i32,
    ul: i32,
    sp: i32,
    sl: i32,
    mp: i32,
    ml: i32,
    mdp: i32,
    mdl: i32,
    ret_token: i32,
) -> Result<i32> {
    allowed(&c, "proxy_grpc_stream")?;
    grpc_open(&mut c, up, ul, sp, sl, mp, ml, mdp, mdl, None, 0, ret_token)
}

/// Copies a gRPC call's state into the VM-wide list and into its stream's record.
fn sync_grpc_record(s: &mut HostState, token: u32) {
    let Some(call) = s.grpc_calls.get(&token).cloned() else {
        return;
    };
    if let Some(r) = s.all_grpc_calls.iter_mut().find(|r| r.token == token) {
        *r = call.clone();
    }
    if let Some(st) = s.streams.get_mut(&call.context_id) {
        if let Some(r) = st.record.grpc_calls.iter_mut().find(|r| r.token == token) {
            *r = call;
        }
    }
}

/// `proxy_grpc_send(token, msg_ptr, msg_len, end_stream)`
pub fn proxy_grpc_send(mut c: C<'_>, token: i32, mp: i32, ml: i32, end: i32) -> Result<i32> {
    allowed(&c, "proxy_grpc_send")?;
    let msg = tri!(read_bytes(&mut c, mp, ml));
    let s = c.data_mut();
    match s.grpc_calls.get_mut(&(token as u32)) {
        Some(call) if call.streaming && !call.closed => {
            call.messages.push(msg);
            call.closed |= end != 0;
            sync_grpc_record(s, token as u32);
            Ok(OK)
        }
        Some(_) => Ok(st(Status::BadArgument)),
        None => Ok(st(Status::NotFound)),
    }
}

fn grpc_end(c: &mut C<'_>, token: i32) -> Result<i32> {
    let s = c.data_mut();
    let token = token as u32;
    match s.grpc_calls.get_mut(&token) {
        Some(call) => {
            call.closed = true;
            sync_grpc_record(s, token);
            s.pending
                .retain(|(_, p)| !matches!(p, PendingReply::Grpc(t, _) if *t == token));
            Ok(OK)
        }
        None => Ok(st(Status::NotFound)),
    }
}

/// `proxy_grpc_cancel(token)`
pub fn proxy_grpc_cancel(mut c: C<'_>, token: i32) -> Result<i32> {
    allowed(&c, "proxy_grpc_cancel")?;
    grpc_end(&mut c, token)
}

/// `proxy_grpc_close(token)`
pub fn proxy_grpc_close(mut c: C<'_>, token: i32) -> Result<i32> {
    allowed(&c, "proxy_grpc_close")?;
    grpc_end(&mut c, token)
}

/// `proxy_get_status(ret_code_ptr, ret_msg_ptr_ptr, ret_msg_size_ptr)` — status of the
/// gRPC call being reported.
pub fn proxy_get_status(mut c: C<'_>, ret_code: i32, ret_ptr: i32, ret_size: i32) -> Result<i32> {
    allowed(&c, "proxy_get_status")?;
    let (code, msg) = c.data().status.clone();
    tri!(write_u32(&mut c, ret_code, code));
    copy_out(&mut c, msg.as_bytes(), ret_ptr, ret_size)
}

// ---------------------------------------------------------------- shared data / queues

/// `proxy_get_shared_data(key_ptr, key_len, ret_val_ptr_ptr, ret_val_size_ptr, ret_cas_ptr)`
pub fn proxy_get_shared_data(
    mut c: C<'_>,
    kp: i32,
    kl: i32,
    ret_ptr: i32,
    ret_size: i32,
    ret_cas: i32,
) -> Result<i32> {
    allowed(&c, "proxy_get_shared_data")?;
    let key = tri!(read_string(&mut c, kp, kl));
    let Some((val, cas)) = c.data().shared.get_data(&key) else {
        return Ok(st(Status::NotFound));
    };
    tri!(write_u32(&mut c, ret_cas, cas));
    copy_out(&mut c, &val, ret_ptr, ret_size)
}

/// `proxy_set_shared_data(key_ptr, key_len, val_ptr, val_len, cas)` — CAS_MISMATCH on a stale cas.
pub fn proxy_set_shared_data(
    mut c: C<'_>,
    kp: i32,
    kl: i32,
    vp: i32,
    vl: i32,
    cas: i32,
) -> Result<i32> {
    allowed(&c, "proxy_set_shared_data")?;
    let key = tri!(read_string(&mut c, kp, kl));
    let val = tri!(read_bytes(&mut c, vp, vl));
    Ok(st(c.data().shared.set_data(&key, val, cas as u32)))
}

/// `proxy_register_shared_queue(name_ptr, name_len, ret_id_ptr)` — owned by this VM
/// (`proxy_on_queue_ready` goes to its root context).
pub fn proxy_register_shared_queue(mut c: C<'_>, np: i32, nl: i32, ret: i32) -> Result<i32> {
    allowed(&c, "proxy_register_shared_queue")?;
    let name = tri!(read_string(&mut c, np, nl));
    let s = c.data();
    let id = s
        .shared
        .register_queue(&s.settings.vm_id, &name, s.vm_serial);
    Ok(status_of(write_u32(&mut c, ret, id)))
}

/// `proxy_resolve_shared_queue(vm_id_ptr, vm_id_len, name_ptr, name_len, ret_id_ptr)`
pub fn proxy_resolve_shared_queue(
    mut c: C<'_>,
    vp: i32,
    vl: i32,
    np: i32,
    nl: i32,
    ret: i32,
) -> Result<i32> {
    allowed(&c, "proxy_resolve_shared_queue")?;
    let vm_id = tri!(read_string(&mut c, vp, vl));
    let name = tri!(read_string(&mut c, np, nl));
    match c.data().shared.resolve_queue(&vm_id, &name) {
        Some(id) => Ok(status_of(write_u32(&mut c, ret, id))),
        None => Ok(st(Status::NotFound)),
    }
}

/// `proxy_enqueue_shared_queue(queue_id, val_ptr, val_len)`
pub fn proxy_enqueue_shared_queue(mut c: C<'_>, id: i32, vp: i32, vl: i32) -> Result<i32> {
    allowed(&c, "proxy_enqueue_shared_queue")?;
    let val = tri!(read_bytes(&mut c, vp, vl));
    Ok(st(c.data().shared.enqueue(id as u32, val)))
}

/// `proxy_dequeue_shared_queue(queue_id, ret_ptr_ptr, ret_size_ptr)` — EMPTY when drained.
pub fn proxy_dequeue_shared_queue(
    mut c: C<'_>,
    id: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Result<i32> {
    allowed(&c, "proxy_dequeue_shared_queue")?;
    match c.data().shared.dequeue(id as u32) {
        Ok(v) => copy_out(&mut c, &v, ret_ptr, ret_size),
        Err(s) => Ok(st(s)),
    }
}

// ---------------------------------------------------------------- metrics

/// `proxy_define_metric(type, name_ptr, name_len, ret_id_ptr)` (Envoy shows `wasmcustom.<name>`).
pub fn proxy_define_metric(mut c: C<'_>, t: i32, np: i32, nl: i32, ret: i32) -> Result<i32> {
    allowed(&c, "proxy_define_metric")?;
    let kind = match t {
        0 => MetricType::Counter,
        1 => MetricType::Gauge,
        2 => MetricType::Histogram,
        _ => return Ok(st(Status::BadArgument)),
    };
    let name = tri!(read_string(&mut c, np, nl));
    let id = c.data().shared.define_metric(kind, &name);
    Ok(status_of(write_u32(&mut c, ret, id)))
}

/// `proxy_increment_metric(metric_id, delta i64)` — counter delta<=0 => BAD_ARGUMENT.
pub fn proxy_increment_metric(c: C<'_>, id: i32, delta: i64) -> Result<i32> {
    allowed(&c, "proxy_increment_metric")?;
    Ok(st(c.data().shared.increment_metric(id as u32, delta)))
}

/// `proxy_record_metric(metric_id, value i64)`
pub fn proxy_record_metric(c: C<'_>, id: i32, value: i64) -> Result<i32> {
    allowed(&c, "proxy_record_metric")?;
    Ok(st(c.data().shared.record_metric(id as u32, value)))
}

/// `proxy_get_metric(metric_id, ret_u64_ptr)`
pub fn proxy_get_metric(mut c: C<'_>, id: i32, ret: i32) -> Result<i32> {
    allowed(&c, "proxy_get_metric")?;
    match c.data().shared.get_metric(id as u32) {
        Ok(v) => Ok(status_of(write_bytes(&mut c, ret, &v.to_le_bytes()))),
        Err(s) => Ok(st(s)),
    }
}

// ---------------------------------------------------------------- contexts, foreign functions

/// `proxy_set_effective_context(context_id)` — BAD_ARGUMENT for an unknown id.
pub fn proxy_set_effective_context(mut c: C<'_>, id: i32) -> Result<i32> {
    allowed(&c, "proxy_set_effective_context")?;
    let s = c.data_mut();
    let id = id as u32;
    if id == s.root_id || s.streams.contains_key(&id) {
        s.effective = id;
        Ok(OK)
    } else {
        Ok(st(Status::BadArgument))
    }
}

/// `proxy_done()` — NOT_FOUND unless the root context's `proxy_on_done` returned false.
pub fn proxy_done(mut c: C<'_>) -> Result<i32> {
    allowed(&c, "proxy_done")?;
    let s = c.data_mut();
    if s.done_pending {
        s.done_pending = false;
        s.done_called = true;
        Ok(OK)
    } else {
        Ok(st(Status::NotFound))
    }
}

/// `proxy_call_foreign_function(name, args, ret_ptr_ptr, ret_size_ptr)` — functions a
/// test registered, a few Envoy built-ins recorded as no-ops, NOT_FOUND for the rest.
pub fn proxy_call_foreign_function(
    mut c: C<'_>,
    np: i32,
    nl: i32,
    ap: i32,
    al: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Result<i32> {
    allowed(&c, "proxy_call_foreign_function")?;
    let name = tri!(read_string(&mut c, np, nl));
    let args = tri!(read_bytes(&mut c, ap, al));
    let s = c.data_mut();
    if let Some(stream) = s.streams.get_mut(&s.effective) {
        stream
            .record
            .foreign_calls
            .push((name.clone(), args.clone()));
    }
    let result = match s.foreign.get_mut(&name) {
        Some(f) => f(&args),
        None => match name.as_str() {
            "clear_route_cache" | "set_envoy_filter_state" | "declare_property" => Ok(Vec::new()),
            _ => Err(Status::NotFound),
        },
    };
    match result {
        Ok(out) => copy_out(&mut c, &out, ret_ptr, ret_size),
        Err(e) => Ok(st(e)),
    }
}

/// Envoy-only `envoy_resolve_dns(addr_ptr, addr_len, ret_token_ptr)` — recorded; never answered.
pub fn envoy_resolve_dns(mut c: C<'_>, ap: i32, al: i32, ret: i32) -> Result<i32> {
    allowed(&c, "envoy_resolve_dns")?;
    let addr = tri!(read_string(&mut c, ap, al));
    let s = c.data_mut();
    let token = next_token(s);
    s.dns_requests.push((token, addr));
    Ok(status_of(write_u32(&mut c, ret, token)))
}

/// cpp-host always registers `env.pthread_equal(a, b)`.
pub fn pthread_equal(_c: C<'_>, a: i32, b: i32) -> i32 {
    i32::from(a == b)
}

/// cpp-host always registers `env.emscripten_notify_memory_growth(index)`.
pub fn emscripten_notify_memory_growth(_c: C<'_>, _index: i32) {}

/// Imports only registered when the module advertises ABI 0.1.0.
pub(crate) const ABI_0_1_0_ONLY: [&str; 4] = [
    "proxy_get_configuration",
    "proxy_continue_request",
    "proxy_continue_response",
    "proxy_clear_route_cache",
];

/// Every `env` import the host provides.
pub(crate) const ENV_IMPORTS: &[&str] = &[
    "proxy_log",
    "proxy_get_log_level",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_configuration",
    "proxy_get_buffer_bytes",
    "proxy_set_buffer_bytes",
    "proxy_get_buffer_status",
    "proxy_get_header_map_pairs",
    "proxy_set_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_add_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_get_header_map_size",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_continue_request",
    "proxy_continue_response",
    "proxy_clear_route_cache",
    "proxy_send_local_response",
    "proxy_get_status",
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_define_metric",
    "proxy_increment_metric",
    "proxy_record_metric",
    "proxy_get_metric",
    "proxy_set_effective_context",
    "proxy_done",
    "proxy_call_foreign_function",
    "envoy_resolve_dns",
    "pthread_equal",
    "emscripten_notify_memory_growth",
];

/// Registers every `env` import. The `proxy_*` ones answer with the status set by
/// [`crate::Vm::fail_host_call`] instead of running, when one is set.
pub(crate) fn link(l: &mut Linker<HostState>) -> Result<()> {
    const E: &str = "env";
    faulty(l, "proxy_log", proxy_log)?;
    faulty(l, "proxy_get_log_level", proxy_get_log_level)?;
    faulty(
        l,
        "proxy_get_current_time_nanoseconds",
        proxy_get_current_time_nanoseconds,
    )?;
    faulty(
        l,
        "proxy_set_tick_period_milliseconds",
        proxy_set_tick_period_milliseconds,
    )?;
    faulty(l, "proxy_get_configuration", proxy_get_configuration)?;
    faulty(l, "proxy_get_buffer_bytes", proxy_get_buffer_bytes)?;
    faulty(l, "proxy_set_buffer_bytes", proxy_set_buffer_bytes)?;
    faulty(l, "proxy_get_buffer_status", proxy_get_buffer_status)?;
    faulty(l, "proxy_get_header_map_pairs", proxy_get_header_map_pairs)?;
    faulty(l, "proxy_set_header_map_pairs", proxy_set_header_map_pairs)?;
    faulty(l, "proxy_get_header_map_value", proxy_get_header_map_value)?;
    faulty(l, "proxy_add_header_map_value", proxy_add_header_map_value)?;
    faulty(
        l,
        "proxy_replace_header_map_value",
        proxy_replace_header_map_value,
    )?;
    faulty(
        l,
        "proxy_remove_header_map_value",
        proxy_remove_header_map_value,
    )?;
    faulty(l, "proxy_get_header_map_size", proxy_get_header_map_size)?;
    faulty(l, "proxy_get_property", proxy_get_property)?;
    faulty(l, "proxy_set_property", proxy_set_property)?;
    faulty(l, "proxy_continue_stream", proxy_continue_stream)?;
    faulty(l, "proxy_close_stream", proxy_close_stream)?;
    faulty(l, "proxy_continue_request", proxy_continue_request)?;
    faulty(l, "proxy_continue_response", proxy_continue_response)?;
    faulty(l, "proxy_clear_route_cache", proxy_clear_route_cache)?;
    faulty(l, "proxy_send_local_response", proxy_send_local_response)?;
    faulty(l, "proxy_get_status", proxy_get_status)?;
    faulty(l, "proxy_http_call", proxy_http_call)?;
    faulty(l, "proxy_grpc_call", proxy_grpc_call)?;
    faulty(l, "proxy_grpc_stream", proxy_grpc_stream)?;
    faulty(l, "proxy_grpc_send", proxy_grpc_send)?;
    faulty(l, "proxy_grpc_cancel", proxy_grpc_cancel)?;
    faulty(l, "proxy_grpc_close", proxy_grpc_close)?;
    faulty(l, "proxy_get_shared_data", proxy_get_shared_data)?;
    faulty(l, "proxy_set_shared_data", proxy_set_shared_data)?;
    faulty(
        l,
        "proxy_register_shared_queue",
        proxy_register_shared_queue,
    )?;
    faulty(l, "proxy_resolve_shared_queue", proxy_resolve_shared_queue)?;
    faulty(l, "proxy_enqueue_shared_queue", proxy_enqueue_shared_queue)?;
    faulty(l, "proxy_dequeue_shared_queue", proxy_dequeue_shared_queue)?;
    faulty(l, "proxy_define_metric", proxy_define_metric)?;
    faulty(l, "proxy_increment_metric", proxy_increment_metric)?;
    faulty(l, "proxy_record_metric", proxy_record_metric)?;
    faulty(l, "proxy_get_metric", proxy_get_metric)?;
    faulty(
        l,
        "proxy_set_effective_context",
        proxy_set_effective_context,
    )?;
    faulty(l, "proxy_done", proxy_done)?;
    faulty(
        l,
        "proxy_call_foreign_function",
        proxy_call_foreign_function,
    )?;
    l.func_wrap(E, "envoy_resolve_dns", envoy_resolve_dns)?;
    l.func_wrap(E, "pthread_equal", pthread_equal)?;
    l.func_wrap(
        E,
        "emscripten_notify_memory_growth",
        emscripten_notify_memory_growth,
    )?;
    Ok(())
}

/// A `proxy_*` import that fails on demand: all of them return a status (`i32`), so a
/// fault is that status returned before the import runs (and changes nothing).
trait Faulty<Params> {
    fn link(self, l: &mut Linker<HostState>, name: &'static str) -> Result<()>;
}

macro_rules! faulty {
    ($($t:ident $v:ident),*) => {
        impl<F, $($t),*> Faulty<($($t,)*)> for F
        where
            F: Fn(C<'_>, $($t),*) -> Result<i32> + Send + Sync + 'static,
            $($t: wasmtime::WasmTy,)*
        {
            fn link(self, l: &mut Linker<HostState>, name: &'static str) -> Result<()> {
                l.func_wrap("env", name, move |c: C<'_>, $($v: $t),*| -> Result<i32> {
                    if let Some(status) = c.data().fault(name) {
                        return Ok(st(status));
                    }
                    self(c, $($v),*)
                })?;
                Ok(())
            }
        }
    };
}

faulty!();
faulty!(A1 a1);
faulty!(A1 a1, A2 a2);
faulty!(A1 a1, A2 a2, A3 a3);
faulty!(A1 a1, A2 a2, A3 a3, A4 a4);
faulty!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5);
faulty!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6);
faulty!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7);
faulty!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8);
faulty!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8, A9 a9);
faulty!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8, A9 a9, A10 a10);
faulty!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8, A9 a9, A10 a10, A11 a11);
faulty!(A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7, A8 a8, A9 a9, A10 a10, A11 a11, A12 a12);

fn faulty<P>(l: &mut Linker<HostState>, name: &'static str, f: impl Faulty<P>) -> Result<()> {
    f.link(l, name)
}
