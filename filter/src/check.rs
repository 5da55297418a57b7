//! What the checks (IP allow-list, authorization, WAF) have in common: their names and
//! how a check applies its verdict. A leaf, shared by the configuration and every check.

use serde::Deserialize;

/// Which check produced an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Partner IP allow-lists.
    IpAllowlist,
    /// Principal / path authorization policies.
    Authorization,
    /// The WAF (SecLang rules, OWASP CRS).
    Waf,
}

impl Check {
    /// Stable snake_case name (logs, metrics, denial body).
    pub fn as_str(self) -> &'static str {
        match self {
            Check::IpAllowlist => "ip_allowlist",
            Check::Authorization => "authorization",
            Check::Waf => "waf",
        }
    }
}

/// `enforce` or `dry_run` (decision logged and counted, not applied).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Deny requests that fail the check.
    #[default]
    Enforce,
    /// Log and count what would be denied; let it through.
    DryRun,
}
