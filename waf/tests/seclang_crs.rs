//! Parses the whole OWASP CRS — v3.3.4 as Debian installs it, and v4.28.0 from `../shared` —
//! and checks the parse against counts taken independently from the raw text.

use portcullis_waf::ast::{Action, Directive, DirectiveKind, Rule};
use portcullis_waf::seclang::{self, FsSource, MapSource};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Counts taken from the rule text by a line scan, independent of the parser.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    /// `SecRule` directives (chain links included).
    sec_rules: usize,
    /// `SecAction` directives.
    sec_actions: usize,
    /// `SecMarker` directives.
    markers: usize,
    /// `id:N` actions.
    ids: usize,
    /// `chain` actions.
    chains: usize,
    /// `t:` actions.
    transforms: usize,
    /// `tag:` actions.
    tags: usize,
    /// `setvar:` actions.
    setvars: usize,
    /// `ctl:` actions.
    ctls: usize,
}

/// Is `b` a byte that can precede an action name in an action list?
fn action_boundary_before(b: Option<&u8>) -> bool {
    matches!(b, None | Some(b'"') | Some(b',') | Some(b' ') | Some(b'\t'))
}

/// Counts directives and actions in one file by scanning lines: directive names at the start of
/// a non-comment line, actions as `,name` / `"name` words in non-comment lines.
fn scan(text: &str) -> Counts {
    let mut c = Counts::default();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('#') {
            continue;
        }
        let first = t.split_whitespace().next().unwrap_or("");
        c.sec_rules += usize::from(first == "SecRule");
        c.sec_actions += usize::from(first == "SecAction");
        c.markers += usize::from(first == "SecMarker");
        let bytes = t.as_bytes();
        for (i, _) in t.match_indices("id:") {
            let before = if i == 0 { None } else { bytes.get(i - 1) };
            if action_boundary_before(before) && bytes.get(i + 3).is_some_and(u8::is_ascii_digit) {
                c.ids += 1;
            }
        }
        for (i, _) in t.match_indices("chain") {
            let before = if i == 0 { None } else { bytes.get(i - 1) };
            let after = bytes.get(i + 5);
            if action_boundary_before(before)
                && matches!(
                    after,
                    None | Some(b',') | Some(b'"') | Some(b'\\') | Some(b' ')
                )
            {
                c.chains += 1;
            }
        }
        for (word, counter) in [
            ("tag:", &mut c.tags),
            ("setvar:", &mut c.setvars),
            ("ctl:", &mut c.ctls),
        ] {
            for (i, _) in t.match_indices(word) {
                let before = if i == 0 { None } else { bytes.get(i - 1) };
                *counter += usize::from(matches!(before, None | Some(b',') | Some(b'"')));
            }
        }
        for (i, _) in t.match_indices("t:") {
            let before = if i == 0 { None } else { bytes.get(i - 1) };
            if matches!(before, None | Some(b',') | Some(b'"'))
                && bytes.get(i + 2).is_some_and(u8::is_ascii_alphabetic)
            {
                c.transforms += 1;
            }
        }
    }
    c
}

/// The operator argument of every `SecRule` whose quoted operator sits on the rule's first line,
/// by line number: the test's own reading of "the text between the quotes, after `@name `".
fn raw_operator_arguments(text: &str) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("SecRule ") else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(space) = rest.find([' ', '\t']) else {
            continue;
        };
        let Some(body) = rest[space..].trim_start().strip_prefix('"') else {
            continue;
        };
        let bytes = body.as_bytes();
        let (mut i, mut end) = (0, None);
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => {
                    end = Some(i);
                    break;
                }
                _ => i += 1,
            }
        }
        let Some(end) = end else { continue };
        let op = &body[..end];
        let op = op.strip_prefix('!').unwrap_or(op);
        let argument = match op.strip_prefix('@') {
            Some(named) => named.split_once(' ').map_or("", |(_, a)| a),
            None => op,
        };
        out.insert(
            u32::try_from(n + 1).expect("line number"),
            argument.to_owned(),
        );
    }
    out
}

/// Every rule (chain links included) by `(file, line)`.
fn rules_by_place<'a>(rule: &'a Rule, out: &mut HashMap<(String, u32), &'a Rule>) {
    out.insert((rule.location.file.to_string(), rule.location.line), rule);
    if let Some(next) = &rule.chained {
        rules_by_place(next, out);
    }
}

fn count_rule(rule: &Rule, c: &mut Counts, head: bool) {
    if head && rule.variables.is_empty() {
        c.sec_actions += 1;
    } else {
        c.sec_rules += 1;
    }
    for a in &rule.actions {
        match a {
            Action::Id(_) => c.ids += 1,
            Action::Chain => c.chains += 1,
            Action::Transform(_) => c.transforms += 1,
            Action::Tag(_) => c.tags += 1,
            Action::SetVar { .. } => c.setvars += 1,
            Action::Ctl(_) => c.ctls += 1,
            _ => {}
        }
    }
    if let Some(next) = &rule.chained {
        count_rule(next, c, false);
    }
}

/// The same counts from the parsed directives.
fn parsed_counts(directives: &[Directive]) -> Counts {
    let mut c = Counts::default();
    for d in directives {
        match &d.kind {
            DirectiveKind::Rule(r) => count_rule(r, &mut c, true),
            DirectiveKind::Marker(_) => c.markers += 1,
            _ => {}
        }
    }
    c
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Sorted `*.conf` files of a directory.
fn conf_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    files
}

/// Parses `setup` + `rules/*.conf` through an Include glob and compares with the scan.
fn check_crs(setup: &Path, rules: &Path, minimum_rules: usize) -> Vec<Directive> {
    let main = format!(
        "Include \"{}\"\nInclude {}/*.conf\n",
        setup.display(),
        rules.display()
    );
    let directives = seclang::parse(&main, "<crs>", &FsSource).unwrap_or_else(|e| panic!("{e}"));
    // The same files from memory (as the wasm filter embeds them) parse to the same directives.
    let mut files = vec![(setup.display().to_string(), read(setup))];
    for f in conf_files(rules) {
        files.push((f.display().to_string(), read(&f)));
    }
    let embedded = MapSource::new(files);
    let started = std::time::Instant::now();
    let from_memory = seclang::parse(&main, "<crs>", &embedded).unwrap_or_else(|e| panic!("{e}"));
    // Printed for information only: speed is measured by benchmarks, not asserted here.
    eprintln!(
        "parsed {} directives from memory in {:?}",
        from_memory.len(),
        started.elapsed()
    );
    assert_eq!(from_memory, directives);
    let mut expected = scan(&std::fs::read_to_string(setup).expect("setup file"));
    for f in conf_files(rules) {
        let c = scan(&std::fs::read_to_string(&f).expect("rule file"));
        expected.sec_rules += c.sec_rules;
        expected.sec_actions += c.sec_actions;
        expected.markers += c.markers;
        expected.ids += c.ids;
        expected.chains += c.chains;
        expected.transforms += c.transforms;
        expected.tags += c.tags;
        expected.setvars += c.setvars;
        expected.ctls += c.ctls;
    }
    // Operator arguments, byte for byte, against the test's own reading of the raw lines.
    let mut by_place = HashMap::new();
    for d in &directives {
        if let DirectiveKind::Rule(r) = &d.kind {
            rules_by_place(r, &mut by_place);
        }
    }
    let mut sources = vec![setup.to_path_buf()];
    sources.extend(conf_files(rules));
    let mut compared = 0;
    for f in &sources {
        let name = f.display().to_string();
        for (line, argument) in raw_operator_arguments(&read(f)) {
            let rule = by_place
                .get(&(name.clone(), line))
                .unwrap_or_else(|| panic!("{name}:{line}: no parsed rule here"));
            assert_eq!(rule.operator.argument, argument, "{name}:{line}");
            compared += 1;
        }
    }
    eprintln!("compared {compared} operator arguments with the raw text");
    let got = parsed_counts(&directives);
    assert!(
        compared * 10 >= got.sec_rules * 9,
        "only {compared} of {} operators compared",
        got.sec_rules
    );
    eprintln!("{got:?}");
    assert_eq!(got, expected, "parsed counts differ from the line scan");
    assert!(
        got.sec_rules >= minimum_rules,
        "only {} SecRules: is this the whole CRS?",
        got.sec_rules
    );
    // Every head rule has an id; chain links never do.
    for d in &directives {
        if let DirectiveKind::Rule(r) = &d.kind {
            assert!(r.id().is_some(), "{}: rule without id", d.location);
            let mut link = r.chained.as_deref();
            while let Some(l) = link {
                assert!(l.id().is_none(), "{}: chain link with an id", l.location);
                link = l.chained.as_deref();
            }
        }
    }
    directives
}

#[test]
fn crs_v3_3_4_from_debian_parses_completely() {
    // Installed by scripts/setup (Debian's modsecurity-crs); missing is a failure.
    let setup = Path::new("/etc/modsecurity/crs/crs-setup.conf");
    let rules = Path::new("/usr/share/modsecurity-crs/rules");
    assert!(
        setup.is_file() && rules.is_dir(),
        "Debian's CRS v3.3.4 is missing: run scripts/setup (apt-get install modsecurity-crs)"
    );
    let directives = check_crs(setup, rules, 500);
    assert!(directives.iter().any(|d| matches!(
        &d.kind,
        DirectiveKind::ComponentSignature(s) if s == "OWASP_CRS/3.3.4"
    )));
}

#[test]
fn crs_v4_28_0_from_shared_parses_completely() {
    let Some(dir) = portcullis_shared_data::CRS_V4_28_0.for_test() else {
        return;
    };
    let directives = check_crs(&dir.join("crs-setup.conf.example"), &dir.join("rules"), 500);
    assert!(directives.iter().any(|d| matches!(
        &d.kind,
        DirectiveKind::ComponentSignature(s) if s == "OWASP_CRS/4.28.0"
    )));
}
