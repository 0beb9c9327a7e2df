//! Request-target checks for the listeners that answer only to their own
//! addresses (node mode's credentials listeners, the IMDS emulation): a
//! request must name one of them, which a page rebinding its DNS name to
//! the agent's address, or a confused proxy, does not.
//!
//! RFC 9112, section 3.2: a server answers 400 to a request without a
//! `Host`, with more than one, or with an invalid one; an absolute-form
//! target (`GET http://host/path`) must name a listener too, and so must
//! the `Host` beside it. A well-formed name that is not one of the
//! listener's gets 403.

use std::net::{IpAddr, SocketAddr};

use http::header::HOST;
use http::uri::Authority;
use http::{Request, StatusCode};

/// Why a request's target is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// No `Host` header.
    Missing,
    /// More than one `Host` header.
    Several,
    /// A `Host` (or absolute-form authority) that is not `host[:port]`.
    Malformed,
    /// A well-formed name that is not the listener's.
    Elsewhere,
}

/// The names a listener answers to: addresses or names, each with a port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNames {
    names: Vec<(Name, u16)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    Ip(IpAddr),
    /// Lowercase.
    Dns(String),
}

// === impl HostError ===

impl HostError {
    /// 400, or 403 for [`HostError::Elsewhere`].
    pub fn status(self) -> StatusCode {
        match self {
            HostError::Elsewhere => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The metric reason: `bad_host` (another name) or `malformed_host`.
    pub fn reason(self) -> &'static str {
        match self {
            HostError::Elsewhere => "bad_host",
            _ => "malformed_host",
        }
    }

    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            HostError::Missing => "the request has no Host header",
            HostError::Several => "the request has more than one Host header",
            HostError::Malformed => "the Host header (or the request target) is not host[:port]",
            HostError::Elsewhere => "the Host header is not this agent's address",
        }
    }
}

// === impl HostNames ===

impl HostNames {
    /// The names of listeners on `listen` (`ip:port`, and the bare `ip`
    /// for port 80). `None` when one is on a wildcard address, whose names
    /// cannot be enumerated.
    pub fn of(listen: &[SocketAddr]) -> Option<Self> {
        let mut names = Self::default();
        for addr in listen {
            if addr.ip().is_unspecified() {
                return None;
            }
            names = names.with_ip(addr.ip(), addr.port());
        }
        Some(names)
    }

    /// These names and `ip` on `port`.
    pub fn with_ip(mut self, ip: IpAddr, port: u16) -> Self {
        self.names.push((Name::Ip(ip), port));
        self
    }

    /// These names and `name` (a DNS name) on `port`.
    pub fn with_name(mut self, name: &str, port: u16) -> Self {
        self.names
            .push((Name::Dns(name.to_ascii_lowercase()), port));
        self
    }

    /// Returns true if and only if `host` (as `Host` spells it:
    /// `host[:port]`, port 80 by default) is one of these names.
    pub fn allows(&self, host: &str) -> bool {
        parse(host, 80).is_some_and(|target| self.names.contains(&target))
    }

    /// Checks `req`'s target: [`form`], and every name it carries is one of
    /// these.
    pub fn check<B>(&self, req: &Request<B>) -> Result<(), HostError> {
        for target in form(req)? {
            if !self.names.contains(&target) {
                return Err(HostError::Elsewhere);
            }
        }
        Ok(())
    }
}

/// Checks that `req` carries exactly one well-formed `Host` (and, with an
/// absolute-form target, a well-formed authority); returns the names they
/// carry. What a listener whose own names are unknown (a wildcard address)
/// can still check.
fn form<B>(req: &Request<B>) -> Result<Vec<(Name, u16)>, HostError> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let host = hosts.next().ok_or(HostError::Missing)?;
    if hosts.next().is_some() {
        return Err(HostError::Several);
    }
    let host = host.to_str().map_err(|_| HostError::Malformed)?;
    let mut names = vec![parse(host, 80).ok_or(HostError::Malformed)?];
    if let Some(authority) = req.uri().authority() {
        let port = match req.uri().scheme_str() {
            Some("https") => 443,
            _ => 80,
        };
        names.push(parse(authority.as_str(), port).ok_or(HostError::Malformed)?);
    }
    Ok(names)
}

/// [`form`], for listeners whose names are unknown.
pub fn check_form<B>(req: &Request<B>) -> Result<(), HostError> {
    form(req).map(drop)
}

/// `host[:port]` (no user-info), its port `default` when absent.
fn parse(host: &str, default: u16) -> Option<(Name, u16)> {
    if host.is_empty() || host.contains('@') {
        return None;
    }
    let authority: Authority = host.parse().ok()?;
    let port = authority.port_u16().unwrap_or(default);
    let name = authority.host();
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    let name = match bare.parse::<IpAddr>() {
        Ok(ip) => Name::Ip(ip),
        Err(_) if name.starts_with('[') => return None,
        Err(_) => Name::Dns(name.to_ascii_lowercase()),
    };
    Some((name, port))
}

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;
