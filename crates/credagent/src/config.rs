//! Typed, validated configuration.
//!
//! [`crate::cli`] collects raw strings from flags and the environment; this
//! module turns them into durations, URIs and certificates, and rejects
//! anything that would fail later. It runs before any socket is bound, so a
//! bad value exits with status 2 and one line naming the flag.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::cli::{NodeArgs, SidecarArgs, TuningArgs, UpstreamArgs};
use crate::refresh::RefreshPolicy;

/// The CoreWeave temporary-credentials endpoint, without the org id.
pub const COREWEAVE_EXCHANGE_BASE: &str =
    "https://api.coreweave.com/v1/cwobject/temporary-credentials/oidc/";

/// A configuration value that cannot be used. Names the flag.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {flag}: {reason}")]
pub struct ConfigError {
    /// The flag, e.g. `--exchange-url`.
    pub flag: &'static str,
    /// What is wrong with it (never contains a secret).
    pub reason: String,
}

impl ConfigError {
    fn new(flag: &'static str, reason: impl Into<String>) -> Self {
        Self {
            flag,
            reason: reason.into(),
        }
    }
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
}

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("url", &self.url.to_string())
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("extra_roots", &self.extra_roots.len())
            .finish()
    }
}

/// Everything `credagent sidecar` needs, validated.
#[derive(Debug, Clone)]
pub struct SidecarConfig {
    /// The projected token (the user-visible path kubelet maintains).
    pub token_file: PathBuf,
    /// The upstream exchange.
    pub upstream: UpstreamConfig,
    /// Credentials listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// The authorization token callers must present.
    pub auth_token_file: PathBuf,
    /// When to refresh and how long to keep serving.
    pub refresh: RefreshPolicy,
    /// The IMDS emulation, if enabled.
    pub imds: Option<(SocketAddr, crate::surfaces::imds::ImdsConfig)>,
    /// The shared credentials file, if enabled.
    pub credentials_file: Option<crate::surfaces::file_sink::FileSinkConfig>,
    /// Connections served at once per listener.
    pub max_connections: usize,
}

// === impl SidecarConfig ===

impl SidecarConfig {
    /// Validates raw sidecar arguments.
    pub fn from_args(args: &SidecarArgs) -> Result<Self, ConfigError> {
        if args.token_file.file_name().is_none() {
            return Err(ConfigError::new("--token-file", "must name a file"));
        }
        if args.auth_token_file.file_name().is_none() {
            return Err(ConfigError::new("--auth-token-file", "must name a file"));
        }
        if let Some(region) = &args.region {
            let valid = !region.is_empty()
                && region.len() <= 64
                && region
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid {
                return Err(ConfigError::new(
                    "--region",
                    "must be letters, digits and '-'",
                ));
            }
        }
        let profile_ok = !args.credentials_profile.is_empty()
            && args
                .credentials_profile
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !profile_ok {
            return Err(ConfigError::new(
                "--credentials-profile",
                "must be letters, digits, '-', '_' or '.'",
            ));
        }
        if args.serving.max_connections == 0 {
            return Err(ConfigError::new("--max-connections", "must be > 0"));
        }
        if let Some(path) = &args.credentials_file {
            if path.file_name().is_none() {
                return Err(ConfigError::new("--credentials-file", "must name a file"));
            }
        }
        Ok(Self {
            token_file: args.token_file.clone(),
            upstream: upstream_config(&args.upstream, &args.tuning)?,
            listen: args.listen,
            admin_listen: args.admin_listen,
            auth_token_file: args.auth_token_file.clone(),
            refresh: refresh_policy(&args.tuning)?,
            imds: args.imds_listen.map(|addr| {
                (
                    addr,
                    crate::surfaces::imds::ImdsConfig {
                        allow_v1: args.imds_allow_v1,
                        region: args.region.clone(),
                    },
                )
            }),
            max_connections: args.serving.max_connections,
            credentials_file: args.credentials_file.clone().map(|path| {
                crate::surfaces::file_sink::FileSinkConfig {
                    path,
                    profile: args.credentials_profile.clone(),
                }
            }),
        })
    }
}

/// Everything `credagent node` needs, validated.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The upstream exchange.
    pub upstream: UpstreamConfig,
    /// Credentials listeners.
    pub listen: Vec<SocketAddr>,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// The identity cache's bounds and schedule.
    pub cache: crate::node::cache::CacheConfig,
    /// Connections served at once per listener.
    pub max_connections: usize,
}

// === impl NodeConfig ===

impl NodeConfig {
    /// Validates raw node arguments.
    pub fn from_args(args: &NodeArgs) -> Result<Self, ConfigError> {
        if args.listen.is_empty() {
            return Err(ConfigError::new(
                "--listen",
                "at least one address is required",
            ));
        }
        if args.max_identities == 0 {
            return Err(ConfigError::new("--max-identities", "must be > 0"));
        }
        if args.serving.max_connections == 0 {
            return Err(ConfigError::new("--max-connections", "must be > 0"));
        }
        if args.upstream_concurrency == 0 {
            return Err(ConfigError::new("--upstream-concurrency", "must be > 0"));
        }
        let idle_timeout = parse_duration(&args.idle_timeout)
            .map_err(|e| ConfigError::new("--idle-timeout", e))?;
        let negative_ttl = parse_duration(&args.negative_cache_ttl)
            .map_err(|e| ConfigError::new("--negative-cache-ttl", e))?;
        Ok(Self {
            upstream: upstream_config(&args.upstream, &args.tuning)?,
            listen: args.listen.clone(),
            admin_listen: args.admin_listen,
            max_connections: args.serving.max_connections,
            cache: crate::node::cache::CacheConfig {
                max_identities: args.max_identities,
                upstream_concurrency: args.upstream_concurrency,
                idle_timeout,
                negative_ttl,
                policy: refresh_policy(&args.tuning)?,
            },
        })
    }
}

/// Validates the upstream flags shared by the modes.
pub fn upstream_config(
    upstream: &UpstreamArgs,
    tuning: &TuningArgs,
) -> Result<UpstreamConfig, ConfigError> {
    let url = match (&upstream.exchange_url, &upstream.org_id) {
        (Some(url), None) => exchange_url(url)?,
        (None, Some(org)) => org_url(org)?,
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "--exchange-url",
                "give either --exchange-url or --org-id, not both",
            ))
        }
        (None, None) => {
            return Err(ConfigError::new(
                "--org-id",
                "one of --org-id or --exchange-url is required",
            ))
        }
    };
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
    Ok(UpstreamConfig {
        url,
        connect_timeout,
        timeout,
        extra_roots,
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

fn exchange_url(raw: &str) -> Result<Uri, ConfigError> {
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

fn org_url(org: &str) -> Result<Uri, ConfigError> {
    let valid = !org.is_empty()
        && org.len() <= 128
        && org
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        return Err(ConfigError::new(
            "--org-id",
            "must be 1-128 characters of letters, digits, '-', '_' or '.'",
        ));
    }
    format!("{COREWEAVE_EXCHANGE_BASE}{org}")
        .parse()
        .map_err(|e| ConfigError::new("--org-id", format!("builds no valid URL ({e})")))
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

/// Parses a duration: a number with a unit (`ms`, `s`, `m`, `h`), or bare
/// seconds. `1m30s` style compounds are accepted.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("'{raw}' is out of range"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "'{raw}' is not a duration (e.g. 500ms, 10s, 20m, 1h)"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("'{raw}' is out of range"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(format!("'{raw}' has an unknown unit (use ms, s, m or h)")),
        };
        rest = &rest[unit_len..];
        total = total.saturating_add(unit);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("10", 10_000),
            ("500ms", 500),
            ("10s", 10_000),
            ("20m", 1_200_000),
            ("1h", 3_600_000),
            ("1m30s", 90_000),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for bad in [
            "",
            "s",
            "10x",
            "-1s",
            "1.5s",
            "m10",
            "+10",
            "99999999999999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

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
