//! A real Envoy running the release filter: bootstrap, start, readiness, log, stats.

use crate::echo::EchoServer;
use crate::http::{Request, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long Envoy may take to become ready (V8 compiles the module at start-up).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The access log line: status, response code details, downstream remote (client) address,
/// path.
pub const ACCESS_LOG_FORMAT: &str =
    "%RESPONSE_CODE% %RESPONSE_CODE_DETAILS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %REQ(:PATH)%\n";

/// What to run.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    /// The filter's JSON configuration (the `WasmPlugin` `pluginConfig`), verbatim; `None`
    /// runs Envoy without the filter.
    pub plugin: Option<String>,
    /// The `.wasm` to load; `None` = [`crate::wasm_path`].
    pub wasm: Option<PathBuf>,
    /// HCM `use_remote_address` (true at an Istio gateway).
    pub use_remote_address: bool,
    /// HCM `xff_num_trusted_hops` (Istio's `numTrustedProxies`).
    pub xff_num_trusted_hops: u32,
    /// The listener's address: `127.0.0.1` or `::1`.
    pub listen: IpAddr,
    /// The bootstrap's `stats_config` (e.g. `stats_tags`), verbatim; `None` = Envoy's default.
    pub stats_config: Option<Value>,
    /// Host calls (imports such as `proxy_get_property`) Envoy refuses the filter: every
    /// other import and export is listed in the plugin's `capability_restriction_config`,
    /// and Envoy answers a call to one left out with `InternalFailure` — the one way to
    /// make a host call fail on demand in a real Envoy.
    pub restricted_host_calls: Vec<String>,
    /// More static clusters (name, address), e.g. a partner-list server the filter fetches
    /// from with `http_call`.
    pub clusters: Vec<(String, SocketAddr)>,
    /// Serve the listener from a file Envoy watches (LDS `path_config_source`, `lds.json`
    /// beside the bootstrap) instead of `static_resources`, so [`Envoy::update_plugin`]
    /// can change the filter's configuration while Envoy runs.
    pub listener_from_file: bool,
    /// Envoy worker threads (`--concurrency`; 1 unless set): each runs its own VM.
    pub concurrency: u32,
    /// Fields merged into the Wasm filter's `PluginConfig` (next to `vm_config`), e.g.
    /// Envoy's `fail_open` or `failure_policy`.
    pub wasm_options: serde_json::Map<String, Value>,
    /// HCM `max_request_headers_kb`; `None` = Envoy's default (60).
    pub max_request_headers_kb: Option<u32>,
}

impl EnvoyConfig {
    /// Envoy with the filter configured by `plugin_json`, configured like an Istio gateway
    /// (`use_remote_address: true`, no trusted hops), listening on 127.0.0.1.
    pub fn with_plugin(plugin_json: &str) -> EnvoyConfig {
        EnvoyConfig {
            plugin: Some(plugin_json.to_string()),
            wasm: None,
            use_remote_address: true,
            xff_num_trusted_hops: 0,
            listen: IpAddr::from([127, 0, 0, 1]),
            stats_config: None,
            restricted_host_calls: Vec::new(),
            clusters: Vec::new(),
            listener_from_file: false,
            concurrency: 1,
            wasm_options: serde_json::Map::new(),
            max_request_headers_kb: None,
        }
    }

    /// Runs `wasm` instead of the release filter.
    pub fn module(mut self, wasm: &Path) -> EnvoyConfig {
        self.wasm = Some(wasm.to_path_buf());
        self
    }

    /// Runs `n` Envoy workers.
    pub fn workers(mut self, n: u32) -> EnvoyConfig {
        self.concurrency = n;
        self
    }

    /// Sets a field of the Wasm filter's `PluginConfig` (see [`EnvoyConfig::wasm_options`]).
    pub fn wasm_option(mut self, key: &str, value: Value) -> EnvoyConfig {
        self.wasm_options.insert(key.to_string(), value);
        self
    }

    /// Sets HCM `max_request_headers_kb`.
    pub fn max_request_headers_kb(mut self, kb: u32) -> EnvoyConfig {
        self.max_request_headers_kb = Some(kb);
        self
    }

    /// Serves the listener from a watched file (see [`EnvoyConfig::listener_from_file`]).
    pub fn listener_from_file(mut self) -> EnvoyConfig {
        self.listener_from_file = true;
        self
    }

    /// The LDS file for [`EnvoyConfig::listener_from_file`]: the bootstrap's listener.
    pub fn lds(&self, echo: SocketAddr, access_log: &Path) -> Value {
        let mut b = self.bootstrap_with_static_listener(echo, access_log);
        let mut listener = b["static_resources"]["listeners"][0].take();
        listener["@type"] = json!("type.googleapis.com/envoy.config.listener.v3.Listener");
        json!({"resources": [listener]})
    }

    /// Adds a static cluster `name` with one endpoint at `addr`.
    pub fn cluster(mut self, name: &str, addr: SocketAddr) -> EnvoyConfig {
        self.clusters.push((name.to_string(), addr));
        self
    }

    /// Makes Envoy refuse the filter these host calls (see
    /// [`EnvoyConfig::restricted_host_calls`]).
    pub fn restrict_host_calls(mut self, calls: &[&str]) -> EnvoyConfig {
        self.restricted_host_calls = calls.iter().map(|c| c.to_string()).collect();
        self
    }

    /// Sets the bootstrap's `stats_config` (e.g. `{"stats_tags": [..]}`).
    pub fn stats_config(mut self, stats_config: Value) -> EnvoyConfig {
        self.stats_config = Some(stats_config);
        self
    }

    /// Sets HCM `xff_num_trusted_hops`.
    pub fn trusted_hops(mut self, n: u32) -> EnvoyConfig {
        self.xff_num_trusted_hops = n;
        self
    }

    /// Listens on `addr` (a loopback address).
    pub fn listen_on(mut self, addr: &str) -> EnvoyConfig {
        let ip: IpAddr = addr.parse().expect("an IP address");
        assert!(ip.is_loopback(), "{ip} is not a loopback address");
        self.listen = ip;
        self
    }

    /// The bootstrap (JSON, which is also YAML) for an upstream echo server on `echo`,
    /// writing its access log to `access_log` (one [`ACCESS_LOG_FORMAT`] line per request).
    /// With [`EnvoyConfig::listener_from_file`] the listener is read from `lds.json` beside
    /// `access_log`.
    pub fn bootstrap(&self, echo: SocketAddr, access_log: &Path) -> Value {
        let mut b = self.bootstrap_with_static_listener(echo, access_log);
        if self.listener_from_file {
            b["static_resources"]["listeners"] = json!([]);
            // Dynamic resources need a node identity.
            b["node"] = json!({"id": "portcullis-test", "cluster": "portcullis-test"});
            b["dynamic_resources"] = json!({"lds_config": {
                "path_config_source": {"path": access_log.with_file_name("lds.json").display().to_string()},
                "resource_api_version": "V3"
            }});
        }
        b
    }

    fn bootstrap_with_static_listener(&self, echo: SocketAddr, access_log: &Path) -> Value {
        let mut http_filters = Vec::new();
        if let Some(plugin) = &self.plugin {
            let wasm = self.wasm.clone().unwrap_or_else(crate::wasm_path);
            let mut filter = wasm_filter(&wasm, plugin);
            for (k, v) in &self.wasm_options {
                filter["typed_config"]["config"][k] = v.clone();
            }
            if !self.restricted_host_calls.is_empty() {
                let allowed: serde_json::Map<String, Value> = capabilities(&wasm)
                    .into_iter()
                    .filter(|c| !self.restricted_host_calls.contains(c))
                    .map(|c| (c, json!({})))
                    .collect();
                for c in &self.restricted_host_calls {
                    assert!(
                        !allowed.contains_key(c),
                        "{c} is listed as restricted and allowed"
                    );
                }
                filter["typed_config"]["config"]["capability_restriction_config"] =
                    json!({ "allowed_capabilities": allowed });
            }
            http_filters.push(filter);
        }
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
        }));
        let mut bootstrap = json!({
            "admin": {"address": socket_address(IpAddr::from([127, 0, 0, 1]), 0)},
            "static_resources": {
                "listeners": [{
                    "name": "ingress",
                    "address": socket_address(self.listen, 0),
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "ingress",
                            "use_remote_address": self.use_remote_address,
                            "xff_num_trusted_hops": self.xff_num_trusted_hops,
                            "normalize_path": true,
                            "access_log": [{
                                "name": "envoy.access_loggers.file",
                                "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                                    "path": access_log.display().to_string(),
                                    "log_format": {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}}
                                }
                            }],
                            "route_config": {
                                "name": "local",
                                "virtual_hosts": [{
                                    "name": "all",
                                    "domains": ["*"],
                                    "routes": [
                                        {"match": {"prefix": "/direct"},
                                         "direct_response": {"status": 200, "body": {"inline_string": "direct"}}},
                                        {"match": {"prefix": "/"}, "route": {"cluster": "echo"}}
                                    ]
                                }]
                            },
                            "http_filters": http_filters
                        }
                    }]}]
                }],
                "clusters": [{
                    "name": "echo",
                    "type": "STATIC",
                    "connect_timeout": "2s",
                    "load_assignment": {
                        "cluster_name": "echo",
                        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(echo.ip(), echo.port())}}]}]
                    }
                }]
            }
        });
        for (name, addr) in &self.clusters {
            if let Some(clusters) = bootstrap["static_resources"]["clusters"].as_array_mut() {
                clusters.push(json!({
                    "name": name,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": name,
                        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(addr.ip(), addr.port())}}]}]
                    }
                }));
            }
        }
        if let Some(kb) = self.max_request_headers_kb {
            bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
                ["typed_config"]["max_request_headers_kb"] = json!(kb);
        }
        if let Some(stats_config) = &self.stats_config {
            bootstrap["stats_config"] = stats_config.clone();
        }
        bootstrap
    }
}

/// `envoy.filters.http.wasm` running `wasm` on V8 with `plugin` as its configuration.
pub fn wasm_filter(wasm: &Path, plugin: &str) -> Value {
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "portcullis",
                "root_id": "portcullis",
                "vm_config": {
                    "vm_id": "portcullis",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm.display().to_string()}}
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": plugin
                }
            }
        }
    })
}

/// Every import and export name of the module at `wasm`: what a
/// `capability_restriction_config` must allow for the filter to run unrestricted.
pub fn capabilities(wasm: &Path) -> Vec<String> {
    let bytes = std::fs::read(wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
    let mut names = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        match payload.expect("a valid wasm module") {
            wasmparser::Payload::ExportSection(s) => {
                for e in s {
                    names.push(e.expect("an export").name.to_string());
                }
            }
            wasmparser::Payload::ImportSection(s) => {
                for imports in s {
                    for i in imports.expect("imports") {
                        names.push(i.expect("an import").1.name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    names.sort();
    names.dedup();
    names
}

fn socket_address(ip: IpAddr, port: u16) -> Value {
    json!({"socket_address": {"address": ip.to_string(), "port_value": port}})
}

/// Why Envoy did not become ready.
pub struct StartFailure {
    /// Envoy's exit status, if it exited.
    pub status: Option<ExitStatus>,
    /// Envoy's log.
    pub log: String,
    /// What went wrong.
    pub reason: String,
}

impl fmt::Debug for StartFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (exit: {:?})\n--- envoy log ---\n{}",
            self.reason, self.status, self.log
        )
    }
}

/// A running Envoy (one worker) plus its echo upstream; killed on drop.
pub struct Envoy {
    child: Child,
    dir: tempfile::TempDir,
    admin: SocketAddr,
    listener: SocketAddr,
    _echo: EchoServer,
    cfg: EnvoyConfig,
    echo_addr: SocketAddr,
}

impl Envoy {
    /// Starts Envoy and waits until it is ready; panics (with the log) when it is not.
    pub fn start(cfg: &EnvoyConfig) -> Envoy {
        Envoy::try_start(cfg).unwrap_or_else(|f| panic!("envoy did not start: {f:?}"))
    }

    /// Starts one Envoy per configuration, concurrently (start-up is mostly V8 compiling
    /// the module), and waits until all are ready; panics when one is not.
    pub fn start_many(cfgs: &[EnvoyConfig]) -> Vec<Envoy> {
        Envoy::try_start_many(cfgs)
            .into_iter()
            .map(|r| r.unwrap_or_else(|f| panic!("envoy did not start: {f:?}")))
            .collect()
    }

    /// [`Envoy::try_start`] for each configuration, concurrently.
    pub fn try_start_many(cfgs: &[EnvoyConfig]) -> Vec<Result<Envoy, StartFailure>> {
        std::thread::scope(|s| {
            let handles: Vec<_> = cfgs
                .iter()
                .map(|c| s.spawn(|| Envoy::try_start(c)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("envoy start-up thread panicked"))
                .collect()
        })
    }

    /// Starts Envoy and waits until it is ready or has exited.
    pub fn try_start(cfg: &EnvoyConfig) -> Result<Envoy, StartFailure> {
        let echo = EchoServer::start();
        let dir = tempfile::Builder::new()
            .prefix("portcullis-e2e-")
            .tempdir()
            .expect("temp dir");
        let bootstrap = dir.path().join("bootstrap.json");
        let access_log = dir.path().join("access.log");
        let text = serde_json::to_string_pretty(&cfg.bootstrap(echo.addr(), &access_log))
            .expect("bootstrap");
        std::fs::write(&bootstrap, text).expect("write bootstrap");
        if cfg.listener_from_file {
            let lds =
                serde_json::to_string_pretty(&cfg.lds(echo.addr(), &access_log)).expect("lds");
            std::fs::write(dir.path().join("lds.json"), lds).expect("write lds.json");
        }
        let log_path = dir.path().join("envoy.log");
        let log = std::fs::File::create(&log_path).expect("create log");
        let admin_path = dir.path().join("admin-address");
        let child = Command::new(crate::envoy_binary())
            .arg("-c")
            .arg(&bootstrap)
            .args(["--concurrency", &cfg.concurrency.to_string()])
            .args(["--disable-hot-restart", "-l", "info"])
            .args(["--file-flush-interval-msec", "50"])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", crate::envoy_binary().display()));
        let mut starting = Starting {
            child: Some(child),
            dir: Some(dir),
            log_path,
        };
        let admin = starting.wait_admin(&admin_path)?;
        starting.wait_ready(admin)?;
        let listener = starting.listener_address(admin)?;
        let (child, dir) = starting.take();
        Ok(Envoy {
            child,
            dir,
            admin,
            listener,
            echo_addr: echo.addr(),
            _echo: echo,
            cfg: cfg.clone(),
        })
    }

    /// Replaces the filter's configuration in the running Envoy (a listener update through
    /// the watched LDS file, moved into place as Envoy requires); needs
    /// [`EnvoyConfig::listener_from_file`]. The listener keeps its port.
    pub fn update_plugin(&mut self, plugin_json: &str) {
        assert!(self.cfg.listener_from_file, "the listener is static");
        self.cfg.plugin = Some(plugin_json.to_string());
        let mut cfg = self.cfg.clone();
        cfg.listen = self.listener.ip();
        let mut lds = cfg.lds(self.echo_addr, &self.dir.path().join("access.log"));
        lds["resources"][0]["address"] = socket_address(self.listener.ip(), self.listener.port());
        let tmp = self.dir.path().join("lds.json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&lds).expect("lds")).expect("write");
        std::fs::rename(&tmp, self.dir.path().join("lds.json")).expect("move lds.json");
    }

    /// The listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.listener
    }

    /// The admin interface's address.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        read_log(&self.dir.path().join("envoy.log"))
    }

    /// The access log so far ([`ACCESS_LOG_FORMAT`] lines).
    pub fn access_log(&self) -> String {
        read_log(&self.dir.path().join("access.log"))
    }

    /// Waits (up to 10 s) until the log contains `needle`; returns the log. Panics with the
    /// log when it does not.
    pub fn wait_for_log(&self, needle: &str) -> String {
        wait_for(needle, "log", || self.log())
    }

    /// Waits (up to 10 s) until the access log contains `needle` (Envoy flushes it every
    /// 50 ms); returns the access log. Panics with it when it does not.
    pub fn wait_for_access_log(&self, needle: &str) -> String {
        wait_for(needle, "access log", || self.access_log())
    }

    /// `GET` on the admin interface.
    pub fn admin_get(&self, path: &str) -> Response {
        Request::get(path).host("admin").send(self.admin)
    }

    /// Counters and gauges whose names match the regex `filter` (admin `/stats?filter=`).
    pub fn stats(&self, filter: &str) -> BTreeMap<String, u64> {
        let r = self.admin_get(&format!("/stats?filter={filter}"));
        assert_eq!(r.status, 200, "/stats: {}", r.text());
        parse_stats(&r.text())
    }

    /// Our filter hands its counters to Envoy on a timer (`metrics.flush_interval_ms`, 1 s
    /// by default): polls [`Envoy::stats`] until `settled` holds, for at most 10 s, and
    /// returns the last answer (the caller's assertions then say what is missing).
    pub fn stats_when(
        &self,
        filter: &str,
        settled: impl Fn(&BTreeMap<String, u64>) -> bool,
    ) -> BTreeMap<String, u64> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let stats = self.stats(filter);
            if settled(&stats) || std::time::Instant::now() > deadline {
                return stats;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// The sum of every `wasmcustom.portcullis.check.*` counter in `stats` (the gauges,
/// `portcullis.vm.*` and `portcullis.partner_lists.version`, are not counts).
pub fn portcullis_total(stats: &BTreeMap<String, u64>) -> u64 {
    stats
        .iter()
        .filter(|(k, _)| k.starts_with("wasmcustom.portcullis.check."))
        .map(|(_, v)| v)
        .sum()
}

/// Parses admin `/stats` text (`name: value` lines), keeping integer values only.
pub fn parse_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .filter_map(|(k, v)| v.trim().parse().ok().map(|v| (k.trim().to_string(), v)))
        .collect()
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(needle: &str, what: &str, read: impl Fn() -> String) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = read();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "envoy's {what} does not contain {needle:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_log(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
}

/// Envoy while starting: killed on drop unless taken.
struct Starting {
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    log_path: PathBuf,
}

impl Starting {
    fn fail(&mut self, reason: String) -> StartFailure {
        let child = self.child.as_mut().expect("child");
        let status = match child.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        };
        StartFailure {
            status,
            log: read_log(&self.log_path),
            reason,
        }
    }

    /// Polls until `f` gives a value, Envoy exits, or the start-up time is over.
    fn poll<T>(&mut self, what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T, StartFailure> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(v) = f() {
                return Ok(v);
            }
            if let Ok(Some(s)) = self.child.as_mut().expect("child").try_wait() {
                return Err(self.fail(format!("envoy exited ({s}) before {what}")));
            }
            if Instant::now() > deadline {
                return Err(self.fail(format!("envoy: no {what} within {READY_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn wait_admin(&mut self, path: &Path) -> Result<SocketAddr, StartFailure> {
        self.poll("admin address", || {
            std::fs::read_to_string(path).ok()?.trim().parse().ok()
        })
    }

    fn wait_ready(&mut self, admin: SocketAddr) -> Result<(), StartFailure> {
        self.poll("/ready", || {
            let r = Request::get("/ready").host("admin").try_send(admin).ok()?;
            (r.status == 200).then_some(())
        })
    }

    fn listener_address(&mut self, admin: SocketAddr) -> Result<SocketAddr, StartFailure> {
        let r = Request::get("/listeners?format=json")
            .host("admin")
            .try_send(admin);
        let found = r.ok().and_then(|r| {
            let v: Value = serde_json::from_slice(&r.body).ok()?;
            let sa = v["listener_statuses"]
                .as_array()?
                .iter()
                .find(|l| l["name"] == "ingress")?["local_address"]["socket_address"]
                .clone();
            let ip: IpAddr = sa["address"].as_str()?.parse().ok()?;
            let port = sa["port_value"].as_u64()?;
            Some(SocketAddr::new(ip, u16::try_from(port).ok()?))
        });
        found.ok_or_else(|| self.fail("the ingress listener is not in admin /listeners".into()))
    }

    fn take(&mut self) -> (Child, tempfile::TempDir) {
        (
            self.child.take().expect("child"),
            self.dir.take().expect("dir"),
        )
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
