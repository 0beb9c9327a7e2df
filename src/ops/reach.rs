//! `credagent doctor`'s path to the upstream: which proxy the upstream URL
//! goes through (none, and why, or which one and from where), then either a
//! direct DNS and TCP check or the proxy's `CONNECT` tunnel.

use std::time::Duration;

use http::Uri;

use super::check::Check;
use crate::config::UpstreamConfig;
use crate::outbound::{Direct, Outbound, ProxyError, Route, SendError, Via};

/// The proxy check, then reachability: directly, or through the tunnel.
pub(super) async fn upstream_path(config: &UpstreamConfig) -> Vec<Check> {
    let client = match Outbound::new(&config.outbound()) {
        Ok(c) => c,
        Err(e) => return vec![Check::fail("proxy", e.to_string(), "check --ca-file")],
    };
    let url = &config.url;
    let host = url.host().unwrap_or_default();
    let proxy_vars = if url.scheme_str() == Some("http") {
        "HTTP_PROXY or http_proxy"
    } else {
        "HTTPS_PROXY or https_proxy"
    };
    let direct = |detail: String| Check::pass("proxy", detail);
    match client.route(url) {
        Route::Direct(why) => {
            let proxy = match why {
                Direct::NoProxy => direct(format!("none (no --proxy, {proxy_vars})")),
                Direct::Disabled => direct("none (--no-proxy)".into()),
                Direct::Loopback => direct(format!(
                    "none: {host} is a loopback address, always reached directly"
                )),
                Direct::Excluded => direct(format!(
                    "none: {host} matches {}",
                    config
                        .proxy
                        .no_proxy
                        .as_ref()
                        .map_or("NO_PROXY", |(_, var)| var)
                )),
            };
            vec![proxy, reachability(url, config.connect_timeout).await]
        }
        Route::Proxy(via) => vec![tunnel(&client, &via, url, config.timeout).await],
    }
}

/// Opens the `CONNECT` tunnel to `url` through `via` and closes it.
async fn tunnel(client: &Outbound, via: &Via, url: &Uri, timeout: Duration) -> Check {
    let target = format!(
        "{}:{}",
        url.host().unwrap_or_default(),
        url.port_u16().unwrap_or(443)
    );
    let through = format!("via {} (from {})", via.proxy(), via.origin());
    let result = tokio::time::timeout(timeout, client.open_tunnel(url)).await;
    let (detail, fix) = match result {
        Ok(Ok(())) => {
            return Check::pass("proxy", format!("{through}: tunnel to {target} opens"));
        }
        Err(_) => (
            format!("{through}: no tunnel to {target} within {}s", timeout.as_secs()),
            "the proxy accepted the connection but did not answer the CONNECT: check the proxy's logs".to_owned(),
        ),
        Ok(Err(SendError::Transport(e))) => (
            format!("{through}: {e}"),
            "check the proxy URL and egress to the proxy".to_owned(),
        ),
        Ok(Err(SendError::Proxy(e))) => {
            let fix = match &e {
                ProxyError::Unreachable { origin, .. } => format!(
                    "check the proxy's host and port in {origin}, its DNS, and that NetworkPolicies allow egress to it"
                ),
                ProxyError::Refused { status: Some(401 | 407), .. } => "give the proxy's user and password in its URL: http://USER:PASSWORD@host:port (percent-encoded)".to_owned(),
                ProxyError::Refused { status: Some(403), .. } => format!(
                    "the proxy forbids CONNECT to {target}: have it allowed (CONNECT to port 443), or add the host to NO_PROXY if it is reachable directly"
                ),
                ProxyError::Refused { .. } => "the proxy could not or would not connect to the upstream: check the proxy's logs and its egress".to_owned(),
            };
            (e.to_string(), fix)
        }
    };
    Check::fail("proxy", detail, fix)
}

async fn reachability(url: &Uri, timeout: Duration) -> Check {
    let Some(host) = url.host() else {
        return Check::fail(
            "upstream reachable",
            "the exchange URL has no host",
            "fix --exchange-url",
        );
    };
    let port = url
        .port_u16()
        .unwrap_or(if url.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<std::net::SocketAddr> = match tokio::net::lookup_host((bare, port)).await {
        Ok(a) => a.collect(),
        Err(e) => {
            return Check::fail(
                "upstream reachable",
                format!("cannot resolve {host}: {e}"),
                "check the Pod's DNS (dnsPolicy) and egress",
            )
        }
    };
    let Some(first) = addrs.first().copied() else {
        return Check::fail(
            "upstream reachable",
            format!("{host} resolves to no address"),
            "check the Pod's DNS",
        );
    };
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(first)).await {
        Ok(Ok(_)) => Check::pass(
            "upstream reachable",
            format!("{host} resolves to {}, TCP connect ok", first.ip()),
        ),
        Ok(Err(e)) => Check::fail(
            "upstream reachable",
            format!("cannot connect to {first}: {e}"),
            "check NetworkPolicies, egress firewalls and proxies",
        ),
        Err(_) => Check::fail(
            "upstream reachable",
            format!("no TCP connection to {first} within {}s", timeout.as_secs()),
            "check NetworkPolicies, egress firewalls and proxies",
        ),
    }
}
