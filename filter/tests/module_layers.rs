//! The filter's top-level modules form layers: no two of them import each other, directly
//! or through others (issue 13, item 6). Read from the sources: every `crate::<module>`
//! outside comments and test code is an edge from the file's top-level module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The code of `src` without comments and without its test module (from the first
/// `#[cfg(test)]` that opens a `mod`): what the library itself depends on.
fn library_code(src: &str) -> String {
    let mut out = String::new();
    let mut lines = src.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("mod "))
        {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        let code = match line.find("//") {
            // A `//` inside a string literal ("http://") is rare in this crate; cutting
            // there only drops text after it, never adds an edge.
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Top-level module names referenced as `crate::<name>` in `code`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `portcullis_crate::`
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    // `use crate::{a, b::{c, d}}` groups: the first name of each item at the top level.
    let mut rest = code;
    while let Some(i) = rest.find("crate::{") {
        rest = &rest[i + "crate::{".len()..];
        let mut depth = 0;
        let mut item_start = true;
        for (j, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if item_start && (c.is_alphanumeric() || c == '_') => {
                    item_start = false;
                    let name: String = rest[j..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if name != "self" {
                        out.insert(name);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("filter/src is readable") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module graph of `src` (a crate's `src/`): top-level module → the top-level
/// modules it uses. `lib.rs` is the root, not a module; files named `tests*.rs` are test
/// code.
fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut g = Graph::new();
    for f in files {
        let rel = f.strip_prefix(src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a UTF-8 path")
            .trim_end_matches(".rs")
            .to_owned();
        let file = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if top == "lib" || file.starts_with("tests") {
            continue;
        }
        let code = library_code(&std::fs::read_to_string(&f).expect("a readable source"));
        let refs = g.entry(top.clone()).or_default();
        refs.extend(crate_refs(&code).into_iter().filter(|m| *m != top));
    }
    g
}

/// Every cycle's modules (strongly connected components of more than one module), by
/// Tarjan's algorithm.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        g: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.g.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.g.contains_key(w) {
                    continue; // not a module of this crate (e.g. `crate::` in a macro)
                }
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(lw));
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(iw));
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    scc.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    scc.sort();
                    self.out.push(scc);
                }
            }
        }
    }
    let mut t = Tarjan {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

fn render(g: &Graph) -> String {
    g.iter()
        .map(|(m, uses)| {
            let uses: Vec<&str> = uses.iter().map(String::as_str).collect();
            format!("  {m} -> {}", uses.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn filter_modules_import_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = module_graph(&src);
    assert!(
        g.len() > 10,
        "read too few modules ({}): is {} the filter's src/?",
        g.len(),
        src.display()
    );
    let found = cycles(&g);
    assert!(
        found.is_empty(),
        "modules import each other in a circle: {found:?}\nthe graph:\n{}",
        render(&g)
    );
    // The layers this relies on: the leaves import nothing from the crate.
    for leaf in ["uri", "error", "check"] {
        assert_eq!(g.get(leaf), Some(&BTreeSet::new()), "{leaf} is a leaf");
    }
    eprintln!("filter/src module graph:\n{}", render(&g));
}

#[test]
fn the_check_finds_a_cycle_and_reads_uses() {
    let code = library_code(
        "use crate::config::Spec; // crate::engine in a comment\n\
         use crate::{path::{self, X}, error};\n\
         let x = portcullis_crate::y; fn f() { crate::uri::strip_query(\"\") }\n\
         #[cfg(test)]\nmod tests { use crate::glue; }\n",
    );
    let refs: Vec<String> = crate_refs(&code).into_iter().collect();
    assert_eq!(refs, ["config", "error", "path", "uri"]);

    let g = |edges: &[(&str, &str)]| {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry((*a).to_owned())
                .or_default()
                .insert((*b).to_owned());
            g.entry((*b).to_owned()).or_default();
        }
        g
    };
    assert!(cycles(&g(&[("engine", "config"), ("config", "uri")])).is_empty());
    assert_eq!(
        cycles(&g(&[
            ("config", "engine"),
            ("engine", "authz"),
            ("authz", "config"),
            ("engine", "uri"),
        ])),
        [["authz", "config", "engine"]]
    );
    assert_eq!(
        cycles(&g(&[("path", "engine"), ("engine", "path")])),
        [["engine", "path"]]
    );
}
