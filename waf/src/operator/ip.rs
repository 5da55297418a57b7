//! `@ipMatch` / `@ipMatchFromFile`: IPv4/IPv6 addresses and CIDR blocks (`ipnet`), matched
//! against an input that must itself be one address (ModSecurity's `IpTree`).

use ipnet::IpNet;
use std::net::IpAddr;

/// A compiled list of networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpList {
    networks: Vec<IpNet>,
}

impl IpList {
    /// Parses entries separated by commas and/or whitespace: `a.b.c.d`, `a.b.c.d/n`, IPv6
    /// likewise. A bare address is its own /32 or /128.
    pub fn parse(list: &str) -> Result<IpList, String> {
        let mut networks = Vec::new();
        for entry in list
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|e| !e.is_empty())
        {
            networks.push(parse_entry(entry)?);
        }
        Ok(IpList { networks })
    }

    /// Parses a data file as `IpTree::addFromBuffer`: per line, everything from a `#` on is a
    /// comment, and the rest is a list as in [`IpList::parse`] (blank lines add nothing).
    pub fn parse_file(text: &str) -> Result<IpList, String> {
        let mut networks = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let entries = line.split('#').next().unwrap_or("");
            let list = IpList::parse(entries).map_err(|e| format!("line {}: {e}", n + 1))?;
            networks.extend(list.networks);
        }
        Ok(IpList { networks })
    }

    /// Is `input` (an address as text) inside one of the networks? Anything that is not an
    /// address does not match.
    pub fn matches(&self, input: &[u8]) -> bool {
        let Some(address) = std::str::from_utf8(input)
            .ok()
            .and_then(|s| s.parse::<IpAddr>().ok())
        else {
            return false;
        };
        self.networks.iter().any(|n| n.contains(&address))
    }
}

fn parse_entry(entry: &str) -> Result<IpNet, String> {
    if entry.contains('/') {
        entry
            .parse::<IpNet>()
            .map(|n| n.trunc())
            .map_err(|_| format!("`{entry}` is not an IPv4/IPv6 CIDR block"))
    } else {
        entry
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("`{entry}` is not an IPv4/IPv6 address"))
    }
}
