//! The upstream: which one ([`Upstream`], from `--exchange-url` or
//! `--org-id`), and how it is reached ([`UpstreamConfig`]: timeouts,
//! `--ca-file` roots, the proxy), with [`OutboundConfig`], what the one
//! outbound client is built from.

use std::time::Duration;

use http::Uri;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::error::ConfigError;
use super::flag::string_value;
use super::key::ExchangeMethod;
use super::proxy::ProxySettings;
use super::url::HttpsUrl;

/// The CoreWeave temporary-credentials endpoint, without the org id.
pub const COREWEAVE_EXCHANGE_BASE: &str =
    "https://api.coreweave.com/v1/cwobject/temporary-credentials/oidc/";

/// What an organization id may be.
pub const ORG_ID_RULE: &str = "must be 1-128 characters of letters, digits, '-', '_' or '.'";

/// A CoreWeave organization id, and the exchange URL it names.
#[derive(Clone, PartialEq, Eq)]
pub struct OrgId {
    id: String,
    url: Uri,
}

/// The upstream temporary-credentials endpoint: exactly one of the
/// sidecar's `--org-id` and `--exchange-url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// A CoreWeave organization id: `--org-id`.
    OrgId(OrgId),
    /// A full temporary-credentials URL: `--exchange-url`.
    ExchangeUrl(HttpsUrl),
}

/// How to reach the upstream.
#[derive(Clone)]
pub struct UpstreamConfig {
    /// The full temporary-credentials URL.
    pub url: Uri,
    /// Time allowed to open the TCP connection.
    pub connect_timeout: Duration,
    /// Total time allowed for one exchange.
    pub timeout: Duration,
    /// Extra trusted roots (from `--ca-file`), beside the webpki roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// The proxy for outbound connections (`--proxy`, `HTTPS_PROXY`, ...).
    pub proxy: ProxySettings,
    /// Which exchange `url` offers: the GET (the upstream picks the
    /// lifetime) or the POST (`--key-lifetime`).
    pub method: ExchangeMethod,
}

/// What the one outbound HTTP(S) client is built from: every caller (the
/// exchange, node mode's key-set fetches, the webhook's API calls) uses the
/// same timeouts, roots and proxy.
#[derive(Clone)]
pub struct OutboundConfig {
    /// Time allowed to open a TCP connection (to the destination or the proxy).
    pub connect_timeout: Duration,
    /// Extra trusted roots (from `--ca-file`), beside the webpki roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Which destinations go through which proxy.
    pub proxy: ProxySettings,
}

/// Whether `org` is an organization id ([`ORG_ID_RULE`]).
pub fn valid_org_id(org: &str) -> bool {
    !org.is_empty()
        && org.len() <= 128
        && org
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The POST exchange's URL and org id from the GET exchange's URL, which
/// ends in `/ORG`: the same URL without its last path segment (CoreWeave's
/// `…/temporary-credentials/oidc/ORG` → `…/temporary-credentials/oidc`).
pub fn post_target(get_url: &http::Uri) -> Result<(http::Uri, String), String> {
    let path = get_url.path();
    let Some((base, org)) = path.trim_end_matches('/').rsplit_once('/') else {
        return Err("must end in /ORG-ID to be used with --key-lifetime".into());
    };
    if base.is_empty() || !valid_org_id(org) || get_url.query().is_some() {
        return Err(
            "must end in /ORG-ID (the GET exchange's form, e.g. https://api.coreweave.com/v1/cwobject/temporary-credentials/oidc/ORG-ID) to be used with --key-lifetime".into(),
        );
    }
    let mut parts = get_url.clone().into_parts();
    parts.path_and_query = Some(
        base.parse()
            .map_err(|_| "makes no URL without its last path segment".to_owned())?,
    );
    let url = http::Uri::from_parts(parts)
        .map_err(|_| "makes no URL without its last path segment".to_owned())?;
    Ok((url, org.to_owned()))
}

/// Reads `--ca-file`: PEM certificates, at least one.
pub fn load_roots(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    const FLAG: &str = "--ca-file";
    let pem = crate::fsread::read(path, crate::fsread::PEM)
        .map_err(|e| ConfigError::new(FLAG, e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::new(FLAG, format!("bad PEM in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            FLAG,
            format!("no certificates in {}", path.display()),
        ));
    }
    Ok(certs)
}

// === impl OrgId ===

impl OrgId {
    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl std::str::FromStr for OrgId {
    type Err = String;

    fn from_str(org: &str) -> Result<Self, String> {
        if !valid_org_id(org) {
            return Err(ORG_ID_RULE.into());
        }
        let url = format!("{COREWEAVE_EXCHANGE_BASE}{org}")
            .parse()
            .map_err(|e| format!("builds no valid URL ({e})"))?;
        Ok(Self {
            id: org.to_owned(),
            url,
        })
    }
}

string_value!(OrgId);

// === impl Upstream ===

impl Upstream {
    /// The temporary-credentials URL.
    pub fn url(&self) -> &Uri {
        match self {
            Self::OrgId(org) => &org.url,
            Self::ExchangeUrl(url) => url.uri(),
        }
    }

    /// The sidecar's flag and value that name this upstream.
    pub fn as_flag(&self) -> [&str; 2] {
        match self {
            Self::OrgId(org) => ["--org-id", org.as_str()],
            Self::ExchangeUrl(url) => ["--exchange-url", url.as_str()],
        }
    }
}

// === impl UpstreamConfig ===

impl UpstreamConfig {
    /// The outbound client's settings for this upstream's flags.
    pub fn outbound(&self) -> OutboundConfig {
        OutboundConfig {
            connect_timeout: self.connect_timeout,
            extra_roots: self.extra_roots.clone(),
            proxy: self.proxy.clone(),
        }
    }
}

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("url", &self.url.to_string())
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("extra_roots", &self.extra_roots.len())
            .field("proxy", &self.proxy)
            .field("method", &self.method)
            .finish()
    }
}

impl std::fmt::Debug for OutboundConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("extra_roots", &self.extra_roots.len())
            .field("proxy", &self.proxy)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_targets() {
        let (url, org) = post_target(
            &"https://api.coreweave.com/v1/cwobject/temporary-credentials/oidc/my-org"
                .parse()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            url.to_string(),
            "https://api.coreweave.com/v1/cwobject/temporary-credentials/oidc"
        );
        assert_eq!(org, "my-org");
        let (url, org) = post_target(&"http://127.0.0.1:9/x/oidc/o/".parse().unwrap()).unwrap();
        assert_eq!(
            (url.to_string().as_str(), org.as_str()),
            ("http://127.0.0.1:9/x/oidc", "o")
        );
        for bad in [
            "https://h/org",
            "https://h/",
            "https://h/a/b?c=d",
            "https://h/a/b%20c",
        ] {
            assert!(post_target(&bad.parse().unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn org_ids() {
        let org: OrgId = "my-org_1".parse().unwrap();
        assert_eq!(
            Upstream::OrgId(org).url().to_string(),
            "https://api.coreweave.com/v1/cwobject/temporary-credentials/oidc/my-org_1"
        );
        for bad in ["", "a/b", "a b", "x?y=1", &"a".repeat(129)] {
            assert_eq!(bad.parse::<OrgId>().unwrap_err(), ORG_ID_RULE, "{bad}");
        }
    }

    #[test]
    fn each_upstream_is_one_sidecar_flag() {
        let url: HttpsUrl = "http://127.0.0.1:9/v1/x".parse().unwrap();
        let up = Upstream::ExchangeUrl(url);
        assert_eq!(up.as_flag(), ["--exchange-url", "http://127.0.0.1:9/v1/x"]);
        assert_eq!(up.url().to_string(), "http://127.0.0.1:9/v1/x");
    }

    #[test]
    fn roots_are_read_once_and_must_be_there() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        for path in [empty, dir.path().join("missing.pem")] {
            assert_eq!(load_roots(&path).unwrap_err().flag, "--ca-file");
        }
    }
}
