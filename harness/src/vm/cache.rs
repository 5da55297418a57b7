//! Compiled modules on disk: wasmtime's serialized code for a module, keyed by the module's
//! SHA-256 and the engine's compatibility hash, so a second run skips Cranelift (~1 s for
//! the release filter) and starts in milliseconds.

use std::hash::{Hash as _, Hasher as _};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wasmtime::{Engine, Module};

use crate::error::Error;

/// The variable that overrides where compiled modules are kept (`off` disables the cache).
pub const CACHE_DIR_ENV: &str = "PORTCULLIS_CACHE_DIR";

/// A directory of compiled modules. One file per (module, engine settings, wasmtime
/// version): `<sha256 of the module>-<engine hash>.cwasm`. Files are written to a temporary
/// name and renamed, so concurrent runs never read a half-written module.
///
/// ```
/// use portcullis_harness::{Host, ModuleCache};
/// let dir = std::env::temp_dir().join(format!("portcullis-cache-doc-{}", std::process::id()));
/// let cache = ModuleCache::new(&dir);
/// let wat = r#"(module (memory (export "memory") 1)
///   (func (export "malloc") (param i32) (result i32) i32.const 1024)
///   (func (export "proxy_abi_version_0_2_1")))"#;
/// let first = Host::new_cached(wat.as_bytes(), &cache).unwrap();
/// assert!(!first.loaded_from_cache());
/// let second = Host::new_cached(wat.as_bytes(), &cache).unwrap();
/// assert!(second.loaded_from_cache());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleCache {
    dir: PathBuf,
}

impl ModuleCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> ModuleCache {
        ModuleCache { dir: dir.into() }
    }

    /// The user's cache: `$PORTCULLIS_CACHE_DIR` when set (`off` or empty: none), else
    /// `$XDG_CACHE_HOME/portcullis`, else `~/.cache/portcullis`; `None` when none of them
    /// can be found.
    ///
    /// ```
    /// let _ = portcullis_harness::ModuleCache::user_default();
    /// ```
    pub fn user_default() -> Option<ModuleCache> {
        if let Some(d) = std::env::var_os(CACHE_DIR_ENV) {
            if d.is_empty() || d == "off" {
                return None;
            }
            return Some(ModuleCache::new(d));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|d| !d.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            })?;
        Some(ModuleCache::new(base.join("portcullis")))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `wasm` compiled by `engine` is kept.
    fn entry(&self, engine: &Engine, wasm: &[u8]) -> PathBuf {
        let module: String = Sha256::digest(wasm)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        // The compatibility hash covers what makes compiled code usable by an engine: the
        // wasmtime version, the target and every compilation setting (epochs included).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{module}-{:016x}.cwasm", h.finish()))
    }

    /// The compiled module from the cache when there is a usable entry, else compiled now
    /// and stored (a cache that cannot be written only costs the next run the compile).
    /// Returns whether it came from the cache.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> Result<(Module, bool), Error> {
        let path = self.entry(engine, wasm);
        if path.is_file() {
            // SAFETY: `deserialize_file` runs the machine code in the file, which must have
            // come from `Module::serialize`. The file is in the user's own cache directory,
            // named by the module's hash, written by `store` below; wasmtime checks its
            // header (version, target, settings) and refuses a mismatch, which recompiles.
            if let Ok(m) = unsafe { Module::deserialize_file(engine, &path) } {
                return Ok((m, true));
            }
        }
        let module = Module::new(engine, wasm).map_err(|e| Error::Compile(format!("{e:#}")))?;
        if let Ok(bytes) = module.serialize() {
            let _ = self.store(&path, &bytes);
        }
        Ok((module, false))
    }

    fn store(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(
            ".{}.{}.tmp",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("module"),
            std::process::id()
        ));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metered code differs from plain code: a cache shared by both must keep them apart
    /// (a plain module loaded into a metering engine would count nothing).
    #[test]
    fn fuel_metering_is_part_of_the_key() {
        let cache = ModuleCache::new("/nonexistent");
        let engine = |fuel| {
            let mut c = wasmtime::Config::new();
            c.epoch_interruption(true);
            c.consume_fuel(fuel);
            Engine::new(&c).unwrap()
        };
        let wasm = b"(module)";
        assert_ne!(
            cache.entry(&engine(false), wasm),
            cache.entry(&engine(true), wasm)
        );
        assert_eq!(
            cache.entry(&engine(true), wasm),
            cache.entry(&engine(true), wasm)
        );
    }
}
