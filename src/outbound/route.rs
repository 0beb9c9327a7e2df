//! Which way a request leaves: directly, or through which proxy.
//!
//! The matching is hyper-util's proxy [`Matcher`] (curl's `NO_PROXY` rules:
//! host names, domain suffixes with or without a leading dot, IP addresses,
//! CIDR ranges), with what curl and Go agree on and the matcher lacks:
//!
//! - `*` bypasses the proxy for every destination, IP addresses included;
//! - `*.example.com` is `.example.com` (Go);
//! - `host:port` and `[v6]:port` entries bypass only that port (Go);
//! - `[::1]` is the address `::1`;
//! - loopback destinations (`localhost`, 127.0.0.0/8, `::1`) are always
//!   reached directly, as in Go: a proxy's loopback is not ours, and a plain
//!   http request (the only kind allowed to loopback) must not carry a token
//!   off the machine.

use http::header::HeaderValue;
use http::Uri;
use hyper_util::client::proxy::matcher::{Intercept, Matcher};

use crate::config::{is_loopback_host, ProxyOrigin, ProxySettings, ProxyUrl};

/// How a request to one destination leaves.
#[derive(Debug, Clone)]
pub enum Route {
    /// Straight to the destination, and why.
    Direct(Direct),
    /// Through a proxy.
    Proxy(Via),
}

/// Why a destination is reached directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direct {
    /// No proxy is configured for the destination's scheme.
    NoProxy,
    /// `--no-proxy` was given.
    Disabled,
    /// The destination is a loopback address: always direct.
    Loopback,
    /// `NO_PROXY` names the destination.
    Excluded,
}

/// The proxy a request goes through. Debug shows no credentials.
#[derive(Clone)]
pub struct Via {
    proxy: String,
    origin: ProxyOrigin,
    intercept: Intercept,
}

/// The proxy settings, compiled.
pub(super) struct Routes {
    https: Option<ProxyUrl>,
    http: Option<ProxyUrl>,
    disabled: bool,
    /// The configured proxies, with the `NO_PROXY` entries that have no port.
    matcher: Matcher,
    /// `NO_PROXY` entries with a port: one matcher per port.
    by_port: Vec<(u16, Matcher)>,
    /// `NO_PROXY` holds `*`.
    bypass_all: bool,
}

// === impl Via ===

impl Via {
    /// The proxy, `http://host:port`, without credentials.
    pub fn proxy(&self) -> &str {
        &self.proxy
    }

    /// Where the proxy setting came from.
    pub fn origin(&self) -> ProxyOrigin {
        self.origin
    }

    /// The proxy's address, to connect to.
    pub(super) fn uri(&self) -> &Uri {
        self.intercept.uri()
    }

    /// `Proxy-Authorization` (marked sensitive), from the URL's userinfo.
    pub(super) fn auth(&self) -> Option<&HeaderValue> {
        self.intercept.basic_auth()
    }
}

impl std::fmt::Debug for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Via({} from {})", self.proxy, self.origin)
    }
}

// === impl Routes ===

impl Routes {
    /// Compiles `settings`.
    pub(super) fn new(settings: &ProxySettings) -> Self {
        let list = settings.no_proxy.as_ref().map_or("", |(l, _)| l.as_str());
        let NoProxyList {
            all: bypass_all,
            plain,
            by_port,
        } = split_no_proxy(list);
        let matcher = |no: String| {
            let mut b = Matcher::builder().no(no);
            if let Some(p) = &settings.https {
                b = b.https(p.expose());
            }
            if let Some(p) = &settings.http {
                b = b.http(p.expose());
            }
            b.build()
        };
        Self {
            https: settings.https.clone(),
            http: settings.http.clone(),
            disabled: settings.disabled,
            matcher: matcher(plain.join(",")),
            by_port: by_port
                .into_iter()
                .map(|(port, hosts)| (port, matcher(hosts.join(","))))
                .collect(),
            bypass_all,
        }
    }

    /// The way to `dst`.
    pub(super) fn route(&self, dst: &Uri) -> Route {
        let (proxy, default_port) = match dst.scheme_str() {
            Some("https") => (&self.https, 443),
            Some("http") => (&self.http, 80),
            _ => (&None, 0),
        };
        let (Some(proxy), Some(host)) = (proxy, dst.host()) else {
            return Route::Direct(if self.disabled {
                Direct::Disabled
            } else {
                Direct::NoProxy
            });
        };
        if is_loopback_host(host) {
            return Route::Direct(Direct::Loopback);
        }
        let port = dst.port_u16().unwrap_or(default_port);
        let excluded_for_port = self
            .by_port
            .iter()
            .any(|(p, m)| *p == port && m.intercept(dst).is_none());
        if self.bypass_all || excluded_for_port {
            return Route::Direct(Direct::Excluded);
        }
        match self.matcher.intercept(dst) {
            None => Route::Direct(Direct::Excluded),
            Some(intercept) => Route::Proxy(Via {
                proxy: proxy.redacted().to_owned(),
                origin: proxy.origin(),
                intercept,
            }),
        }
    }
}

/// `NO_PROXY`, split for the matchers.
#[derive(Default)]
struct NoProxyList {
    /// `*` is in the list.
    all: bool,
    /// Entries without a port.
    plain: Vec<String>,
    /// Entries with a port, by port.
    by_port: Vec<(u16, Vec<String>)>,
}

/// Splits `NO_PROXY` (normalising `*.name`, `[v6]`).
fn split_no_proxy(list: &str) -> NoProxyList {
    let mut all = false;
    let mut plain = Vec::new();
    let mut by_port: Vec<(u16, Vec<String>)> = Vec::new();
    let mut add = |port: Option<u16>, host: &str| match port {
        None => plain.push(host.to_owned()),
        Some(port) => match by_port.iter_mut().find(|(p, _)| *p == port) {
            Some((_, hosts)) => hosts.push(host.to_owned()),
            None => by_port.push((port, vec![host.to_owned()])),
        },
    };
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if entry == "*" {
            all = true;
            continue;
        }
        let entry = entry.strip_prefix('*').unwrap_or(entry);
        if let Some((ip, tail)) = entry
            .strip_prefix('[')
            .and_then(|rest| rest.split_once(']'))
        {
            match tail.strip_prefix(':').map(str::parse::<u16>) {
                None if tail.is_empty() => add(None, ip),
                Some(Ok(port)) => add(Some(port), ip),
                _ => add(None, entry),
            }
            continue;
        }
        // `host:port`; a bare IPv6 address has more than one colon.
        match entry.split_once(':') {
            Some((host, port)) if !port.contains(':') => match port.parse::<u16>() {
                Ok(port) => add(Some(port), host),
                Err(_) => add(None, entry),
            },
            _ => add(None, entry),
        }
    }
    NoProxyList {
        all,
        plain,
        by_port,
    }
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
