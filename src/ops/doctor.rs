//! `credagent doctor`: a checklist of everything a sidecar set-up needs,
//! each with pass/fail and, on failure, how to fix it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use http::Uri;

pub use super::check::Check;
use crate::clock::unix_seconds;
use crate::config::{ExchangeMethod, RefreshPolicy, SidecarConfig};
use crate::credentials::Credentials;
use crate::exchange::{Exchange, ExchangeError, HttpExchanger};
use crate::server::auth::AUTH_TOKEN_FILE;
use crate::token::{self, read_token, ReadError, Token};

/// Largest clock difference tolerated with the upstream or the token issuer.
const MAX_SKEW: Duration = Duration::from_secs(300);

/// Runs every check against `config`.
pub async fn run(config: &SidecarConfig, audience: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    let path = &config.token_file;
    let token = match read_token(path).await {
        Ok(t) => {
            checks.push(Check::pass(
                "token file",
                format!("{} readable ({} bytes, a JWT)", path.display(), t.raw.len()),
            ));
            Some(t)
        }
        Err(e) => {
            checks.push(token_failure(path, &e));
            None
        }
    };
    checks.push(layout(path));
    if let Some(t) = &token {
        checks.extend(claims(t, audience));
    }
    checks.extend(super::reach::upstream_path(&config.upstream).await);
    let exchanged = match &token {
        Some(t) => Some(exchange(config, t).await),
        None => None,
    };
    if let Some((check, _)) = &exchanged {
        checks.push(check.clone());
    }
    let server_date = exchanged
        .as_ref()
        .and_then(|(_, c)| c.as_ref().and_then(|c| c.server_date));
    checks.push(clock(token.as_ref(), server_date));
    checks.extend(local_agent(config).await);
    checks
}

/// Renders the checklist; the summary line says how many passed.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::from("credagent doctor\n");
    for c in checks {
        out.push_str(&format!(
            "  {}  {:<18} {}\n",
            if c.ok { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        ));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("        {:<18} fix: {fix}\n", ""));
        }
    }
    let passed = checks.iter().filter(|c| c.ok).count();
    out.push_str(&format!(
        "{} checks: {} passed, {} failed\n",
        checks.len(),
        passed,
        checks.len() - passed
    ));
    out
}

fn token_failure(path: &Path, e: &ReadError) -> Check {
    let fix = match e {
        ReadError::Missing => format!(
            "mount a projected serviceAccountToken volume whose directory is {} and whose path is {}",
            path.parent().map(|p| p.display().to_string()).unwrap_or_default(),
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        ),
        ReadError::Unreadable(_) => "run the container as the Pod's runAsUser, set fsGroup, or give the projection defaultMode 0444".into(),
        ReadError::Invalid(_) => "point --token-file at the projected service-account token, not another file".into(),
    };
    Check::fail("token file", format!("{}: {e}", path.display()), fix)
}

fn layout(path: &Path) -> Check {
    if token::is_subpath_mount(path) {
        return Check::fail(
            "kubelet layout",
            "the token file is a subPath mount: kubelet will never rotate it",
            "mount the projected volume's directory (mountPath) instead of using subPath",
        );
    }
    let data = path.parent().map(|p| p.join("..data"));
    let managed = data
        .is_some_and(|d| std::fs::symlink_metadata(&d).is_ok_and(|m| m.file_type().is_symlink()))
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if managed {
        Check::pass(
            "kubelet layout",
            "kubelet-managed volume (..data symlink swap), rotations will be seen",
        )
    } else {
        Check::pass(
            "kubelet layout",
            "a plain file, not a kubelet projected volume: rotation depends on whoever writes it",
        )
    }
}

fn claims(token: &Token, audience: &str) -> Vec<Check> {
    let c = &token.claims;
    let mut out = Vec::new();
    if c.aud.iter().any(|a| a == audience) {
        out.push(Check::pass("audience", format!("includes {audience}")));
    } else {
        out.push(Check::fail(
            "audience",
            format!("token audience is {:?}, not {audience}", c.aud),
            format!("set `audience: {audience}` in the Pod's serviceAccountToken projection (or pass --audience to match your OIDC configuration)"),
        ));
    }
    match &c.iss {
        Some(iss) if iss.starts_with("https://") => out.push(Check::pass("issuer", iss.clone())),
        Some(iss) => out.push(Check::fail(
            "issuer",
            format!("{iss} is not an https URL"),
            "enable the cluster's OIDC issuer; the upstream fetches its keys over https",
        )),
        None => out.push(Check::fail(
            "issuer",
            "the token has no iss claim",
            "use a projected serviceAccountToken, not a legacy secret token",
        )),
    }
    let now = unix_seconds(SystemTime::now()) as i64;
    match c.exp {
        Some(exp) if exp > now => out.push(Check::pass("token lifetime", format!("expires in {}", super::human(Duration::from_secs((exp - now) as u64))))),
        Some(exp) => out.push(Check::fail(
            "token lifetime",
            format!("expired {} ago", super::human(Duration::from_secs((now - exp) as u64))),
            "kubelet is not rotating the token: check for a subPath mount, and kubelet's logs for TokenRequest errors",
        )),
        None => out.push(Check::fail("token lifetime", "the token has no exp claim", "use a projected serviceAccountToken with expirationSeconds")),
    }
    out
}

async fn exchange(config: &SidecarConfig, token: &Token) -> (Check, Option<Credentials>) {
    let client = match HttpExchanger::new(&config.upstream) {
        Ok(c) => c,
        Err(e) => {
            return (
                Check::fail("exchange", e.to_string(), "check --ca-file"),
                None,
            )
        }
    };
    let result = client.exchange(&token.raw).await.and_then(|c| {
        c.with_lifetime(SystemTime::now())
            .map_err(ExchangeError::from)
    });
    match result {
        Ok((c, lifetime)) => {
            let detail = format!(
                "{}, role {}, key {}, granted {} ({})",
                match &config.upstream.method {
                    ExchangeMethod::Get =>
                        "GET exchange (the upstream chooses the lifetime)".to_owned(),
                    ExchangeMethod::Post { key, .. } =>
                        format!("POST exchange asking for {}", super::human(key.lifetime)),
                },
                c.role.as_deref().unwrap_or("(not given)"),
                c.access_key_id,
                super::human(lifetime),
                exchanges_per_hour(&config.refresh, lifetime)
            );
            (Check::pass("exchange", detail), Some(c))
        }
        Err(e) => {
            let fix = match &e {
                ExchangeError::AuthRejected { .. } => "register the cluster's OIDC issuer under Workload Federation with this audience, grant the principal from `credagent principal` in an organization access policy, and check that --org-id is that organization",
                ExchangeError::Transport(m) if m.to_lowercase().contains("certificate") => "the upstream's certificate is not trusted: pass --ca-file for a private CA, or check for a TLS-intercepting proxy",
                ExchangeError::Transport(_) | ExchangeError::Timeout(_) => "check egress to the upstream, proxies and DNS",
                ExchangeError::Throttled { .. } => "the upstream is throttling; retry later",
                ExchangeError::Proxy(_) => "see the proxy check above",
                ExchangeError::KeyRequestRefused => "ask for a lifetime the upstream grants (--key-lifetime 15m to 12h) and check --key-attribute",
                ExchangeError::PostNotOffered { .. } => "this upstream does not offer the POST exchange: check --exchange-url, or remove --key-lifetime to use the GET exchange",
                _ => "retry later; if it persists, check --exchange-url / --org-id",
            };
            (Check::fail("exchange", e.to_string(), fix), None)
        }
    }
}

/// What a key of `lifetime` costs at `policy`'s schedule, e.g. "refreshed
/// after 30m: 2.0 exchanges per hour".
fn exchanges_per_hour(policy: &RefreshPolicy, lifetime: Duration) -> String {
    let after = policy.refresh_after(lifetime, 0.0);
    format!(
        "refreshed after {}: {:.1} exchanges per hour",
        super::human(after),
        3600.0 / after.as_secs_f64().max(1.0)
    )
}

fn clock(token: Option<&Token>, server_date: Option<SystemTime>) -> Check {
    let now = SystemTime::now();
    if let Some(date) = server_date {
        let skew = now.duration_since(date).unwrap_or_else(|e| e.duration());
        if skew > MAX_SKEW {
            return Check::fail(
                "clock",
                format!(
                    "local clock differs from the upstream's by {}",
                    super::human(skew)
                ),
                "synchronise the node's clock (NTP/chrony)",
            );
        }
        return Check::pass(
            "clock",
            format!(
                "within {} of the upstream's",
                super::human(skew.max(Duration::from_secs(1)))
            ),
        );
    }
    if let Some(iat) = token.and_then(|t| t.claims.iat) {
        let now_s = unix_seconds(now) as i64;
        if iat - now_s > MAX_SKEW.as_secs() as i64 {
            return Check::fail(
                "clock",
                "the token was issued in the future by this clock",
                "synchronise the node's clock (NTP/chrony)",
            );
        }
        return Check::pass("clock", "consistent with the token's issue time");
    }
    Check::fail(
        "clock",
        "nothing to compare with (no token, no upstream answer)",
        "fix the checks above first",
    )
}

async fn local_agent(config: &SidecarConfig) -> Vec<Check> {
    let mut admin = config.admin_listen;
    if admin.ip().is_unspecified() {
        admin.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = Duration::from_secs(3);
    let readyz: Uri = match format!("http://{admin}/readyz").parse() {
        Ok(u) => u,
        Err(_) => {
            return vec![Check::fail(
                "local agent",
                "bad --admin-listen",
                "fix --admin-listen",
            )]
        }
    };
    let ready = match super::local_get(&readyz, None, timeout).await {
        Ok((s, _)) if s.is_success() => Check::pass("local agent", format!("{readyz} is ready")),
        Ok((s, _)) => return vec![Check::fail("local agent", format!("{readyz} answered HTTP {}", s.as_u16()), "the agent runs but holds no valid credentials: see its logs (the exchange check above usually says why)")],
        Err(e) => return vec![Check::fail("local agent", format!("no agent at {readyz}: {e}"), "start the credagent sidecar (or run doctor with the same --admin-listen)")],
    };
    let mut out = vec![ready];
    let url: Uri = match format!("http://{}/v1/credentials", config.listen).parse() {
        Ok(u) => u,
        Err(_) => return out,
    };
    let auth = crate::fsread::read_async(&config.auth_token_file, AUTH_TOKEN_FILE).await;
    let auth = auth.as_ref().map(|b| String::from_utf8_lossy(b));
    let served = match auth {
        Err(e) => Check::fail("credentials served", e.to_string(), "mount the auth token emptyDir in this container"),
        Ok(auth) => match super::local_get(&url, Some(&auth), timeout).await {
            Ok((s, _)) if s.is_success() => Check::pass("credentials served", format!("{url} answers with the auth token")),
            Ok((s, _)) => Check::fail("credentials served", format!("{url} answered HTTP {}", s.as_u16()), "check that AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE names the agent's --auth-token-file"),
            Err(e) => Check::fail("credentials served", format!("{url}: {e}"), "check --listen"),
        },
    };
    out.push(served);
    out
}
