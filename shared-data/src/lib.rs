//! Test data kept beside the repository (`../shared`, e.g. OWASP CRS rules and regression
//! corpora), never committed: a test that needs it runs whenever the data is found, is
//! required under CI (`CI=true`), and elsewhere says loudly that it did not run and how
//! to point it at the data — so the README's test command passes on a plain clone.
//!
//! ```
//! use portcullis_shared_data::DataSet;
//! const CORPUS: DataSet = DataSet {
//!     what: "an example corpus",
//!     env: "PORTCULLIS_EXAMPLE_DIR",
//!     under_shared: "example/never-there",
//! };
//! // In a test: `let Some(dir) = CORPUS.for_test() else { return };`
//! assert!(CORPUS.locate().is_err());
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

/// Overrides where `shared/` is for every data set (a directory holding `crs/`, …).
pub const SHARED_DIR_ENV: &str = "PORTCULLIS_SHARED_DIR";

/// The CRS v3.3.4 regression tests (go-ftw YAML), for the replay, WAF and differential tests.
pub const CRS_V3_3_4_REGRESSION: DataSet = DataSet {
    what: "CRS v3.3.4 regression corpus",
    env: "PORTCULLIS_CRS_REGRESSION_DIR",
    under_shared: "crs-regression/v3.3.4",
};

/// The CRS v4.28.0 rules (a release tree: `crs-setup.conf.example`, `rules/`).
pub const CRS_V4_28_0: DataSet = DataSet {
    what: "CRS v4.28.0 rules",
    env: "PORTCULLIS_CRS4_DIR",
    under_shared: "crs/v4.28.0",
};

/// One data set beside the repository.
#[derive(Debug, Clone, Copy)]
pub struct DataSet {
    /// What it is, for messages (e.g. `"CRS v3.3.4 regression corpus"`).
    pub what: &'static str,
    /// The variable naming its directory directly (e.g. `PORTCULLIS_CRS_REGRESSION_DIR`); wins.
    pub env: &'static str,
    /// Its path under `shared/` (e.g. `crs-regression/v3.3.4`).
    pub under_shared: &'static str,
}

impl DataSet {
    /// Its directory: `$<env>`, else `$PORTCULLIS_SHARED_DIR/<under_shared>`, else
    /// `shared/<under_shared>` beside this checkout or any of its ancestors (worktrees
    /// and nested clones find it too). A variable naming a missing directory is an error.
    pub fn locate(&self) -> Result<PathBuf, String> {
        for var in [self.env, SHARED_DIR_ENV] {
            if let Some(d) = std::env::var_os(var).filter(|d| !d.is_empty()) {
                let dir = if var == self.env {
                    PathBuf::from(d)
                } else {
                    Path::new(&d).join(self.under_shared)
                };
                return if dir.is_dir() {
                    Ok(dir)
                } else {
                    Err(format!(
                        "{var} is set but {} is not a directory ({})",
                        dir.display(),
                        self.what
                    ))
                };
            }
        }
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        here.ancestors()
            .map(|a| a.join("shared").join(self.under_shared))
            .find(|d| d.is_dir())
            .ok_or_else(|| {
                format!(
                    "{} not found: no shared/{} beside {} or its ancestors; set {}=<dir> \
                     (or {SHARED_DIR_ENV}=<the shared directory>)",
                    self.what,
                    self.under_shared,
                    here.parent().unwrap_or(here).display(),
                    self.env
                )
            })
    }

    /// For a test: the directory when found. When missing: under CI a panic (the test
    /// fails); elsewhere a banner on the terminal (not captured by the test runner) and
    /// `None` — the caller returns without running. A variable naming a missing
    /// directory always fails: that is a mistake, not a clone without data.
    pub fn for_test(&self) -> Option<PathBuf> {
        match self.locate() {
            Ok(dir) => Some(dir),
            Err(e) if required() || self.variable_set() => panic!("{e}"),
            Err(e) => {
                // Written to the stream itself: libtest captures only print!/eprint!.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** NOT RUN: {}: {e}. Under CI=true this fails. ***\n",
                    std::thread::current().name().unwrap_or("a test")
                );
                None
            }
        }
    }

    fn variable_set(&self) -> bool {
        [self.env, SHARED_DIR_ENV]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()))
    }
}

/// True under CI: `CI` set to anything but empty, `0` or `false` (GitHub and GitLab set
/// `CI=true`).
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MISSING: DataSet = DataSet {
        what: "a data set that does not exist",
        env: "PORTCULLIS_SHARED_DATA_TEST_NEVER_SET",
        under_shared: "no/such/data/set",
    };

    #[test]
    fn a_missing_data_set_is_an_error_that_says_how_to_fix_it() {
        let e = MISSING.locate().unwrap_err();
        assert!(e.contains("shared/no/such/data/set"), "{e}");
        assert!(
            e.contains("PORTCULLIS_SHARED_DATA_TEST_NEVER_SET=<dir>"),
            "{e}"
        );
    }

    #[test]
    fn the_crate_directory_is_found_through_the_variable() {
        let here = DataSet {
            what: "this crate",
            env: "CARGO_MANIFEST_DIR",
            under_shared: "-",
        };
        // Cargo sets CARGO_MANIFEST_DIR for tests: it names an existing directory.
        assert_eq!(
            here.locate().unwrap(),
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        );
    }

    #[test]
    fn missing_data_is_skipped_or_required_by_ci() {
        let got = std::panic::catch_unwind(|| MISSING.for_test());
        if required() {
            assert!(got.is_err(), "under CI a missing data set must fail");
        } else {
            assert_eq!(got.ok(), Some(None));
        }
    }
}
