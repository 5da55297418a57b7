//! Differential test: every transformation against libmodsecurity 3.0.9 itself.
//!
//! Builds `modsecurity/transform_probe.c` with `cc -lmodsecurity` (Debian's
//! `libmodsecurity-dev`; the test fails, loudly, when it is missing) and compares `apply` with
//! ModSecurity's output on hand-picked and generated inputs.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use portcullis_waf::ast::TransformName;
use portcullis_waf::transform::apply;

const ALL: &[TransformName] = &[
    TransformName::None,
    TransformName::Base64Decode,
    TransformName::Base64DecodeExt,
    TransformName::Base64Encode,
    TransformName::CmdLine,
    TransformName::CompressWhitespace,
    TransformName::CssDecode,
    TransformName::EscapeSeqDecode,
    TransformName::HexDecode,
    TransformName::HexEncode,
    TransformName::HtmlEntityDecode,
    TransformName::JsDecode,
    TransformName::Length,
    TransformName::Lowercase,
    TransformName::Uppercase,
    TransformName::Md5,
    TransformName::NormalizePath,
    TransformName::NormalizePathWin,
    TransformName::ParityEven7bit,
    TransformName::ParityOdd7bit,
    TransformName::ParityZero7bit,
    TransformName::RemoveComments,
    TransformName::RemoveCommentsChar,
    TransformName::RemoveNulls,
    TransformName::RemoveWhitespace,
    TransformName::ReplaceComments,
    TransformName::ReplaceNulls,
    TransformName::Sha1,
    TransformName::SqlHexDecode,
    TransformName::Trim,
    TransformName::TrimLeft,
    TransformName::TrimRight,
    TransformName::UrlDecode,
    TransformName::UrlDecodeUni,
    TransformName::UrlEncode,
    TransformName::Utf8ToUnicode,
];

/// Bytes the decoders react to, so generated inputs hit their escapes often.
const ALPHABET: &[u8] = b"%%%uUfFfF0123456789aAbBcCdDeE+&&#;xXltgquomnbsp\\\\\\/./..*-<!>#'\"^,; \t\n\r\x0b\x0c\0\xa0\xc2\xc3\xa9\xe2\x82\xac\xed\xa0\xf0\x9f\x98\x80\xf5\xf8\xff\x80=rzZ(";

/// Inputs every transformation sees, from the quirks the ModSecurity sources show.
const PICKED: &[&[u8]] = &[
    b"",
    b"a",
    b"%",
    b"%4",
    b"%41",
    b"%u",
    b"%u004",
    b"%u0041",
    b"%uff01%uFF5E%uff5f%uff00",
    b"%U0041",
    b"%zz%4g+",
    b"&",
    b"&#",
    b"&#x",
    b"&#x41",
    b"&#65;&#x41;&lt&gt;&quot;&amp;&nbsp;",
    b"&#999999999999999999999999;",
    b"&foo;&LT;",
    b"&#xfffffffffffffffffff;",
    b"\\",
    b"\\u0041",
    b"\\uff01\\x41\\101\\777\\8\\n\\q",
    b"\\1234567",
    b"\\41 x",
    b"\\00004A\\0000ff01\\ff01",
    b"\\\n",
    b"\\x4",
    b"\\X41",
    b"/a/b/../c/./d//e/",
    b"a/../../b",
    b"../a",
    b"./a",
    b"/..",
    b"/.",
    b".",
    b"..",
    b"a\\b\\..\\c",
    b"\\\\server\\share",
    b"//",
    b"a//",
    b"/a/..",
    b"x/./",
    b"/* c */a/*b",
    b"a--b",
    b"a#b",
    b"<!-- x -->y",
    b"/*x*/",
    b"/*x*//*y*/",
    b"a<!--b",
    b"  a \t\n b  ",
    b"\xa0a\xc2\xa0",
    b"\"C\"m'D'^,a;b  / (x)",
    b"\0a\0",
    b"0x414243",
    b"0x4",
    b"a0x41zz",
    b"0x",
    b"QUJD",
    b"QUJ",
    b"QU",
    b"Q",
    b"QUJD=",
    b"QQ==",
    b"QQ=",
    b"Q Q==",
    b"QQ==\r\nQQ==",
    b"QQ==QQ==",
    b"QUJD!",
    b"\xc3\xa9",
    b"\xe2\x82\xac",
    b"\xf0\x9f\x98\x80",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xf5\x80\x80\x80",
    b"\x80",
    b"\xff",
    b"\xc3",
    b"\xc3A",
    b"A\0\xc3",
    b"abcdef0",
    b"zz",
    b"\x7f\x80",
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn build_probe() -> PathBuf {
    let source =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/modsecurity/transform_probe.c");
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("transform_probe");
    let status = Command::new("cc")
        .arg("-O1")
        .arg("-o")
        .arg(&exe)
        .arg(&source)
        .arg("-lmodsecurity")
        .status()
        .expect("running cc (a C compiler is needed for the libmodsecurity differential test)");
    assert!(
        status.success(),
        "building {} failed: install libmodsecurity-dev (ModSecurity 3.0.9) and a C compiler",
        source.display()
    );
    exe
}

/// A small deterministic generator (xorshift) so failures reproduce.
struct Inputs {
    state: u64,
    max_len: u64,
}

impl Inputs {
    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }
    fn input(&mut self, t: TransformName) -> Vec<u8> {
        // Paths need long runs of separators and dots to reach the back-reference rules.
        let alphabet: &[u8] = match t {
            TransformName::NormalizePath | TransformName::NormalizePathWin => b"///...\\\\ab",
            // Mostly-valid base64, so mbedtls' padding and line-break rules get exercised.
            TransformName::Base64Decode | TransformName::Base64DecodeExt => {
                b"ABCDQUJDxyzVGVz0189+/====\r\n \0!"
            }
            TransformName::HexDecode | TransformName::SqlHexDecode => b"0000xxX4142aAfFgz\0",
            TransformName::HtmlEntityDecode => b"&&&&###xX;;0123456789aAfFltgampquotnbspLT",
            _ => ALPHABET,
        };
        let len = (self.next() % self.max_len) as usize;
        (0..len)
            .map(|_| {
                let r = self.next();
                if r.is_multiple_of(8) {
                    (r >> 8) as u8
                } else {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                }
            })
            .collect()
    }
}

#[test]
fn every_transformation_matches_libmodsecurity() {
    let probe = build_probe();
    let generated: usize = std::env::var("TRANSFORM_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    // Longer inputs reach deeper states (long entity digit runs, nested paths).
    let max_len: u64 = std::env::var("TRANSFORM_DIFF_MAX_LEN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut inputs = Inputs {
        state: 0x9e37_79b9_7f4a_7c15,
        max_len: max_len.max(1),
    };
    // TRANSFORM_DIFF_CORPUS=<file>: each of its lines is one more input (for one-off runs on
    // realistic text, e.g. the CRS data files).
    let corpus: Vec<Vec<u8>> = match std::env::var("TRANSFORM_DIFF_CORPUS") {
        Ok(path) => std::fs::read(&path)
            .unwrap_or_else(|e| panic!("reading TRANSFORM_DIFF_CORPUS {path}: {e}"))
            .split(|&b| b == b'\n')
            .filter(|line| line.len() <= 4096)
            .map(<[u8]>::to_vec)
            .collect(),
        Err(_) => Vec::new(),
    };
    let mut cases: Vec<(TransformName, Vec<u8>)> = Vec::new();
    for &t in ALL {
        cases.extend(corpus.iter().map(|i| (t, i.clone())));
        cases.extend(PICKED.iter().map(|i| (t, i.to_vec())));
        cases.extend((0..generated).map(|_| (t, inputs.input(t))));
    }

    let mut child = Command::new(&probe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the libmodsecurity probe");
    let mut stdin = child.stdin.take().expect("probe stdin");
    let feed: Vec<String> = cases
        .iter()
        .map(|(t, i)| format!("t:{} {}\n", t.as_str(), hex(i)))
        .collect();
    let writer = std::thread::spawn(move || {
        for line in feed {
            stdin
                .write_all(line.as_bytes())
                .expect("writing to the probe");
        }
    });
    let answers: Vec<String> = BufReader::new(child.stdout.take().expect("probe stdout"))
        .lines()
        .map(|l| l.expect("reading the probe"))
        .collect();
    writer.join().expect("probe writer");
    assert!(child.wait().expect("probe exit").success());
    assert_eq!(answers.len(), cases.len(), "the probe answered every case");

    let mut failures = Vec::new();
    for ((t, input), want) in cases.iter().zip(&answers) {
        let mut out = Vec::new();
        let got = if apply(*t, input, &mut out) {
            out
        } else {
            input.clone()
        };
        if hex(&got) != *want {
            failures.push(format!(
                "t:{} input {:?} ({}) -> ours {} / ModSecurity {}",
                t.as_str(),
                String::from_utf8_lossy(input),
                hex(input),
                hex(&got),
                want
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from libmodsecurity:\n{}",
        failures.len(),
        cases.len(),
        summarise(&failures)
    );
}

/// The first few failures of each transformation, so one broken decoder does not hide others.
fn summarise(failures: &[String]) -> String {
    let mut shown: Vec<&String> = Vec::new();
    for f in failures {
        let name = f.split(' ').next().unwrap_or("");
        if shown.iter().filter(|s| s.starts_with(name)).count() < 4 {
            shown.push(f);
        }
    }
    shown
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}
