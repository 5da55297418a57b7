//! Envoy (one worker) from a caller-written bootstrap: for tests with many listeners on
//! fixed addresses (e.g. one listener pair per policy set). Starts, waits for `/ready`,
//! kills Envoy on drop; panics with Envoy's log when it does not become ready.

use crate::http::Request;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long Envoy may take to become ready (V8 compiles the module at start-up).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A running Envoy; killed on drop.
pub struct MultiEnvoy {
    child: Child,
    dir: tempfile::TempDir,
    admin: SocketAddr,
}

impl MultiEnvoy {
    /// Writes `bootstrap` (its `admin` section is set here) and starts Envoy with one worker,
    /// logging warnings and errors.
    pub fn start(bootstrap: &Value) -> MultiEnvoy {
        MultiEnvoy::start_logging(bootstrap, "warning")
    }

    /// [`MultiEnvoy::start`] with Envoy's log at `level` (`info` shows what filters log).
    pub fn start_logging(bootstrap: &Value, level: &str) -> MultiEnvoy {
        let dir = tempfile::Builder::new()
            .prefix("portcullis-e2e-multi-")
            .tempdir()
            .expect("temp dir");
        let mut bootstrap = bootstrap.clone();
        bootstrap["admin"] = serde_json::json!({
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}
        });
        let path = dir.path().join("bootstrap.json");
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&bootstrap).expect("json"),
        )
        .expect("write bootstrap");
        let log_path = dir.path().join("envoy.log");
        let log = std::fs::File::create(&log_path).expect("create log");
        let admin_path = dir.path().join("admin-address");
        let child = Command::new(crate::envoy_binary())
            .arg("-c")
            .arg(&path)
            .args(["--concurrency", "1", "--disable-hot-restart", "-l", level])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", crate::envoy_binary().display()));
        let mut me = MultiEnvoy {
            child,
            dir,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(s)) = me.child.try_wait() {
                panic!("envoy exited ({s}) before it was ready:\n{}", me.log());
            }
            assert!(
                Instant::now() < deadline,
                "envoy not ready within {READY_TIMEOUT:?}:\n{}",
                me.log()
            );
            if me.admin.port() == 0 {
                if let Some(a) = std::fs::read_to_string(&admin_path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    me.admin = a;
                }
            }
            if me.admin.port() != 0 {
                let ready = Request::get("/ready").host("admin").try_send(me.admin);
                if ready.is_ok_and(|r| r.status == 200) {
                    return me;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The admin interface's address.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The address Envoy bound listener `name` to (a bootstrap port 0 resolved); panics
    /// with Envoy's log when the listener does not show up in time.
    pub fn listener(&self, name: &str) -> SocketAddr {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(a) = self.try_listener(name) {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "envoy: no listener {name:?} within {READY_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_listener(&self, name: &str) -> Option<SocketAddr> {
        let r = Request::get("/listeners?format=json")
            .host("admin")
            .try_send(self.admin)
            .ok()?;
        let v: Value = serde_json::from_slice(&r.body).ok()?;
        let sa = &v["listener_statuses"]
            .as_array()?
            .iter()
            .find(|l| l["name"] == name)?["local_address"]["socket_address"];
        let ip: IpAddr = sa["address"].as_str()?.parse().ok()?;
        Some(SocketAddr::new(
            ip,
            u16::try_from(sa["port_value"].as_u64()?).ok()?,
        ))
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        read(&self.dir.path().join("envoy.log"))
    }
}

fn read(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
}

impl Drop for MultiEnvoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free on every one of `ips`, for listeners Envoy binds later (listeners that
/// must share a port among them).
///
/// Picked at random below the kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`,
/// 32768-60999 by default), never the same twice in a process. Between this check and Envoy's
/// bind nothing binding port 0 can take it (Envoy's admin listener, the tests' echo and list
/// servers, client sockets all get ephemeral ports), nor another test of the same binary:
/// CI once failed when `evasion_catalogue`'s two tests ran side by side and one Envoy's
/// listener port, picked from the ephemeral range, was taken before it bound.
pub fn free_port_on(ips: &[IpAddr]) -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = if ephemeral > 11_000 {
        (10_000u16, ephemeral)
    } else {
        (ephemeral.max(1024), u16::MAX)
    };
    let span = u64::from(high - low);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..10_000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(given.len());
        let port = low + u16::try_from(h.finish() % span).unwrap_or(0);
        if given.contains(&port) {
            continue;
        }
        if ips
            .iter()
            .all(|ip| TcpListener::bind(SocketAddr::new(*ip, port)).is_ok())
        {
            given.insert(port);
            return port;
        }
    }
    panic!("no port free on all of {ips:?} in {low}..{high}");
}
