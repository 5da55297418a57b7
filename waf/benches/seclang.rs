//! SecLang parse time of the whole CRS (the filter parses its rules at `on_configure`; the issue
//! wants that well under 50 ms natively).
//!
//! `cargo bench -p portcullis-waf --bench seclang` (needs Debian's modsecurity-crs, installed by
//! scripts/setup; CRS v4.28.0 from `../shared` is benchmarked too when present).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use portcullis_waf::seclang::{self, MapSource};
use std::path::{Path, PathBuf};

/// `setup` and `rules/*.conf` read into memory, as the wasm filter embeds them, plus a main file
/// that includes them.
fn embedded(setup: &Path, rules: &Path) -> (String, MapSource) {
    let read =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut files = vec![(setup.display().to_string(), read(setup))];
    let mut confs: Vec<PathBuf> = std::fs::read_dir(rules)
        .unwrap_or_else(|e| panic!("{}: {e}", rules.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    confs.sort();
    for f in confs {
        files.push((f.display().to_string(), read(&f)));
    }
    let main = format!(
        "Include {}\nInclude {}/*.conf\n",
        setup.display(),
        rules.display()
    );
    (main, MapSource::new(files))
}

fn parse_crs(c: &mut Criterion) {
    let mut sets = vec![(
        "crs-3.3.4-debian",
        embedded(
            Path::new("/etc/modsecurity/crs/crs-setup.conf"),
            Path::new("/usr/share/modsecurity-crs/rules"),
        ),
    )];
    let v4 = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared/crs/v4.28.0"))
        .find(|d| d.is_dir());
    match v4 {
        Some(dir) => sets.push((
            "crs-4.28.0",
            embedded(&dir.join("crs-setup.conf.example"), &dir.join("rules")),
        )),
        None => eprintln!("*** CRS v4.28.0 not found beside the checkout: not benchmarked ***"),
    }
    let mut group = c.benchmark_group("seclang_parse");
    for (name, (main, source)) in &sets {
        group.bench_function(*name, |b| {
            b.iter(|| {
                seclang::parse(black_box(main), "<crs>", source).unwrap_or_else(|e| panic!("{e}"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse_crs);
criterion_main!(benches);
