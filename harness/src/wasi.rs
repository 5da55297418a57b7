//! Envoy's WASI preview1 subset (proxy-wasm-cpp-host exports.cc), registered under both
//! `wasi_snapshot_preview1` and `wasi_unstable`: stdout/stderr go to the log, clocks are
//! the VM's virtual clock, environment is the configured env, everything else is a stub
//! answering what Envoy answers.

use wasmtime::Result;
use wasmtime::{Caller, Linker};

use crate::context::HostState;
use crate::hostcalls::{read_bytes, write_bytes, write_u32};
use crate::types::LogLevel;

type C<'a> = Caller<'a, HostState>;

const SUCCESS: i32 = 0;
const BADF: i32 = 8;
const FAULT: i32 = 21;
const INVAL: i32 = 28;
const NOENT: i32 = 44;
const NOSYS: i32 = 52;
const NOTDIR: i32 = 20;
const NOTSUP: i32 = 58;

fn is_std(fd: i32) -> bool {
    fd == 1 || fd == 2
}

fn gather(c: &mut C<'_>, iovs: i32, n: i32) -> Result<Vec<u8>, i32> {
    let mut out = Vec::new();
    for i in 0..n.max(0) {
        let base = iovs.wrapping_add(i.wrapping_mul(8));
        let iov = read_bytes(c, base, 8).map_err(|_| FAULT)?;
        let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
        let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
        out.extend(read_bytes(c, ptr, len).map_err(|_| FAULT)?);
    }
    Ok(out)
}

/// `fd_write(fd, iovs, iovs_len, nwritten_ptr)` — fd 1 → Info log, fd 2 → Error log.
pub fn fd_write(mut c: C<'_>, fd: i32, iovs: i32, n: i32, nwritten: i32) -> i32 {
    if !is_std(fd) {
        return BADF;
    }
    let data = match gather(&mut c, iovs, n) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let len = data.len() as u32;
    let mut msg = String::from_utf8_lossy(&data).into_owned();
    if msg.ends_with('\n') {
        msg.pop();
    }
    let level = if fd == 1 {
        LogLevel::Info
    } else {
        LogLevel::Error
    };
    c.data_mut().log(level, msg);
    match write_u32(&mut c, nwritten, len) {
        Ok(()) => SUCCESS,
        Err(_) => FAULT,
    }
}

/// `fd_pwrite(fd, iovs, iovs_len, offset, nwritten_ptr)` — as fd_write, offset ignored.
pub fn fd_pwrite(c: C<'_>, fd: i32, iovs: i32, n: i32, _off: i64, nwritten: i32) -> i32 {
    fd_write(c, fd, iovs, n, nwritten)
}

/// `fd_read(fd, iovs, iovs_len, nread_ptr)` — NOSYS.
pub fn fd_read(_c: C<'_>, _fd: i32, _iovs: i32, _n: i32, _nread: i32) -> i32 {
    NOSYS
}

/// `fd_pread(fd, iovs, iovs_len, offset, nread_ptr)` — NOSYS.
pub fn fd_pread(_c: C<'_>, _fd: i32, _iovs: i32, _n: i32, _off: i64, _nread: i32) -> i32 {
    NOSYS
}

/// `fd_seek(fd, offset, whence, newoffset_ptr)` — logs an error, returns 0 (as cpp-host).
pub fn fd_seek(mut c: C<'_>, _fd: i32, _off: i64, _whence: i32, _new: i32) -> i32 {
    c.data_mut()
        .log(LogLevel::Error, "wasi_unstable fd_seek".into());
    SUCCESS
}

/// `fd_close(fd)` — logs an error, returns 0 (as cpp-host).
pub fn fd_close(mut c: C<'_>, _fd: i32) -> i32 {
    c.data_mut()
        .log(LogLevel::Error, "wasi_unstable fd_close".into());
    SUCCESS
}

/// `fd_fdstat_get(fd, buf)` — 24-byte fdstat with rights FD_WRITE for fd 1/2, else BADF.
pub fn fd_fdstat_get(mut c: C<'_>, fd: i32, buf: i32) -> i32 {
    if !is_std(fd) {
        return BADF;
    }
    // fs_filetype, fs_flags and inheriting rights 0; rights_base = FD_WRITE (as cpp-host).
    let mut st = [0u8; 24];
    st[8..16].copy_from_slice(&64u64.to_le_bytes());
    match write_bytes(&mut c, buf, &st) {
        Ok(()) => SUCCESS,
        Err(_) => FAULT,
    }
}

/// `fd_fdstat_set_flags(fd, flags)` — NOSYS.
pub fn fd_fdstat_set_flags(_c: C<'_>, _fd: i32, _flags: i32) -> i32 {
    NOSYS
}

/// `fd_fdstat_set_rights(fd, base, inheriting)` — SUCCESS for 1/2, else BADF.
pub fn fd_fdstat_set_rights(_c: C<'_>, fd: i32, _b: i64, _i: i64) -> i32 {
    std_ok(fd)
}

fn std_ok(fd: i32) -> i32 {
    if is_std(fd) {
        SUCCESS
    } else {
        BADF
    }
}

/// `fd_advise(fd, offset, len, advice)` — SUCCESS for 1/2, else BADF.
pub fn fd_advise(_c: C<'_>, fd: i32, _o: i64, _l: i64, _a: i32) -> i32 {
    std_ok(fd)
}

/// `fd_allocate(fd, offset, len)` — SUCCESS for 1/2, else BADF.
pub fn fd_allocate(_c: C<'_>, fd: i32, _o: i64, _l: i64) -> i32 {
    std_ok(fd)
}

/// `fd_datasync(fd)` — SUCCESS for 1/2, else BADF.
pub fn fd_datasync(_c: C<'_>, fd: i32) -> i32 {
    std_ok(fd)
}

/// `fd_sync(fd)` — SUCCESS for 1/2, else BADF.
pub fn fd_sync(_c: C<'_>, fd: i32) -> i32 {
    std_ok(fd)
}

/// `fd_filestat_set_size(fd, size)` — SUCCESS for 1/2, else BADF.
pub fn fd_filestat_set_size(_c: C<'_>, fd: i32, _s: i64) -> i32 {
    std_ok(fd)
}

/// `fd_filestat_set_times(fd, atim, mtim, flags)` — SUCCESS for 1/2, else BADF.
pub fn fd_filestat_set_times(_c: C<'_>, fd: i32, _a: i64, _m: i64, _f: i32) -> i32 {
    std_ok(fd)
}

/// `fd_filestat_get(fd, buf)` — BADF.
pub fn fd_filestat_get(_c: C<'_>, _fd: i32, _buf: i32) -> i32 {
    BADF
}

/// `fd_tell(fd, offset_ptr)` — 0 for fd 1/2, else BADF.
pub fn fd_tell(mut c: C<'_>, fd: i32, ret: i32) -> i32 {
    if !is_std(fd) {
        return BADF;
    }
    match write_bytes(&mut c, ret, &0u64.to_le_bytes()) {
        Ok(()) => SUCCESS,
        Err(_) => FAULT,
    }
}

/// `fd_readdir(fd, buf, len, cookie, bufused_ptr)` — nread 0, NOTDIR.
pub fn fd_readdir(mut c: C<'_>, _fd: i32, _b: i32, _l: i32, _cookie: i64, used: i32) -> i32 {
    let _ = write_u32(&mut c, used, 0);
    NOTDIR
}

/// `fd_renumber(fd, to)` — BADF unless both are 1/2.
pub fn fd_renumber(_c: C<'_>, fd: i32, to: i32) -> i32 {
    if is_std(fd) && is_std(to) {
        SUCCESS
    } else {
        BADF
    }
}

/// `fd_prestat_get(fd, buf)` — BADF ("no preopens").
pub fn fd_prestat_get(_c: C<'_>, _fd: i32, _buf: i32) -> i32 {
    BADF
}

/// `fd_prestat_dir_name(fd, path, len)` — NOSYS.
pub fn fd_prestat_dir_name(_c: C<'_>, _fd: i32, _p: i32, _l: i32) -> i32 {
    NOSYS
}

/// `path_open(...)` — NOENT.
#[allow(clippy::too_many_arguments)]
pub fn path_open(
    _c: C<'_>,
    _fd: i32,
    _df: i32,
    _p: i32,
    _l: i32,
    _of: i32,
    _rb: i64,
    _ri: i64,
    _ff: i32,
    _ret: i32,
) -> i32 {
    NOENT
}

/// `path_create_directory(fd, path, len)` — NOTSUP.
pub fn path_create_directory(_c: C<'_>, _fd: i32, _p: i32, _l: i32) -> i32 {
    NOTSUP
}

/// `path_filestat_get(fd, flags, path, len, buf)` — NOTSUP.
pub fn path_filestat_get(_c: C<'_>, _fd: i32, _f: i32, _p: i32, _l: i32, _b: i32) -> i32 {
    NOTSUP
}

/// `path_filestat_set_times(fd, flags, path, len, atim, mtim, fst_flags)` — NOTSUP.
#[allow(clippy::too_many_arguments)]
pub fn path_filestat_set_times(
    _c: C<'_>,
    _fd: i32,
    _f: i32,
    _p: i32,
    _l: i32,
    _a: i64,
    _m: i64,
    _ff: i32,
) -> i32 {
    NOTSUP
}

/// `path_link(old_fd, old_flags, old_path, old_len, new_fd, new_path, new_len)` — NOTSUP.
#[allow(clippy::too_many_arguments)]
pub fn path_link(_c: C<'_>, _a: i32, _b: i32, _d: i32, _e: i32, _f: i32, _g: i32, _h: i32) -> i32 {
    NOTSUP
}

/// `path_readlink(fd, path, len, buf, buf_len, bufused_ptr)` — NOTSUP.
pub fn path_readlink(_c: C<'_>, _a: i32, _b: i32, _d: i32, _e: i32, _f: i32, _g: i32) -> i32 {
    NOTSUP
}

/// `path_remove_directory(fd, path, len)` — NOTSUP.
pub fn path_remove_directory(_c: C<'_>, _fd: i32, _p: i32, _l: i32) -> i32 {
    NOTSUP
}

/// `path_rename(fd, old, old_len, new_fd, new, new_len)` — NOTSUP.
pub fn path_rename(_c: C<'_>, _a: i32, _b: i32, _d: i32, _e: i32, _f: i32, _g: i32) -> i32 {
    NOTSUP
}

/// `path_symlink(old, old_len, fd, new, new_len)` — NOTSUP.
pub fn path_symlink(_c: C<'_>, _a: i32, _b: i32, _d: i32, _e: i32, _f: i32) -> i32 {
    NOTSUP
}

/// `path_unlink_file(fd, path, len)` — NOTSUP.
pub fn path_unlink_file(_c: C<'_>, _fd: i32, _p: i32, _l: i32) -> i32 {
    NOTSUP
}

/// `sock_accept(fd, flags, ret_fd)` — NOTSUP.
pub fn sock_accept(_c: C<'_>, _fd: i32, _f: i32, _r: i32) -> i32 {
    NOTSUP
}

/// `sock_recv(fd, ri_data, ri_len, ri_flags, ro_len_ptr, ro_flags_ptr)` — NOTSUP.
pub fn sock_recv(_c: C<'_>, _a: i32, _b: i32, _d: i32, _e: i32, _f: i32, _g: i32) -> i32 {
    NOTSUP
}

/// `sock_send(fd, si_data, si_len, si_flags, so_len_ptr)` — NOTSUP.
pub fn sock_send(_c: C<'_>, _a: i32, _b: i32, _d: i32, _e: i32, _f: i32) -> i32 {
    NOTSUP
}

/// `sock_shutdown(fd, how)` — NOTSUP.
pub fn sock_shutdown(_c: C<'_>, _fd: i32, _how: i32) -> i32 {
    NOTSUP
}

fn env_strings(c: &C<'_>) -> Vec<Vec<u8>> {
    c.data()
        .settings
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}\0").into_bytes())
        .collect()
}

/// `environ_sizes_get(count_ptr, buf_size_ptr)` — the configured env only.
pub fn environ_sizes_get(mut c: C<'_>, count: i32, size: i32) -> i32 {
    let env = env_strings(&c);
    let total: usize = env.iter().map(Vec::len).sum();
    match write_u32(&mut c, count, env.len() as u32)
        .and_then(|_| write_u32(&mut c, size, total as u32))
    {
        Ok(()) => SUCCESS,
        Err(_) => FAULT,
    }
}

/// `environ_get(environ_ptrs, environ_buf)` — `KEY=VALUE\0` strings.
pub fn environ_get(mut c: C<'_>, ptrs: i32, buf: i32) -> i32 {
    let env = env_strings(&c);
    let mut off = 0i32;
    for (i, e) in env.iter().enumerate() {
        let at = buf.wrapping_add(off);
        if write_u32(&mut c, ptrs.wrapping_add(4 * i as i32), at as u32).is_err()
            || write_bytes(&mut c, at, e).is_err()
        {
            return FAULT;
        }
        off = off.wrapping_add(e.len() as i32);
    }
    SUCCESS
}

/// `args_sizes_get(argc_ptr, buf_size_ptr)` — no arguments.
pub fn args_sizes_get(mut c: C<'_>, argc: i32, size: i32) -> i32 {
    match write_u32(&mut c, argc, 0).and_then(|_| write_u32(&mut c, size, 0)) {
        Ok(()) => SUCCESS,
        Err(_) => FAULT,
    }
}

/// `args_get(argv, argv_buf)` — nothing to write.
pub fn args_get(_c: C<'_>, _argv: i32, _buf: i32) -> i32 {
    SUCCESS
}

/// `clock_time_get(id, precision, time_ptr)` — REALTIME/MONOTONIC from the virtual clock.
pub fn clock_time_get(mut c: C<'_>, id: i32, _precision: i64, ret: i32) -> i32 {
    let t = match id {
        0 => c.data().realtime_ns,
        1 => c.data().monotonic_ns,
        _ => return NOTSUP,
    };
    match write_bytes(&mut c, ret, &t.to_le_bytes()) {
        Ok(()) => SUCCESS,
        Err(_) => FAULT,
    }
}

/// `clock_res_get(id, res_ptr)` — 1 ns for REALTIME/MONOTONIC.
pub fn clock_res_get(mut c: C<'_>, id: i32, ret: i32) -> i32 {
    if id != 0 && id != 1 {
        return NOTSUP;
    }
    match write_bytes(&mut c, ret, &1u64.to_le_bytes()) {
        Ok(()) => SUCCESS,
        Err(_) => FAULT,
    }
}

/// `random_get(buf, len)` — up to 64 KiB, else INVAL (cpp-host limit). Deterministic
/// per VM (seeded xorshift), so tests reproduce.
pub fn random_get(mut c: C<'_>, buf: i32, len: i32) -> i32 {
    let len = len as u32 as usize;
    if len > 64 * 1024 {
        return INVAL;
    }
    let mut out = vec![0u8; len];
    let s = c.data_mut();
    for b in out.iter_mut() {
        s.rng ^= s.rng << 13;
        s.rng ^= s.rng >> 7;
        s.rng ^= s.rng << 17;
        *b = (s.rng >> 24) as u8;
    }
    match write_bytes(&mut c, buf, &out) {
        Ok(()) => SUCCESS,
        Err(_) => FAULT,
    }
}

/// `sched_yield()` — SUCCESS.
pub fn sched_yield(_c: C<'_>) -> i32 {
    SUCCESS
}

/// `poll_oneoff(in, out, nsubs, nevents_ptr)` — nevents 0, SUCCESS (the Go runtime needs it).
pub fn poll_oneoff(mut c: C<'_>, _in: i32, _out: i32, _n: i32, nevents: i32) -> i32 {
    match write_u32(&mut c, nevents, 0) {
        Ok(()) => SUCCESS,
        Err(_) => FAULT,
    }
}

/// `proc_exit(code)` — logs an error and returns, as cpp-host does (the guest usually
/// traps right after with `unreachable`).
pub fn proc_exit(mut c: C<'_>, code: i32) {
    c.data_mut()
        .log(LogLevel::Error, format!("wasi_unstable proc_exit({code})"));
}

/// Every WASI function the host provides.
pub(crate) const WASI_IMPORTS: &[&str] = &[
    "fd_write",
    "fd_pwrite",
    "fd_read",
    "fd_pread",
    "fd_seek",
    "fd_close",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_fdstat_set_rights",
    "fd_advise",
    "fd_allocate",
    "fd_datasync",
    "fd_sync",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_filestat_get",
    "fd_tell",
    "fd_readdir",
    "fd_renumber",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "path_open",
    "path_create_directory",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_link",
    "path_readlink",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
    "sock_accept",
    "sock_recv",
    "sock_send",
    "sock_shutdown",
    "environ_sizes_get",
    "environ_get",
    "args_sizes_get",
    "args_get",
    "clock_time_get",
    "clock_res_get",
    "random_get",
    "sched_yield",
    "poll_oneoff",
    "proc_exit",
];

/// Registers the subset under `module` (`wasi_snapshot_preview1` or `wasi_unstable`).
pub(crate) fn link(l: &mut Linker<HostState>, m: &str) -> Result<()> {
    l.func_wrap(m, "fd_write", fd_write)?;
    l.func_wrap(m, "fd_pwrite", fd_pwrite)?;
    l.func_wrap(m, "fd_read", fd_read)?;
    l.func_wrap(m, "fd_pread", fd_pread)?;
    l.func_wrap(m, "fd_seek", fd_seek)?;
    l.func_wrap(m, "fd_close", fd_close)?;
    l.func_wrap(m, "fd_fdstat_get", fd_fdstat_get)?;
    l.func_wrap(m, "fd_fdstat_set_flags", fd_fdstat_set_flags)?;
    l.func_wrap(m, "fd_fdstat_set_rights", fd_fdstat_set_rights)?;
    l.func_wrap(m, "fd_advise", fd_advise)?;
    l.func_wrap(m, "fd_allocate", fd_allocate)?;
    l.func_wrap(m, "fd_datasync", fd_datasync)?;
    l.func_wrap(m, "fd_sync", fd_sync)?;
    l.func_wrap(m, "fd_filestat_set_size", fd_filestat_set_size)?;
    l.func_wrap(m, "fd_filestat_set_times", fd_filestat_set_times)?;
    l.func_wrap(m, "fd_filestat_get", fd_filestat_get)?;
    l.func_wrap(m, "fd_tell", fd_tell)?;
    l.func_wrap(m, "fd_readdir", fd_readdir)?;
    l.func_wrap(m, "fd_renumber", fd_renumber)?;
    l.func_wrap(m, "fd_prestat_get", fd_prestat_get)?;
    l.func_wrap(m, "fd_prestat_dir_name", fd_prestat_dir_name)?;
    l.func_wrap(m, "path_open", path_open)?;
    l.func_wrap(m, "path_create_directory", path_create_directory)?;
    l.func_wrap(m, "path_filestat_get", path_filestat_get)?;
    l.func_wrap(m, "path_filestat_set_times", path_filestat_set_times)?;
    l.func_wrap(m, "path_link", path_link)?;
    l.func_wrap(m, "path_readlink", path_readlink)?;
    l.func_wrap(m, "path_remove_directory", path_remove_directory)?;
    l.func_wrap(m, "path_rename", path_rename)?;
    l.func_wrap(m, "path_symlink", path_symlink)?;
    l.func_wrap(m, "path_unlink_file", path_unlink_file)?;
    l.func_wrap(m, "sock_accept", sock_accept)?;
    l.func_wrap(m, "sock_recv", sock_recv)?;
    l.func_wrap(m, "sock_send", sock_send)?;
    l.func_wrap(m, "sock_shutdown", sock_shutdown)?;
    l.func_wrap(m, "environ_sizes_get", environ_sizes_get)?;
    l.func_wrap(m, "environ_get", environ_get)?;
    l.func_wrap(m, "args_sizes_get", args_sizes_get)?;
    l.func_wrap(m, "args_get", args_get)?;
    l.func_wrap(m, "clock_time_get", clock_time_get)?;
    l.func_wrap(m, "clock_res_get", clock_res_get)?;
    l.func_wrap(m, "random_get", random_get)?;
    l.func_wrap(m, "sched_yield", sched_yield)?;
    l.func_wrap(m, "poll_oneoff", poll_oneoff)?;
    l.func_wrap(m, "proc_exit", proc_exit)?;
    Ok(())
}
