//! `NO_PROXY` and proxy selection, against what curl and Go's
//! `golang.org/x/net/http/httpproxy` do.

use super::*;
use crate::config::ProxyOrigin;

fn routes(https: Option<&str>, http: Option<&str>, no_proxy: &str) -> Routes {
    let url = |u: &str, var| ProxyUrl::parse(u, ProxyOrigin::Env(var)).unwrap();
    Routes::new(&ProxySettings {
        https: https.map(|u| url(u, "HTTPS_PROXY")),
        http: http.map(|u| url(u, "HTTP_PROXY")),
        no_proxy: (!no_proxy.is_empty()).then(|| (no_proxy.to_owned(), "NO_PROXY")),
        disabled: false,
    })
}

fn way(r: &Routes, url: &str) -> String {
    match r.route(&url.parse().unwrap()) {
        Route::Direct(why) => format!("direct {why:?}"),
        Route::Proxy(via) => format!("via {}", via.proxy()),
    }
}

/// Checks that every URL in `proxied` goes through the proxy and every one
/// in `direct` bypasses it because of `NO_PROXY`.
fn check(no_proxy: &str, proxied: &[&str], direct: &[&str]) {
    let r = routes(Some("http://proxy:3128"), None, no_proxy);
    for url in proxied {
        assert_eq!(
            way(&r, url),
            "via http://proxy:3128",
            "NO_PROXY={no_proxy:?} {url}"
        );
    }
    for url in direct {
        assert_eq!(
            way(&r, url),
            "direct Excluded",
            "NO_PROXY={no_proxy:?} {url}"
        );
    }
}

#[test]
fn the_scheme_picks_the_proxy() {
    let r = routes(Some("http://s:3128"), Some("http://p:8080"), "");
    assert_eq!(way(&r, "https://api.example/x"), "via http://s:3128");
    assert_eq!(way(&r, "http://api.example/x"), "via http://p:8080");
    let only_https = routes(Some("http://s:3128"), None, "");
    assert_eq!(way(&only_https, "http://api.example/x"), "direct NoProxy");
    assert_eq!(way(&routes(None, None, ""), "https://a/"), "direct NoProxy");
}

#[test]
fn loopback_is_always_direct() {
    // Go's rule: localhost and loopback addresses never go to a proxy.
    let r = routes(Some("http://proxy:3128"), Some("http://proxy:3128"), "");
    for url in [
        "https://localhost:8443/",
        "http://LOCALHOST/",
        "https://127.0.0.1/",
        "http://127.3.4.5:8080/",
        "https://[::1]:8443/",
    ] {
        assert_eq!(way(&r, url), "direct Loopback", "{url}");
    }
    assert_eq!(
        way(&r, "https://localhost.example/"),
        "via http://proxy:3128"
    );
}

#[test]
fn host_names_and_domain_suffixes() {
    // curl and Go: `example.com` is the name and every subdomain, not a
    // name that merely ends the same way; case does not matter.
    check(
        "example.com",
        &[
            "https://notexample.com/",
            "https://example.com.evil/",
            "https://example.org/",
        ],
        &[
            "https://example.com/",
            "https://EXAMPLE.com/",
            "https://api.example.com/",
            "https://a.b.example.com:8443/",
        ],
    );
    // A leading dot: subdomains, and (curl; Go differs) the name itself.
    check(
        ".example.com",
        &["https://notexample.com/"],
        &["https://api.example.com/", "https://example.com/"],
    );
    // `*.example.com` is `.example.com` (Go strips the `*`).
    check(
        "*.example.com",
        &["https://example.org/"],
        &["https://api.example.com/"],
    );
    // Kubernetes' usual list.
    check(
        "localhost, .svc,.cluster.local ,10.96.0.1",
        &["https://api.coreweave.com/"],
        &[
            "https://kubernetes.default.svc/",
            "https://kubernetes.default.svc.cluster.local/",
            "https://10.96.0.1/",
        ],
    );
}

#[test]
fn addresses_and_cidr_ranges() {
    check(
        "10.0.0.0/8, 192.168.1.7, fd00::/8, [2001:db8::1]",
        &[
            "https://11.0.0.1/",
            "https://192.168.1.8/",
            "https://[fe80::1]/",
            "https://[2001:db8::2]/",
        ],
        &[
            "https://10.1.2.3/",
            "https://10.255.255.255:6443/",
            "https://192.168.1.7/",
            "https://[fd00:ec2::23]/",
            "https://[2001:db8::1]/",
        ],
    );
    // An address entry matches the address, not a name that resolves to it.
    check(
        "10.0.0.1",
        &["https://ten.example/"],
        &["https://10.0.0.1/"],
    );
}

#[test]
fn entries_with_a_port_bypass_only_that_port() {
    // Go: `host:port` matches that port alone; curl ignores such entries.
    check(
        "example.com:8443, 10.0.0.1:6443, [fd00::1]:443",
        &[
            "https://example.com/",
            "https://example.com:9443/",
            "https://10.0.0.1/",
            "https://[fd00::1]:8443/",
        ],
        &[
            "https://example.com:8443/",
            "https://api.example.com:8443/",
            "https://10.0.0.1:6443/",
            "https://[fd00::1]/",
        ],
    );
}

#[test]
fn a_star_bypasses_everything() {
    // curl: `*` matches all hosts; Go: `*` disables the proxy. hyper-util's
    // matcher alone would still proxy IP addresses.
    check(
        "*",
        &[],
        &[
            "https://api.example/",
            "https://10.0.0.1/",
            "https://[fd00::1]/",
        ],
    );
    check("other.example,*", &[], &["https://api.example/"]);
    // Only a whole `*` entry is the wildcard.
    check(
        "*example.org",
        &["https://api.example/"],
        &["https://www.example.org/"],
    );
}

#[test]
fn junk_entries_match_nothing() {
    check(
        " , ,example.com:notaport,[::1,:443",
        &["https://example.com/", "https://api.example/"],
        &[],
    );
}

#[test]
fn disabled_and_credentials_stay_out_of_debug() {
    let r = Routes::new(&ProxySettings {
        disabled: true,
        ..ProxySettings::none()
    });
    assert_eq!(way(&r, "https://api.example/"), "direct Disabled");
    let r = Routes::new(&ProxySettings {
        https: Some(ProxyUrl::parse("http://user:hunter2@proxy:3128", ProxyOrigin::Flag).unwrap()),
        ..ProxySettings::none()
    });
    let Route::Proxy(via) = r.route(&"https://api.example/".parse().unwrap()) else {
        panic!("proxied");
    };
    assert_eq!(format!("{via:?}"), "Via(http://proxy:3128 from --proxy)");
    assert_eq!(via.uri().to_string(), "http://proxy:3128/");
    let auth = via.auth().unwrap();
    assert!(auth.is_sensitive());
    // base64("user:hunter2")
    assert_eq!(auth, "Basic dXNlcjpodW50ZXIy");
}
