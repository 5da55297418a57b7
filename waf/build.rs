//! Embeds the OWASP CRS found at build time, as Coraza embeds `@owasp_crs`: the project never
//! vendors CRS. `PORTCULLIS_CRS_DIR=<coreruleset checkout or release>` selects one (rules in
//! `rules/`, setup in `crs-setup.conf[.example]`); otherwise Debian's `modsecurity-crs`
//! (`/usr/share/modsecurity-crs/rules`, `/etc/modsecurity/crs/crs-setup.conf`). With neither,
//! nothing is embedded and a WAF config that includes `@owasp_crs` fails with a clear error.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const DEBIAN_RULES: &str = "/usr/share/modsecurity-crs/rules";
const DEBIAN_SETUP: &str = "/etc/modsecurity/crs/crs-setup.conf";

struct Found {
    rules: PathBuf,
    setup: Option<PathBuf>,
    origin: String,
}

fn locate() -> Result<Option<Found>, String> {
    println!("cargo:rerun-if-env-changed=PORTCULLIS_CRS_DIR");
    if let Some(dir) = std::env::var_os("PORTCULLIS_CRS_DIR") {
        let dir = PathBuf::from(dir);
        let rules = dir.join("rules");
        if !rules.is_dir() {
            return Err(format!(
                "PORTCULLIS_CRS_DIR={}: no rules/ directory (expected a coreruleset checkout or release)",
                dir.display()
            ));
        }
        let setup = ["crs-setup.conf", "crs-setup.conf.example"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file());
        return Ok(Some(Found {
            rules,
            setup,
            origin: dir.display().to_string(),
        }));
    }
    let rules = PathBuf::from(DEBIAN_RULES);
    if rules.is_dir() {
        let setup = Path::new(DEBIAN_SETUP);
        return Ok(Some(Found {
            rules,
            setup: setup.is_file().then(|| setup.to_path_buf()),
            origin: "Debian modsecurity-crs".to_string(),
        }));
    }
    Ok(None)
}

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let found = match locate() {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    let mut code = String::new();
    let mut version = None;
    let mut entries = Vec::new();
    if let Some(found) = &found {
        println!("cargo:rerun-if-changed={}", found.rules.display());
        let mut files: Vec<PathBuf> = std::fs::read_dir(&found.rules)
            .unwrap_or_else(|e| panic!("{}: {e}", found.rules.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "conf" || x == "data"))
            .collect();
        files.sort();
        for path in &files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
                panic!("{}: {e} (CRS files must be UTF-8 text)", path.display())
            });
            if version.is_none() {
                version = component_version(&text);
            }
            entries.push((format!("@owasp_crs/{name}"), path.clone()));
        }
        if let Some(setup) = &found.setup {
            println!("cargo:rerun-if-changed={}", setup.display());
            entries.push(("@crs-setup.conf".to_string(), setup.clone()));
        }
    } else {
        println!(
            "cargo:warning=no OWASP CRS found (set PORTCULLIS_CRS_DIR or apt-get install modsecurity-crs): \
             the WAF is built without @owasp_crs"
        );
    }
    code.push_str("/// Every embedded file as (alias path, text).\n");
    code.push_str("pub static FILES: &[(&str, &str)] = &[\n");
    for (alias, path) in &entries {
        writeln!(
            code,
            "    ({alias:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    writeln!(
        code,
        "/// The embedded CRS version (`SecComponentSignature \"OWASP_CRS/x.y.z\"`).\npub static VERSION: Option<&str> = {version:?};"
    )
    .unwrap();
    writeln!(
        code,
        "/// Where the embedded CRS came from at build time.\npub static ORIGIN: Option<&str> = {:?};",
        found.as_ref().map(|f| f.origin.as_str())
    )
    .unwrap();
    std::fs::write(out.join("embedded_crs.rs"), code).expect("write embedded_crs.rs");
}

fn component_version(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("SecComponentSignature")?;
        let sig = rest.trim().trim_matches('"');
        sig.strip_prefix("OWASP_CRS/").map(str::to_string)
    })
}
