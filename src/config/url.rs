//! The URLs given on the command line, each kept as written (an issuer is
//! compared with a token's `iss` byte for byte; an injected URL is written
//! into Pods as given) beside its parsed form.
//!
//! - [`HttpsUrl`]: what credagent fetches from or sends a token to
//!   (`--exchange-url`, `--issuer`, `--jwks-url`): `https://`, or plain
//!   `http://` only to a loopback host (tests, the demo).
//! - [`HttpUrl`]: an address handed to someone else (`--endpoint-url`,
//!   `--s3-endpoint`, `--node-url`): `http://` or `https://` with a host.

use std::net::IpAddr;

use http::Uri;

use super::flag::string_value;

/// An `https://` URL, or `http://` to a loopback host.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpsUrl {
    text: String,
    uri: Uri,
}

/// An `http://` or `https://` URL with a host.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl {
    text: String,
    uri: Uri,
}

/// Checks a URL the agent fetches documents from or sends tokens to:
/// `https`, or plain `http` only to a loopback address.
pub fn check_fetch_url(uri: &Uri) -> Result<(), String> {
    let Some(host) = uri.host() else {
        return Err("the URL has no host".into());
    };
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if is_loopback_host(host) => Ok(()),
        Some("http") => Err("plain http is allowed only to a loopback host; use https".into()),
        _ => Err("the scheme must be https".into()),
    }
}

/// Returns true if and only if `host` (as it appears in a URI) is a loopback
/// address or `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn parse_uri(raw: &str) -> Result<Uri, String> {
    raw.parse().map_err(|e| format!("not a URL ({e})"))
}

// === impl HttpsUrl ===

impl HttpsUrl {
    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The URL, parsed.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }
}

impl std::str::FromStr for HttpsUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let uri = parse_uri(raw)?;
        check_fetch_url(&uri)?;
        Ok(Self {
            text: raw.to_owned(),
            uri,
        })
    }
}

// === impl HttpUrl ===

impl HttpUrl {
    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The URL, parsed.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }
}

impl std::str::FromStr for HttpUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let uri = parse_uri(raw)?;
        let has_host = uri.host().is_some_and(|h| !h.is_empty());
        if !matches!(uri.scheme_str(), Some("http" | "https")) || !has_host {
            return Err("must be an http:// or https:// URL with a host".into());
        }
        Ok(Self {
            text: raw.to_owned(),
            uri,
        })
    }
}

string_value!(HttpsUrl, HttpUrl);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["127.0.0.1", "127.1.2.3", "[::1]", "localhost", "LOCALHOST"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "10.0.0.1",
            "169.254.170.23",
            "example.com",
            "[fd00:ec2::23]",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn https_urls() {
        for ok in [
            "https://api.example.com/v1/x",
            "http://127.0.0.1:8080/v1/x",
            "http://[::1]:8080/v1/x",
        ] {
            assert_eq!(ok.parse::<HttpsUrl>().unwrap().as_str(), ok);
        }
        let e = "http://api.example.com/v1/x"
            .parse::<HttpsUrl>()
            .unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        assert!("ftp://x/y".parse::<HttpsUrl>().is_err());
        assert!("/relative".parse::<HttpsUrl>().is_err());
        assert!("not a url"
            .parse::<HttpsUrl>()
            .unwrap_err()
            .starts_with("not a URL"));
    }

    #[test]
    fn http_urls() {
        let u: HttpUrl = "http://cwlota.com".parse().unwrap();
        assert_eq!(u.as_str(), "http://cwlota.com");
        assert_eq!(u.uri().to_string(), "http://cwlota.com/");
        for bad in ["cwlota.com", "ftp://x", "169.254.170.23", "/x"] {
            assert!(bad.parse::<HttpUrl>().is_err(), "{bad}");
        }
    }
}
