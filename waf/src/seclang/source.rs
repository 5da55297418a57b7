//! Where rule files come from: [`FsSource`] (the file system, native only) and [`MapSource`]
//! (an embedded path → text map, for the wasm filter), plus the path and glob logic they share.
//!
//! The glob is hand-written on purpose: SecLang Includes only glob the last path component, and
//! the same matcher must run over [`MapSource`]'s keys on wasm32, where the `glob` crate (which
//! walks a real file system) cannot.

use super::RuleSource;
use std::collections::BTreeMap;

/// `name` seen from the file `from`: absolute (`/...`) and `@alias` names unchanged, others
/// relative to `from`'s directory; `.` and `..` components folded.
pub(super) fn resolve_path(from: &str, name: &str) -> String {
    if name.starts_with('/') || name.starts_with('@') {
        return normalize(name);
    }
    match from.rfind('/') {
        Some(i) => normalize(&format!("{}/{}", &from[..i], name)),
        None => normalize(name),
    }
}

/// Folds `.` and `..` components and repeated slashes.
pub(super) fn normalize(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Does `s` hold glob wildcards (`*`, `?`, `[`)?
pub(super) fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Splits a glob into its directory and its last component, refusing wildcards before the last.
fn split_glob(pattern: &str) -> Result<(&str, &str), String> {
    let (dir, last) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    if has_wildcards(dir) {
        return Err(format!(
            "`{pattern}`: only the last path component may hold wildcards"
        ));
    }
    Ok((dir, last))
}

/// Shell-style match of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!x]` / `[^x]`. A
/// leading `.` in `name` is only matched by a leading `.` in `pattern`, as in a shell.
pub(super) fn glob_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matching with one backtrack point for the last `*` (linear in practice).
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = n.get(ni) {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => class_match(&p, pi, c),
            Some(x) if *x == c => Some(pi + 1),
            _ => None,
        };
        match step {
            Some(next) => {
                pi = next;
                ni += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or(&[]).iter().all(|c| *c == '*')
}

/// Matches `c` against the class starting at `p[start] == '['`; the index after the class when
/// it matches. An unterminated `[` matches a literal `[`.
fn class_match(p: &[char], start: usize, c: char) -> Option<usize> {
    let mut i = start + 1;
    let negated = matches!(p.get(i), Some('!') | Some('^'));
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while let Some(&x) = p.get(i) {
        if x == ']' && !first {
            return (matched != negated).then_some(i + 1);
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|e| *e != ']') {
            let hi = p.get(i + 2).copied().unwrap_or(x);
            matched |= x <= c && c <= hi;
            i += 3;
        } else {
            matched |= x == c;
            i += 1;
        }
    }
    (c == '[').then_some(start + 1)
}

/// Rule files on the local file system (native builds, tests, the CLI).
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone, Copy, Default)]
pub struct FsSource;

#[cfg(not(target_arch = "wasm32"))]
impl RuleSource for FsSource {
    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read `{path}`: {e}"))
    }

    fn glob(&self, pattern: &str) -> Result<Vec<String>, String> {
        let (dir, last) = split_glob(pattern)?;
        let read_from = if dir.is_empty() { "." } else { dir };
        let entries = std::fs::read_dir(read_from)
            .map_err(|e| format!("cannot list `{read_from}` for `{pattern}`: {e}"))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list `{read_from}`: {e}"))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !glob_match(last, &name) {
                continue;
            }
            let path = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            // Follows symlinks (Debian's CRS rules directory is full of them).
            if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                out.push(path);
            }
        }
        out.sort();
        Ok(out)
    }

    fn resolve(&self, from: &str, name: &str) -> String {
        resolve_path(from, name)
    }
}

/// Rule files embedded in the program: path → text. Paths are compared after folding `.`/`..`,
/// globs match the keys of one directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapSource {
    /// The files, by normalized path.
    pub files: BTreeMap<String, String>,
}

impl MapSource {
    /// A source over `files` (keys are normalized on the way in).
    pub fn new(files: impl IntoIterator<Item = (String, String)>) -> Self {
        MapSource {
            files: files.into_iter().map(|(k, v)| (normalize(&k), v)).collect(),
        }
    }
}

impl RuleSource for MapSource {
    fn read(&self, path: &str) -> Result<String, String> {
        self.files
            .get(&normalize(path))
            .cloned()
            .ok_or_else(|| format!("no embedded file `{path}`"))
    }

    fn glob(&self, pattern: &str) -> Result<Vec<String>, String> {
        let pattern = normalize(pattern);
        let (dir, last) = split_glob(&pattern)?;
        // BTreeMap keys are sorted, so the result is too.
        Ok(self
            .files
            .keys()
            .filter(|k| {
                let (kd, kn) = k.rsplit_once('/').unwrap_or(("", k));
                kd == dir && glob_match(last, kn)
            })
            .cloned()
            .collect())
    }

    fn resolve(&self, from: &str, name: &str) -> String {
        resolve_path(from, name)
    }
}
