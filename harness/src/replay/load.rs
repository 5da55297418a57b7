//! Reading traffic files: format detection and dispatch.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::error::TrafficError;
use super::har::HarOptions;
use super::model::ReplayRequest;
use super::{ftw, har, jsonl};

/// The traffic formats `portcullis replay` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficFormat {
    /// One JSON request per line (`policies/TRAFFIC.md`).
    Jsonl,
    /// HAR 1.2 browser export.
    Har,
    /// OWASP CRS go-ftw YAML (v3 or v4 form).
    Ftw,
}

impl TrafficFormat {
    /// The canonical format names, comma-separated, for help and error messages
    /// (parsing also accepts `ndjson`, `go-ftw` and `yaml`).
    pub const NAMES: &'static str = "jsonl, har, ftw";
}

impl fmt::Display for TrafficFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrafficFormat::Jsonl => "jsonl",
            TrafficFormat::Har => "har",
            TrafficFormat::Ftw => "ftw",
        })
    }
}

impl FromStr for TrafficFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Ok(TrafficFormat::Jsonl),
            "har" => Ok(TrafficFormat::Har),
            "ftw" | "go-ftw" | "yaml" => Ok(TrafficFormat::Ftw),
            _ => Err(format!(
                "unknown traffic format {s:?} (one of: {})",
                Self::NAMES
            )),
        }
    }
}

/// Options for reading traffic.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Force a format instead of detecting it.
    pub format: Option<TrafficFormat>,
    /// How HAR files are read (whether responses become expectations).
    pub har: HarOptions,
}

/// Detects the format of a traffic file: by extension (`.jsonl`/`.ndjson`,
/// `.har`, `.yaml`/`.yml`), else by content (a JSON document with a `log`
/// member is HAR, other JSON is JSONL, anything else is go-ftw YAML).
pub fn detect(path: &Path, text: &str) -> TrafficFormat {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("jsonl" | "ndjson") => return TrafficFormat::Jsonl,
        Some("har") => return TrafficFormat::Har,
        Some("yaml" | "yml") => return TrafficFormat::Ftw,
        _ => {}
    }
    if text.trim_start().starts_with('{') {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) if v.get("log").is_some() => TrafficFormat::Har,
            _ => TrafficFormat::Jsonl,
        }
    } else {
        TrafficFormat::Ftw
    }
}

/// Parses traffic text already read from `name`.
pub fn parse_text(
    name: &str,
    text: &str,
    format: TrafficFormat,
    opts: &LoadOptions,
) -> Result<Vec<ReplayRequest>, TrafficError> {
    match format {
        TrafficFormat::Jsonl => jsonl::parse(name, text),
        TrafficFormat::Har => har::parse(name, text, opts.har),
        TrafficFormat::Ftw => ftw::parse(name, text),
    }
}

/// Reads and parses one traffic file.
pub fn load_file(
    path: &Path,
    opts: &LoadOptions,
) -> Result<(TrafficFormat, Vec<ReplayRequest>), TrafficError> {
    let name = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| TrafficError::whole(&name, format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        TrafficError::whole(
            &name,
            format!(
                "not UTF-8 (byte offset {}); use body_base64 / encoded_request for binary bodies",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let format = opts.format.unwrap_or_else(|| detect(path, &text));
    let reqs = parse_text(&name, &text, format, opts)?;
    Ok((format, reqs))
}

/// File extensions read from a directory (files named on the command line are read
/// whatever their name).
pub const TRAFFIC_EXTENSIONS: [&str; 6] = ["jsonl", "ndjson", "har", "json", "yaml", "yml"];

/// The traffic files `paths` name: files as given, directories read recursively (as
/// go-ftw's `-d`) for files with a [`TRAFFIC_EXTENSIONS`] extension, skipping hidden
/// entries, in sorted order. A path or directory that cannot be read is returned as an
/// error next to the files that can.
pub fn traffic_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<TrafficError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut files, &mut errors);
        } else {
            files.push(p.clone());
        }
    }
    (files, errors)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<TrafficError>) {
    let name = dir.display().to_string();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(TrafficError::whole(
                &name,
                format!("cannot read directory: {e}"),
            ));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => paths.push(e.path()),
            Err(e) => errors.push(TrafficError::whole(&name, format!("cannot list: {e}"))),
        }
    }
    paths.sort();
    for p in paths {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, files, errors);
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| TRAFFIC_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            files.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_read_recursively() {
        let dir = std::env::temp_dir().join(format!("portcullis-walk-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("REQUEST-920/sub")).unwrap();
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        for f in [
            "REQUEST-920/920100.yaml",
            "REQUEST-920/sub/920200.yml",
            "a.jsonl",
            "README.md",
            ".git/x.yaml",
        ] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let single = dir.join("README.md");
        let (files, errors) = traffic_files(&[dir.clone(), single.clone(), dir.join("nope")]);
        let rel: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(&dir).unwrap_or(f).display().to_string())
            .collect();
        assert_eq!(
            rel,
            [
                "REQUEST-920/920100.yaml",
                "REQUEST-920/sub/920200.yml",
                "a.jsonl",
                "README.md",
                "nope"
            ],
            "sorted, recursive, hidden and non-traffic files skipped; named files kept"
        );
        assert!(errors.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn detection() {
        let p = Path::new;
        assert_eq!(detect(p("a.jsonl"), "whatever"), TrafficFormat::Jsonl);
        assert_eq!(detect(p("a.NDJSON"), ""), TrafficFormat::Jsonl);
        assert_eq!(detect(p("a.har"), ""), TrafficFormat::Har);
        assert_eq!(detect(p("a.yml"), "{}"), TrafficFormat::Ftw);
        assert_eq!(
            detect(p("a.json"), "  {\"log\": {\"entries\": []}}"),
            TrafficFormat::Har
        );
        assert_eq!(
            detect(p("a.json"), "{\"path\":\"/\"}\n{\"path\":\"/b\"}\n"),
            TrafficFormat::Jsonl
        );
        assert_eq!(
            detect(p("traffic"), "{\"path\":\"/\"}"),
            TrafficFormat::Jsonl
        );
        assert_eq!(detect(p("traffic"), "---\ntests: []\n"), TrafficFormat::Ftw);
    }

    #[test]
    fn format_names() {
        assert_eq!("HAR".parse::<TrafficFormat>(), Ok(TrafficFormat::Har));
        assert_eq!("go-ftw".parse::<TrafficFormat>(), Ok(TrafficFormat::Ftw));
        assert!("csv"
            .parse::<TrafficFormat>()
            .unwrap_err()
            .contains("jsonl, har, ftw"));
    }

    #[test]
    fn load_errors() {
        let dir = std::env::temp_dir().join(format!("portcullis-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.jsonl");
        let e = load_file(&missing, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.jsonl: cannot read"), "{e}");
        let bin = dir.join("bin.jsonl");
        std::fs::write(&bin, b"{\"body\":\"\xff\"}").unwrap();
        let e = load_file(&bin, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8 (byte offset 9)"), "{e}");
        let forced = dir.join("t.txt");
        std::fs::write(&forced, "{\"path\":\"/x\"}\n").unwrap();
        let opts = LoadOptions {
            format: Some(TrafficFormat::Har),
            ..Default::default()
        };
        let e = load_file(&forced, &opts).unwrap_err().to_string();
        assert!(
            e.contains("missing field `log`"),
            "--format-in overrides detection: {e}"
        );
        let (f, reqs) = load_file(&forced, &LoadOptions::default()).unwrap();
        assert_eq!(
            (f, reqs.len(), reqs[0].path.as_str()),
            (TrafficFormat::Jsonl, 1, "/x")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
