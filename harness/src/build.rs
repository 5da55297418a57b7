//! Building a proxy-wasm filter crate for `wasm32-unknown-unknown`, on a machine with the
//! rustup target installed (plain `cargo build`) or with a toolchain that only has std
//! sources (`-Zbuild-std`, as on the project's CI machine).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;

/// True if `rustc`'s sysroot ships a prebuilt `wasm32-unknown-unknown` std.
///
/// ```
/// let _ = portcullis_harness::build::has_wasm32_target("rustc");
/// ```
pub fn has_wasm32_target(rustc: &str) -> bool {
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            let root = String::from_utf8_lossy(&o.stdout).trim().to_string();
            Path::new(&root)
                .join("lib/rustlib/wasm32-unknown-unknown")
                .is_dir()
        })
        .unwrap_or(false)
}

/// Builds the cdylib crate in `dir` in release mode for `wasm32-unknown-unknown` and
/// returns the `.wasm` path. Uses `$CARGO`/`rustc` when the wasm32 target is installed;
/// otherwise `/usr/bin/cargo` + `/usr/bin/rustc` with `-Zbuild-std=std,panic_abort`
/// (`RUSTC_BOOTSTRAP=1`). Output goes to `<workspace target>/wasm-filters/<crate dir name>`
/// unless `PORTCULLIS_WASM_TARGET_DIR` is set.
///
/// Not run as a doctest (it needs a wasm32 toolchain and minutes; the conformance
/// tests run it):
///
/// ```no_run
/// let wasm = portcullis_harness::build::build_wasm_crate("harness/test-filters/conformance").unwrap();
/// assert!(wasm.extension().is_some_and(|e| e == "wasm"));
/// ```
pub fn build_wasm_crate(dir: impl AsRef<Path>) -> Result<PathBuf, Error> {
    let dir = dir.as_ref();
    let dir = dir
        .canonicalize()
        .map_err(|e| Error::Build(format!("{}: {e}", dir.display())))?;
    let name = crate_name(&dir)?;
    let target_root = std::env::var_os("PORTCULLIS_WASM_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/wasm-filters")
                .join(dir.file_name().unwrap_or_default())
        });
    let plain = has_wasm32_target("rustc");
    let mut cmd = if plain {
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
    } else {
        let mut c = Command::new("/usr/bin/cargo");
        c.env("RUSTC", "/usr/bin/rustc").env("RUSTC_BOOTSTRAP", "1");
        c
    };
    cmd.current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target_root)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"]);
    if !plain {
        cmd.arg("-Zbuild-std=std,panic_abort");
        cmd.env_remove("RUSTUP_TOOLCHAIN");
    }
    let out = cmd
        .output()
        .map_err(|e| Error::Build(format!("running cargo: {e}")))?;
    if !out.status.success() {
        return Err(Error::Build(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let wasm = target_root
        .join("wasm32-unknown-unknown/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    if !wasm.is_file() {
        return Err(Error::Build(format!("{} was not produced", wasm.display())));
    }
    Ok(wasm)
}

fn crate_name(dir: &Path) -> Result<String, Error> {
    let toml = std::fs::read_to_string(dir.join("Cargo.toml"))
        .map_err(|e| Error::Build(format!("{}/Cargo.toml: {e}", dir.display())))?;
    let mut in_lib = false;
    let mut pkg = None;
    for line in toml.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_lib = t == "[lib]";
            continue;
        }
        if let Some(v) = t
            .strip_prefix("name")
            .map(str::trim)
            .and_then(|r| r.strip_prefix('='))
        {
            let v = v.trim().trim_matches('"').to_string();
            if in_lib {
                return Ok(v);
            }
            pkg.get_or_insert(v);
        }
    }
    pkg.ok_or_else(|| Error::Build("no package name in Cargo.toml".into()))
}

/// Builds an AssemblyScript proxy-wasm filter project (a `package.json` with a pinned
/// `package-lock.json` and a `build` script that writes the module to `$FILTER_WASM`) and
/// returns the `.wasm` path: `npm ci` when `node_modules` is missing or older than the lock
/// file, then `npm run build`. Output goes to `<workspace target>/wasm-filters/<dir name>/
/// filter.wasm` unless `PORTCULLIS_WASM_TARGET_DIR` is set. Fails (never skips) when Node.js
/// or npm is missing.
///
/// ```no_run
/// let wasm = portcullis_harness::build::build_assemblyscript("harness/test-filters/assemblyscript").unwrap();
/// assert!(wasm.extension().is_some_and(|e| e == "wasm"));
/// ```
pub fn build_assemblyscript(dir: impl AsRef<Path>) -> Result<PathBuf, Error> {
    let dir = dir.as_ref();
    let dir = dir
        .canonicalize()
        .map_err(|e| Error::Build(format!("{}: {e}", dir.display())))?;
    let target_root = std::env::var_os("PORTCULLIS_WASM_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/wasm-filters")
                .join(dir.file_name().unwrap_or_default())
        });
    std::fs::create_dir_all(&target_root)
        .map_err(|e| Error::Build(format!("{}: {e}", target_root.display())))?;
    let npm = |args: &[&str]| -> Result<(), Error> {
        let out = Command::new("npm")
            .args(args)
            .current_dir(&dir)
            .env("FILTER_WASM", target_root.join("filter.wasm"))
            .output()
            .map_err(|e| {
                Error::Build(format!(
                    "running npm {} in {}: {e} (an AssemblyScript filter needs Node.js and npm)",
                    args.join(" "),
                    dir.display()
                ))
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Build(format!(
                "npm {} in {}: {}{}",
                args.join(" "),
                dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    };
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    if installed.is_none() || modified(&dir.join("package-lock.json")) > installed {
        npm(&["ci", "--no-audit", "--no-fund", "--loglevel=error"])?;
    }
    npm(&["run", "--silent", "build"])?;
    let wasm = target_root.join("filter.wasm");
    if !wasm.is_file() {
        return Err(Error::Build(format!("{} was not produced", wasm.display())));
    }
    Ok(wasm)
}
