//! The OWASP CRS embedded at build time (see `build.rs`): rule and data files under
//! `@owasp_crs/`, the setup under `@crs-setup.conf`, as Coraza names them.
//!
//! The project never vendors CRS; what is here is what the build machine had.

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_crs.rs"));
}

/// Every embedded file as `(alias path, text)`, e.g. `("@owasp_crs/REQUEST-901-INITIALIZATION.conf", ...)`.
pub fn files() -> &'static [(&'static str, &'static str)] {
    embedded::FILES
}

/// The embedded CRS version (`3.3.4`, `4.28.0`), or `None` when the build found no CRS.
pub fn version() -> Option<&'static str> {
    embedded::VERSION
}

/// Where the embedded CRS came from at build time (a directory, or `Debian modsecurity-crs`).
pub fn origin() -> Option<&'static str> {
    embedded::ORIGIN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_crs_has_rules_data_and_setup_with_a_version() {
        // The test command installs Debian's modsecurity-crs, so a build without CRS is a
        // broken setup, not a reason to skip.
        let names: Vec<&str> = files().iter().map(|(n, _)| *n).collect();
        assert!(
            names
                .iter()
                .any(|n| n.ends_with("REQUEST-901-INITIALIZATION.conf")),
            "no CRS embedded (origin {:?}): install modsecurity-crs or set PORTCULLIS_CRS_DIR",
            origin()
        );
        assert!(names.iter().any(|n| n.ends_with(".data")));
        assert!(names.contains(&"@crs-setup.conf"));
        let v = version().expect("SecComponentSignature read from REQUEST-901");
        assert!(v.starts_with("3.") || v.starts_with("4."), "{v}");
        for (name, text) in files() {
            assert!(!text.is_empty(), "{name} is empty");
        }
    }
}
