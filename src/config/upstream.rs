//! The upstream and refresh flags every mode shares (`--exchange-url` or
//! `--org-id`, timeouts, `--ca-file`, the proxy, the refresh schedule), and
//! [`OutboundConfig`], what the one outbound client is built from.

use std::net::IpAddr;
use std::time::Duration;

use http::Uri;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::duration::parse_duration;
use super::error::ConfigError;
use super::key::ExchangeMethod;
use super::proxy::{proxy_settings, ProxySettings};
use super::refresh::RefreshPolicy;
use crate::cli::{TuningArgs, UpstreamArgs};

/// The CoreWeave temporary-credentials endpoint, without the org id.
pub const COREWEAVE_EXCHANGE_BASE: &str =
    "https://api.coreweave.com/v1/cwobject/temporary-credentials/oidc/";

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

/// Which of `--exchange-url` and `--org-id` was given.
pub(super) enum Given<'a> {
    ExchangeUrl(&'a str),
    OrgId(&'a str),
}

/// Exactly one of `--exchange-url` and `--org-id`, validated, and the
/// exchange URL it makes.
pub(super) fn exchange_target(upstream: &UpstreamArgs) -> Result<(Given<'_>, Uri), ConfigError> {
    match (&upstream.exchange_url, &upstream.org_id) {
        (Some(url), None) => Ok((Given::ExchangeUrl(url), exchange_url(url)?)),
        (None, Some(org)) => Ok((Given::OrgId(org), org_url(org)?)),
        (Some(_), Some(_)) => Err(ConfigError::new(
            "--exchange-url",
            "give either --exchange-url or --org-id, not both",
        )),
        (None, None) => Err(ConfigError::new(
            "--org-id",
            "one of --org-id or --exchange-url is required",
        )),
    }
}

/// Validates the upstream flags shared by the modes; the proxy variables
/// are read from the process environment, once, here.
pub fn upstream_config(
    upstream: &UpstreamArgs,
    tuning: &TuningArgs,
) -> Result<UpstreamConfig, ConfigError> {
    let (_, url) = exchange_target(upstream)?;
    let connect_timeout = parse_duration(&tuning.connect_timeout)
        .map_err(|e| ConfigError::new("--connect-timeout", e))?;
    let timeout = parse_duration(&tuning.upstream_timeout)
        .map_err(|e| ConfigError::new("--upstream-timeout", e))?;
    if connect_timeout.is_zero() {
        return Err(ConfigError::new("--connect-timeout", "must be > 0"));
    }
    if timeout.is_zero() {
        return Err(ConfigError::new("--upstream-timeout", "must be > 0"));
    }
    let extra_roots = match &tuning.ca_file {
        None => Vec::new(),
        Some(path) => load_roots(path)?,
    };
    let proxy = proxy_settings(tuning, |name| std::env::var(name).ok())?;
    Ok(UpstreamConfig {
        url,
        connect_timeout,
        timeout,
        extra_roots,
        proxy,
        method: ExchangeMethod::Get,
    })
}

/// Validates the refresh flags shared by the modes.
pub fn refresh_policy(tuning: &TuningArgs) -> Result<RefreshPolicy, ConfigError> {
    let fraction = tuning.refresh_fraction;
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(ConfigError::new(
            "--refresh-fraction",
            "must be between 0 and 1 (exclusive)",
        ));
    }
    let margin = parse_duration(&tuning.refresh_margin)
        .map_err(|e| ConfigError::new("--refresh-margin", e))?;
    Ok(RefreshPolicy {
        fraction,
        margin,
        ..RefreshPolicy::default()
    })
}

pub(super) fn exchange_url(raw: &str) -> Result<Uri, ConfigError> {
    const FLAG: &str = "--exchange-url";
    let uri: Uri = raw
        .parse()
        .map_err(|e| ConfigError::new(FLAG, format!("not a URL ({e})")))?;
    let host = uri
        .host()
        .ok_or_else(|| ConfigError::new(FLAG, "the URL has no host"))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if is_loopback_host(host) => {}
        Some("http") => {
            return Err(ConfigError::new(
                FLAG,
                "plain http is allowed only to a loopback host; use https",
            ))
        }
        _ => return Err(ConfigError::new(FLAG, "the scheme must be https")),
    }
    Ok(uri)
}

/// What an organization id may be.
pub const ORG_ID_RULE: &str = "must be 1-128 characters of letters, digits, '-', '_' or '.'";

/// Whether `org` is an organization id (`ORG_ID_RULE`).
pub fn valid_org_id(org: &str) -> bool {
    !org.is_empty()
        && org.len() <= 128
        && org
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What a region name may be.
pub const REGION_RULE: &str = "must be 1-64 characters of letters, digits and '-'";

/// Whether `region` is a region name (`REGION_RULE`).
pub fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub(super) fn org_url(org: &str) -> Result<Uri, ConfigError> {
    if !valid_org_id(org) {
        return Err(ConfigError::new("--org-id", ORG_ID_RULE));
    }
    format!("{COREWEAVE_EXCHANGE_BASE}{org}")
        .parse()
        .map_err(|e| ConfigError::new("--org-id", format!("builds no valid URL ({e})")))
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

/// Checks a URL the agent fetches documents from (issuer discovery, key
/// sets): `https`, or plain `http` only to a loopback address.
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

fn load_roots(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    const FLAG: &str = "--ca-file";
    let pem = std::fs::read(path)
        .map_err(|e| ConfigError::new(FLAG, format!("cannot read {}: {e}", path.display())))?;
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
    fn exchange_urls() {
        assert!(exchange_url("https://api.example.com/v1/x").is_ok());
        assert!(exchange_url("http://127.0.0.1:8080/v1/x").is_ok());
        assert!(exchange_url("http://[::1]:8080/v1/x").is_ok());
        let e = exchange_url("http://api.example.com/v1/x").unwrap_err();
        assert_eq!(e.flag, "--exchange-url");
        assert!(e.to_string().contains("loopback"), "{e}");
        assert!(exchange_url("ftp://x/y").is_err());
        assert!(exchange_url("/relative").is_err());
    }

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
        let uri = org_url("my-org_1").unwrap();
        assert_eq!(
            uri.to_string(),
            "https://api.coreweave.com/v1/cwobject/temporary-credentials/oidc/my-org_1"
        );
        for bad in ["", "a/b", "a b", "x?y=1", &"a".repeat(129)] {
            assert_eq!(org_url(bad).unwrap_err().flag, "--org-id", "{bad}");
        }
    }
}
