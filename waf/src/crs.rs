//! The OWASP CRS embedded at build time (see `build.rs`): rule and data files under
//! `@owasp_crs/`, the setup under `@crs-setup.conf`, as Coraza names them.
//!
//! The project never vendors CRS; what is here is what the build machine had.

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_crs.rs"));
}

/// `@recommended.conf`: the engine settings a CRS deployment needs before `@crs-setup.conf`,
/// written for portcullis after ModSecurity's `modsecurity.conf-recommended` (which Debian's
/// CRS package does not ship): the JSON and XML body processors chosen by Content-Type, and
/// the request-body error rules CRS relies on (200002-200004). The filter's `request_body`
/// settings and `mode` come first in the generated configuration; these lines do not repeat
/// them.
pub const RECOMMENDED: &str = r#"# portcullis @recommended.conf (after ModSecurity's modsecurity.conf-recommended)
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\+|/)|text/)xml" \
    "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" \
    "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQBODY_ERROR "!@eq 0" \
    "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',logdata:'%{reqbody_error_msg}',severity:2"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" \
    "id:200003,phase:2,t:none,log,deny,status:400,msg:'Multipart request body failed strict validation: PE %{REQBODY_PROCESSOR_ERROR}, BQ %{MULTIPART_BOUNDARY_QUOTED}, BW %{MULTIPART_BOUNDARY_WHITESPACE}, DB %{MULTIPART_DATA_BEFORE}, DA %{MULTIPART_DATA_AFTER}, HF %{MULTIPART_HEADER_FOLDING}, LF %{MULTIPART_LF_LINE}, SM %{MULTIPART_MISSING_SEMICOLON}, IQ %{MULTIPART_INVALID_QUOTING}, IP %{MULTIPART_INVALID_PART}, IH %{MULTIPART_INVALID_HEADER_FOLDING}, FL %{MULTIPART_FILE_LIMIT_EXCEEDED}'"
SecRule MULTIPART_UNMATCHED_BOUNDARY "@eq 1" \
    "id:200004,phase:2,t:none,log,deny,msg:'Multipart parser detected a possible unmatched boundary.'"
"#;

/// Every embedded file as `(alias path, text)`, e.g. `("@owasp_crs/REQUEST-901-INITIALIZATION.conf", ...)`.
pub fn files() -> &'static [(&'static str, &'static str)] {
    embedded::FILES
}

/// The embedded CRS files and `@recommended.conf`, as `(alias path, text)`: what an
/// `Include @...` in the filter's configuration can name.
pub fn aliases() -> impl Iterator<Item = (&'static str, &'static str)> {
    std::iter::once(("@recommended.conf", RECOMMENDED)).chain(files().iter().copied())
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
