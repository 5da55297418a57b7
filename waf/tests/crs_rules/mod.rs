//! A deliberately small scanner that pulls every `SecRule` operator out of CRS `.conf` files,
//! for the operator tests (independent of the real SecLang parser, which is built elsewhere).

#![allow(dead_code)] // shared by the operator test and the report example

use portcullis_waf::seclang::RuleSource;
use std::path::{Path, PathBuf};

/// One `SecRule`'s operator.
#[derive(Debug, Clone)]
pub struct ScannedOperator {
    /// File name (no directory).
    pub file: String,
    /// `id:` of the rule, or of the chain's first rule with `+chain` appended.
    pub rule: String,
    /// Name after `@` (`rx` when the operator has no `@`).
    pub name: String,
    /// The argument after the name, with `\"` unescaped and nothing else.
    pub argument: String,
    /// `!@...`.
    pub negated: bool,
}

/// The `.conf` files of a rules directory, sorted; `None` when the directory is missing.
pub fn rule_files(dir: &Path) -> Option<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    Some(files)
}

/// Every SecRule operator in `files`.
pub fn scan(files: &[PathBuf]) -> Vec<ScannedOperator> {
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path).expect("readable rule file");
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut chain_parent: Option<String> = None;
        for directive in directives(&text) {
            let tokens = tokens(&directive);
            if tokens.first().map(String::as_str) != Some("SecRule") || tokens.len() < 3 {
                continue;
            }
            let actions = tokens.get(3).cloned().unwrap_or_default();
            let id = actions
                .split(',')
                .filter_map(|a| a.trim().strip_prefix("id:"))
                .map(|i| i.trim_matches('\'').to_string())
                .next();
            let rule = match (&id, &chain_parent) {
                (Some(id), _) => id.clone(),
                (None, Some(parent)) => format!("{parent}+chain"),
                (None, None) => "?".to_string(),
            };
            let chains = actions.split(',').any(|a| a.trim() == "chain");
            if id.is_some() {
                chain_parent = chains.then(|| rule.clone());
            } else if !chains {
                chain_parent = None;
            }
            let mut operator = tokens[2].as_str();
            let negated = operator.starts_with('!');
            if negated {
                operator = &operator[1..];
            }
            let (name, argument) = match operator.strip_prefix('@') {
                Some(rest) => match rest.split_once([' ', '\t']) {
                    Some((name, argument)) => (name.to_string(), argument.to_string()),
                    None => (rest.to_string(), String::new()),
                },
                None => ("rx".to_string(), operator.to_string()),
            };
            out.push(ScannedOperator {
                file: file.clone(),
                rule,
                name,
                argument,
                negated,
            });
        }
    }
    out
}

/// Directives: lines joined over trailing backslashes, comments dropped.
fn directives(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if current.is_empty() && (trimmed.starts_with('#') || trimmed.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Whitespace-separated tokens; double-quoted tokens keep every backslash except in `\"`.
fn tokens(directive: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = directive.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut token = String::new();
        if c == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.peek() == Some(&'"') => {
                        token.push('"');
                        chars.next();
                    }
                    '\\' => {
                        token.push('\\');
                        if let Some(n) = chars.next() {
                            token.push(n);
                        }
                    }
                    '"' => break,
                    _ => token.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                token.push(c);
                chars.next();
            }
        }
        out.push(token);
    }
    out
}

/// Data files from the file system, relative to the including file's directory.
pub struct FsSource;

impl RuleSource for FsSource {
    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
    }
    fn glob(&self, _: &str) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
    fn resolve(&self, from: &str, name: &str) -> String {
        if name.starts_with('/') {
            return name.to_string();
        }
        Path::new(from)
            .parent()
            .map(|d| d.join(name).to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string())
    }
}

/// Where the two CRS versions live on this machine.
pub const CRS_V3_RULES: &str = "/usr/share/modsecurity-crs/rules";
