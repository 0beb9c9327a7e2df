//! The proxy the webhook gives every injected sidecar (`--sidecar-https-proxy`,
//! `--sidecar-no-proxy`), written into the sidecar's env as `HTTPS_PROXY` and
//! `NO_PROXY`: [`InjectedProxyUrl`] and [`NoProxyList`], what the webhook's
//! flags are parsed into and the admission core writes.
//!
//! The URL goes through the sidecar's own parser ([`ProxyUrl::parse`]), so an
//! injected sidecar never exits 2 on what it was given, and must carry no
//! credentials: the value is written in clear into every Pod spec, which
//! anyone who can read Pods can read.

use super::flag::string_value;
use super::proxy::{ProxyOrigin, ProxyUrl};

/// Longest `--sidecar-no-proxy`, in bytes.
pub const MAX_NO_PROXY_LEN: usize = 4096;

/// A proxy setting the webhook will not write into Pods.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InjectedProxyError {
    /// The sidecar would refuse the URL (its own reason; never the value).
    #[error("{0}")]
    Url(String),
    /// The URL has `user[:password]@`.
    #[error("a proxy URL with credentials (user:password@) would be written in clear into every injected Pod spec, readable by anyone who can read Pods; give http://HOST:PORT of a proxy that admits the cluster by its source addresses, or configure such sidecars by hand with HTTPS_PROXY from a Secret (docs/deploy.md, section 9)")]
    Credentials,
    /// Longer than [`MAX_NO_PROXY_LEN`].
    #[error("must be at most {MAX_NO_PROXY_LEN} characters")]
    NoProxyTooLong,
    /// Only commas and spaces.
    #[error("names no host")]
    NoProxyEmpty,
    /// An entry (1-based) with a character no host, address or range has.
    #[error("entry {entry} contains {found:?}: entries are host names, domains (.example.com), IP addresses, CIDR ranges or HOST:PORT, separated by commas, with no spaces inside")]
    NoProxyChar {
        /// Which entry, from 1.
        entry: usize,
        /// The character.
        found: char,
    },
    /// An entry (1-based) that is a URL.
    #[error("entry {0} is a URL: give only its host (and port)")]
    NoProxyUrl(usize),
}

/// An injected `HTTPS_PROXY`, as the sidecar will read it
/// ([`injected_https_proxy`]).
#[derive(Clone, PartialEq, Eq)]
pub struct InjectedProxyUrl(String);

/// An injected `NO_PROXY`, entries trimmed ([`injected_no_proxy`]).
#[derive(Clone, PartialEq, Eq)]
pub struct NoProxyList(String);

impl InjectedProxyUrl {
    /// `http://HOST[:PORT]`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl NoProxyList {
    /// The entries, comma-separated.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for InjectedProxyUrl {
    type Err = InjectedProxyError;

    fn from_str(raw: &str) -> Result<Self, InjectedProxyError> {
        injected_https_proxy(raw).map(Self)
    }
}

impl std::str::FromStr for NoProxyList {
    type Err = InjectedProxyError;

    fn from_str(raw: &str) -> Result<Self, InjectedProxyError> {
        injected_no_proxy(raw).map(Self)
    }
}

string_value!(InjectedProxyUrl, NoProxyList);

/// Checks an injected `HTTPS_PROXY`; returns it as the sidecar will read it
/// (`http://HOST[:PORT]`, the scheme made explicit).
pub fn injected_https_proxy(raw: &str) -> Result<String, InjectedProxyError> {
    let url =
        ProxyUrl::parse(raw, ProxyOrigin::Flag).map_err(|e| InjectedProxyError::Url(e.reason))?;
    if url.has_credentials() {
        return Err(InjectedProxyError::Credentials);
    }
    Ok(url.expose().to_owned())
}

/// Checks an injected `NO_PROXY`; returns it with each entry trimmed and
/// empty entries dropped (as the sidecar reads it). An entry is made of
/// the characters of host names, IP addresses (`[v6]` too), CIDR ranges,
/// ports and the `*` wildcard; nothing else means anything to the sidecar.
pub fn injected_no_proxy(raw: &str) -> Result<String, InjectedProxyError> {
    if raw.len() > MAX_NO_PROXY_LEN {
        return Err(InjectedProxyError::NoProxyTooLong);
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_*:[]/".contains(c);
    let mut entries = Vec::new();
    for (i, entry) in raw.split(',').map(str::trim).enumerate() {
        if let Some(found) = entry.chars().find(|c| !allowed(*c)) {
            return Err(InjectedProxyError::NoProxyChar {
                entry: i + 1,
                found,
            });
        }
        if entry.contains("://") {
            return Err(InjectedProxyError::NoProxyUrl(i + 1));
        }
        if !entry.is_empty() {
            entries.push(entry);
        }
    }
    if entries.is_empty() {
        return Err(InjectedProxyError::NoProxyEmpty);
    }
    Ok(entries.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_the_sidecars_and_written_as_it_reads_it() {
        assert_eq!(
            injected_https_proxy("proxy.corp:3128").unwrap(),
            "http://proxy.corp:3128"
        );
        assert_eq!(
            injected_https_proxy(" http://[fd00::1]:3128/ ").unwrap(),
            "http://[fd00::1]:3128"
        );
        for (raw, why) in [
            ("https://proxy:3128", "TLS to the proxy"),
            ("socks5://proxy:1080", "SOCKS"),
            ("ftp://proxy", "scheme"),
            ("http://proxy:3128/path", "no path"),
            ("http://:3128", "no host"),
            ("http://proxy:0", "port"),
            ("http://proxy:x", "port"),
        ] {
            let e = injected_https_proxy(raw).unwrap_err();
            assert!(matches!(e, InjectedProxyError::Url(_)), "{raw}: {e:?}");
            assert!(e.to_string().contains(why), "{raw}: {e}");
        }
    }

    #[test]
    fn credentials_are_refused_without_repeating_them() {
        for raw in [
            "http://user:hunter2@proxy:3128",
            "user:hunter2@proxy:3128",
            "http://hunter2@proxy",
        ] {
            let e = injected_https_proxy(raw).unwrap_err();
            assert_eq!(e, InjectedProxyError::Credentials, "{raw}");
            let text = e.to_string();
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("anyone who can read Pods"), "{text}");
            assert!(text.contains("from a Secret"), "{text}");
        }
        // A refused scheme is refused first, still without the value.
        let e = injected_https_proxy("https://user:hunter2@proxy").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn odd_input_is_an_error_not_a_panic_and_never_echoed() {
        let long = format!("http://{}:3128", "h".repeat(70_000));
        for raw in [
            "",
            " ",
            "://",
            "http://",
            "http://[",
            "http://[::1",
            "http://proxy:",
            "http://@",
            "http://:hunter2@",
            "http://a@b@hunter2",
            "http://proxy:3128?hunter2",
            "http://proxy:3128#hunter2",
            "\u{0}hunter2",
            "http://prö×y:3128/hunter2",
            long.as_str(),
        ] {
            match injected_https_proxy(raw) {
                Err(e) => assert!(!e.to_string().contains("hunter2"), "{raw:?}: {e}"),
                // The http crate drops a fragment: what is written is the rest.
                Ok(url) => assert_eq!(url, "http://proxy:3128", "{raw:?}"),
            }
        }
        for raw in ["", ",", "\u{0}", "[", "]:", "::::", "/", &"x".repeat(5000)] {
            let r = injected_no_proxy(raw);
            assert!(r.is_err() || !r.unwrap().is_empty(), "{raw:?}");
        }
    }

    #[test]
    fn no_proxy_is_a_bounded_list_of_hosts() {
        assert_eq!(
            injected_no_proxy(" .svc, .cluster.local,10.96.0.0/12,,[fd00::1]:443,* ").unwrap(),
            ".svc,.cluster.local,10.96.0.0/12,[fd00::1]:443,*"
        );
        assert_eq!(
            injected_no_proxy("api.internal:8443,*.corp.example,fd00::/8,my_host").unwrap(),
            "api.internal:8443,*.corp.example,fd00::/8,my_host"
        );
        assert_eq!(
            injected_no_proxy(" , ,"),
            Err(InjectedProxyError::NoProxyEmpty)
        );
        assert_eq!(
            injected_no_proxy(".svc,internal corp"),
            Err(InjectedProxyError::NoProxyChar {
                entry: 2,
                found: ' '
            })
        );
        assert_eq!(
            injected_no_proxy(".svc\t.corp"),
            Err(InjectedProxyError::NoProxyChar {
                entry: 1,
                found: '\t'
            })
        );
        for (raw, found) in [("a\u{7}b", '\u{7}'), ("bücher.example", 'ü'), ("a@b", '@')] {
            assert_eq!(
                injected_no_proxy(raw),
                Err(InjectedProxyError::NoProxyChar { entry: 1, found }),
                "{raw}"
            );
        }
        assert_eq!(
            injected_no_proxy(".svc,http://internal.corp"),
            Err(InjectedProxyError::NoProxyUrl(2))
        );
        let long = vec!["a.example"; 500].join(",");
        assert_eq!(
            injected_no_proxy(&long),
            Err(InjectedProxyError::NoProxyTooLong)
        );
        assert!(injected_no_proxy(&long[..MAX_NO_PROXY_LEN - 1]).is_ok());
    }
}
