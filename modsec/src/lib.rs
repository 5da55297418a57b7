//! ModSecurity 3 (libmodsecurity, Debian's 3.0.9) as the reference WAF.
//!
//! A safe wrapper over the few C functions a transaction needs: the WAF's differential tests
//! run the same rules on the same requests here and in `portcullis-waf`, and its benchmarks
//! measure both. Rule ids are read from ModSecurity's log messages (`[id "942100"]`), as
//! go-ftw reads them from the error log.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::Mutex;

#[repr(C)]
struct Intervention {
    status: c_int,
    pause: c_int,
    url: *mut c_char,
    log: *mut c_char,
    disruptive: c_int,
}

type LogCb = extern "C" fn(*mut c_void, *const c_void);

#[link(name = "modsecurity")]
extern "C" {
    fn msc_init() -> *mut c_void;
    fn msc_set_connector_info(ms: *mut c_void, connector: *const c_char);
    fn msc_set_log_cb(ms: *mut c_void, cb: LogCb);
    fn msc_cleanup(ms: *mut c_void);
    fn msc_create_rules_set() -> *mut c_void;
    fn msc_rules_add(rules: *mut c_void, plain: *const c_char, error: *mut *const c_char) -> c_int;
    fn msc_rules_cleanup(rules: *mut c_void) -> c_int;
    fn msc_new_transaction(
        ms: *mut c_void,
        rules: *mut c_void,
        log_data: *mut c_void,
    ) -> *mut c_void;
    fn msc_process_connection(
        tx: *mut c_void,
        client: *const c_char,
        c_port: c_int,
        server: *const c_char,
        s_port: c_int,
    ) -> c_int;
    fn msc_process_uri(
        tx: *mut c_void,
        uri: *const c_char,
        protocol: *const c_char,
        http_version: *const c_char,
    ) -> c_int;
    fn msc_add_n_request_header(
        tx: *mut c_void,
        key: *const u8,
        key_len: usize,
        value: *const u8,
        value_len: usize,
    ) -> c_int;
    fn msc_process_request_headers(tx: *mut c_void) -> c_int;
    fn msc_append_request_body(tx: *mut c_void, body: *const u8, len: usize) -> c_int;
    fn msc_process_request_body(tx: *mut c_void) -> c_int;
    fn msc_process_logging(tx: *mut c_void) -> c_int;
    fn msc_intervention(tx: *mut c_void, it: *mut Intervention) -> c_int;
    fn msc_transaction_cleanup(tx: *mut c_void);
}

/// One request as ModSecurity's connector API takes it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method, e.g. `GET`.
    pub method: String,
    /// The request-target as sent (path and query).
    pub uri: String,
    /// HTTP version without the `HTTP/` prefix, e.g. `1.1`.
    pub http_version: String,
    /// Headers in order, names as sent.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The request body (empty for none).
    pub body: Vec<u8>,
    /// Client address and port.
    pub client: (String, u16),
    /// Server address and port.
    pub server: (String, u16),
}

impl Request {
    /// A request with `method` and `uri`, HTTP/1.1, from 10.0.0.1:40000 to 127.0.0.1:80.
    pub fn new(method: &str, uri: &str) -> Request {
        Request {
            method: method.into(),
            uri: uri.into(),
            http_version: "1.1".into(),
            headers: Vec::new(),
            body: Vec::new(),
            client: ("10.0.0.1".into(), 40000),
            server: ("127.0.0.1".into(), 80),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers
            .push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: &[u8]) -> Request {
        self.body = body.to_vec();
        self
    }
}

/// What ModSecurity made of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Ids of the rules that logged a match, in the order they logged (deduplicated).
    pub rule_ids: Vec<u64>,
    /// The intervention's status, when a disruptive action fired (not in DetectionOnly).
    pub status: Option<u16>,
    /// The raw log messages.
    pub messages: Vec<String>,
}

/// A ModSecurity engine with one rule set loaded.
pub struct ModSecurity {
    ms: *mut c_void,
    rules: *mut c_void,
}

// Safety: libmodsecurity's engine and rule set are read-only after loading and may be shared
// by transactions on several threads (that is how its connectors use them).
unsafe impl Send for ModSecurity {}
unsafe impl Sync for ModSecurity {}

static PARSE_LOCK: Mutex<()> = Mutex::new(());

/// Where the log callback of one transaction collects its messages.
struct LogSink {
    messages: Mutex<Vec<String>>,
}

extern "C" fn log_cb(data: *mut c_void, msg: *const c_void) {
    if data.is_null() || msg.is_null() {
        return;
    }
    // Safety: `data` is the `LogSink` passed to msc_new_transaction, alive for the whole
    // transaction; `msg` is a NUL-terminated string (the server log format without
    // properties).
    let sink = unsafe { &*(data as *const LogSink) };
    let text = unsafe { CStr::from_ptr(msg as *const c_char) }
        .to_string_lossy()
        .into_owned();
    if let Ok(mut m) = sink.messages.lock() {
        m.push(text);
    }
}

impl ModSecurity {
    /// Loads `rules` (SecLang text; `Include` paths are absolute or relative to the working
    /// directory). The error is ModSecurity's parser message.
    pub fn new(rules: &str) -> Result<ModSecurity, String> {
        // libmodsecurity's parser needs the last directive to end with a newline.
        let text = CString::new(format!("{rules}\n"))
            .map_err(|_| "rules contain a NUL byte".to_string())?;
        // libmodsecurity's rule parser (bison/flex) keeps global state: one load at a time.
        let _guard = PARSE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // Safety: plain C calls on pointers we own; checked for NULL.
        unsafe {
            let ms = msc_init();
            if ms.is_null() {
                return Err("msc_init failed".into());
            }
            let connector = CString::new("portcullis-modsec").unwrap_or_default();
            msc_set_connector_info(ms, connector.as_ptr());
            msc_set_log_cb(ms, log_cb);
            let set = msc_create_rules_set();
            let mut err: *const c_char = std::ptr::null();
            if msc_rules_add(set, text.as_ptr(), &mut err) < 0 {
                let msg = if err.is_null() {
                    "msc_rules_add failed".to_string()
                } else {
                    CStr::from_ptr(err).to_string_lossy().into_owned()
                };
                msc_rules_cleanup(set);
                msc_cleanup(ms);
                return Err(msg);
            }
            Ok(ModSecurity { ms, rules: set })
        }
    }

    /// Runs phases 1, 2 and logging on `req`.
    pub fn evaluate(&self, req: &Request) -> Outcome {
        let sink = Box::new(LogSink {
            messages: Mutex::new(Vec::new()),
        });
        let cstr = |s: &str| CString::new(s.replace('\0', "%00")).unwrap_or_default();
        let (client, server) = (cstr(&req.client.0), cstr(&req.server.0));
        let (uri, method, version) = (cstr(&req.uri), cstr(&req.method), cstr(&req.http_version));
        let mut status = None;
        let sink_ref = &*sink;
        // Safety: the transaction is created, used and cleaned up here; every pointer passed
        // points into a live buffer for the duration of the call; `sink` outlives `tx`.
        unsafe {
            let tx =
                msc_new_transaction(self.ms, self.rules, &*sink as *const LogSink as *mut c_void);
            if tx.is_null() {
                return Outcome::default();
            }
            let mut check = |tx: *mut c_void| {
                if status.is_some() {
                    return;
                }
                let mut it = Intervention {
                    status: 200,
                    pause: 0,
                    url: std::ptr::null_mut(),
                    log: std::ptr::null_mut(),
                    disruptive: 0,
                };
                if msc_intervention(tx, &mut it) != 0 && it.disruptive != 0 {
                    status = u16::try_from(it.status).ok();
                }
                // ModSecurity allocates these with malloc and leaves them to the caller.
                if !it.url.is_null() {
                    libc_free(it.url as *mut c_void);
                }
                if !it.log.is_null() {
                    // The disruptive rule's message comes here, not through the log callback.
                    let text = CStr::from_ptr(it.log).to_string_lossy().into_owned();
                    if let Ok(mut m) = sink_ref.messages.lock() {
                        m.push(text);
                    }
                    libc_free(it.log as *mut c_void);
                }
            };
            msc_process_connection(
                tx,
                client.as_ptr(),
                c_int::from(req.client.1),
                server.as_ptr(),
                c_int::from(req.server.1),
            );
            msc_process_uri(tx, uri.as_ptr(), method.as_ptr(), version.as_ptr());
            check(tx);
            for (k, v) in &req.headers {
                msc_add_n_request_header(tx, k.as_ptr(), k.len(), v.as_ptr(), v.len());
            }
            msc_process_request_headers(tx);
            check(tx);
            if !req.body.is_empty() {
                msc_append_request_body(tx, req.body.as_ptr(), req.body.len());
            }
            msc_process_request_body(tx);
            check(tx);
            msc_process_logging(tx);
            msc_transaction_cleanup(tx);
        }
        let messages = sink.messages.into_inner().unwrap_or_default();
        let mut rule_ids: Vec<u64> = Vec::new();
        for m in &messages {
            for id in ids_in(m) {
                if !rule_ids.contains(&id) {
                    rule_ids.push(id);
                }
            }
        }
        Outcome {
            rule_ids,
            status,
            messages,
        }
    }
}

extern "C" {
    #[link_name = "free"]
    fn libc_free(p: *mut c_void);
}

/// The `[id "N"]` fields of one log message.
fn ids_in(msg: &str) -> impl Iterator<Item = u64> + '_ {
    msg.match_indices("[id \"").filter_map(move |(i, pat)| {
        let rest = &msg[i + pat.len()..];
        let end = rest.find('"')?;
        rest[..end].parse().ok()
    })
}

impl Drop for ModSecurity {
    fn drop(&mut self) {
        // Safety: both were created in `new` and are released once.
        unsafe {
            msc_rules_cleanup(self.rules);
            msc_cleanup(self.ms);
        }
    }
}

/// The rules ModSecurity loads for CRS v3.3.4 as Debian installs it, in anomaly mode with the
/// body processors of ModSecurity's recommended configuration.
pub fn debian_crs_rules(extra_before_crs: &str) -> String {
    format!(
        "SecRuleEngine On\n\
         SecRequestBodyAccess On\n\
         SecRequestBodyLimit 131072\n\
         SecRequestBodyNoFilesLimit 131072\n\
         SecRequestBodyLimitAction Reject\n\
         SecRule REQUEST_HEADERS:Content-Type \"(?:application(?:/soap\\+|/)|text/)xml\" \"id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML\"\n\
         SecRule REQUEST_HEADERS:Content-Type \"application/json\" \"id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON\"\n\
         SecRule REQBODY_ERROR \"!@eq 0\" \"id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.'\"\n\
         Include /etc/modsecurity/crs/crs-setup.conf\n\
         {extra_before_crs}\n\
         Include /usr/share/modsecurity-crs/rules/*.conf\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deny_rule_intervenes_and_logs_its_id() {
        let ms = ModSecurity::new(
            "SecRuleEngine On\nSecRule ARGS \"@rx attack\" \"id:10,phase:1,deny,status:418,log,msg:'x'\"",
        )
        .unwrap();
        let out = ms.evaluate(&Request::new("GET", "/?q=attack"));
        assert_eq!(out.status, Some(418));
        assert_eq!(out.rule_ids, vec![10]);
        let out = ms.evaluate(&Request::new("GET", "/?q=fine"));
        assert_eq!(out, Outcome::default());
    }

    #[test]
    fn a_rule_syntax_error_is_reported() {
        let err = ModSecurity::new("SecRule ARGS \"@rx (\" \"id:1,phase:1,nolog_typo\"")
            .err()
            .unwrap();
        assert!(!err.is_empty());
    }

    #[test]
    fn debian_crs_blocks_sqli_and_passes_a_benign_get() {
        let ms = ModSecurity::new(&debian_crs_rules("")).unwrap();
        let benign = ms.evaluate(
            &Request::new("GET", "/index.html?page=2")
                .header("Host", "localhost")
                .header("User-Agent", "Mozilla/5.0")
                .header("Accept", "text/html"),
        );
        assert_eq!(benign.status, None, "{:?}", benign.messages);
        let attack = ms.evaluate(
            &Request::new("GET", "/?id=1%27%20OR%20%271%27%3D%271")
                .header("Host", "localhost")
                .header("User-Agent", "Mozilla/5.0")
                .header("Accept", "text/html"),
        );
        assert_eq!(attack.status, Some(403), "{:?}", attack.messages);
        assert!(
            attack.rule_ids.contains(&942100)
                || attack.rule_ids.iter().any(|i| (942000..943000).contains(i))
        );
        assert!(attack.rule_ids.contains(&949110), "{:?}", attack.rule_ids);
    }
}
