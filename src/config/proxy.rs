//! Which proxy outbound connections use: `--proxy`, `--no-proxy`, or the
//! variables every HTTP client honours (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `NO_PROXY`, upper case first, then lower case, as Go reads them).
//!
//! The environment is read once, here, through a function that is given
//! the variables ([`ProxySettings::from_env_vars`]), so tests inject it.
//! Only `http://` proxies are accepted (the tunnel to an `https` destination
//! is TLS end to end, so TLS to the proxy adds nothing for the credentials);
//! `ALL_PROXY` is not read (Go does not; curl's SOCKS proxies there are not
//! supported). A proxy URL may carry `user:password@` (percent-encoded),
//! sent as `Proxy-Authorization: Basic`; nothing here prints it.

use http::Uri;

use super::error::ConfigError;
use super::flag::flag_value;

/// The variables read for `https://` destinations, in order.
pub const HTTPS_PROXY_VARS: [&str; 2] = ["HTTPS_PROXY", "https_proxy"];
/// The variables read for `http://` destinations, in order.
pub const HTTP_PROXY_VARS: [&str; 2] = ["HTTP_PROXY", "http_proxy"];
/// The variables naming destinations reached directly, in order.
pub const NO_PROXY_VARS: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// Where a proxy setting came from, for logs and `credagent doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyOrigin {
    /// `--proxy` (or `CREDAGENT_PROXY`).
    Flag,
    /// The environment variable of this name.
    Env(&'static str),
}

/// A validated `http://[user[:password]@]host[:port]` proxy URL. Its Debug
/// and [`redacted`](Self::redacted) form leave out the userinfo.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// The URL with its userinfo, `http://` made explicit.
    full: String,
    /// `http://host[:port]`.
    redacted: String,
    has_credentials: bool,
    origin: ProxyOrigin,
}

/// The proxy configuration of every outbound client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// The proxy for `https://` destinations (through a `CONNECT` tunnel).
    pub https: Option<ProxyUrl>,
    /// The proxy for `http://` destinations.
    pub http: Option<ProxyUrl>,
    /// The `NO_PROXY` list as given (host names, domain suffixes, IP
    /// addresses, CIDR ranges, `host:port`, `*`), and the variable it came from.
    pub no_proxy: Option<(String, &'static str)>,
    /// `--no-proxy`: the environment was ignored on purpose.
    pub disabled: bool,
}

// === impl ProxyOrigin ===

impl std::fmt::Display for ProxyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flag => f.write_str("--proxy"),
            Self::Env(name) => f.write_str(name),
        }
    }
}

impl ProxyOrigin {
    /// The flag or variable name, for configuration errors.
    fn name(self) -> &'static str {
        match self {
            Self::Flag => "--proxy",
            Self::Env(name) => name,
        }
    }
}

// === impl ProxyUrl ===

impl ProxyUrl {
    /// Validates `raw` (from `origin`). A URL without a scheme is taken as
    /// `http://`, as curl and Go do. The error never repeats the value.
    pub fn parse(raw: &str, origin: ProxyOrigin) -> Result<Self, ConfigError> {
        let flag = origin.name();
        let raw = raw.trim();
        let full = if raw.contains("://") {
            raw.to_owned()
        } else {
            format!("http://{raw}")
        };
        let uri: Uri = full.parse().map_err(|e: http::uri::InvalidUri| {
            ConfigError::new(flag, format!("not a proxy URL ({e})"))
        })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(ConfigError::new(
                    flag,
                    "TLS to the proxy (https://) is not supported; use http:// (the tunnel to the upstream is TLS end to end)",
                ))
            }
            Some(s) if s.starts_with("socks") => {
                return Err(ConfigError::new(
                    flag,
                    "SOCKS proxies are not supported; use an http:// proxy",
                ))
            }
            _ => return Err(ConfigError::new(flag, "the scheme must be http://")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| ConfigError::new(flag, "the proxy URL has no host"))?;
        let (userinfo, host_port) = match authority.as_str().rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority.as_str()),
        };
        if uri.host().is_none_or(str::is_empty) {
            return Err(ConfigError::new(flag, "the proxy URL has no host"));
        }
        let after_host = host_port
            .rfind(']')
            .map_or(host_port, |i| &host_port[i + 1..]);
        if let Some((_, port)) = after_host.rsplit_once(':') {
            if !port.parse::<u16>().is_ok_and(|p| p > 0) {
                return Err(ConfigError::new(
                    flag,
                    "the proxy's port must be a number from 1 to 65535",
                ));
            }
        }
        let has_path = !matches!(uri.path(), "" | "/");
        if has_path || uri.query().is_some() {
            return Err(ConfigError::new(
                flag,
                "a proxy URL names only scheme, host and port (no path)",
            ));
        }
        Ok(Self {
            redacted: format!("http://{host_port}"),
            has_credentials: userinfo.is_some(),
            full: format!("http://{}", authority.as_str()),
            origin,
        })
    }

    /// `http://host[:port]`, without the userinfo: safe to print.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The URL with its userinfo: only for building the proxy connector.
    pub fn expose(&self) -> &str {
        &self.full
    }

    /// Whether the URL carries proxy credentials.
    pub fn has_credentials(&self) -> bool {
        self.has_credentials
    }

    /// Where it came from.
    pub fn origin(&self) -> ProxyOrigin {
        self.origin
    }
}

/// `--proxy`: the reason alone (the flag's value parser names the flag).
impl std::str::FromStr for ProxyUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        Self::parse(raw, ProxyOrigin::Flag).map_err(|e| e.reason)
    }
}

flag_value!(ProxyUrl);

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (from {}", self.redacted, self.origin)?;
        if self.has_credentials {
            f.write_str(", with credentials")?;
        }
        f.write_str(")")
    }
}

// === impl ProxySettings ===

impl ProxySettings {
    /// No proxy: every connection is direct.
    pub fn none() -> Self {
        Self::default()
    }

    /// What the environment says, through `get` (e.g.
    /// `|name| std::env::var(name).ok()`). An empty variable counts as unset.
    pub fn from_env_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let first = |names: [&'static str; 2]| {
            names
                .into_iter()
                .find_map(|n| get(n).filter(|v| !v.trim().is_empty()).map(|v| (v, n)))
        };
        let proxy = |names| {
            first(names)
                .map(|(v, n)| ProxyUrl::parse(&v, ProxyOrigin::Env(n)))
                .transpose()
        };
        Ok(Self {
            https: proxy(HTTPS_PROXY_VARS)?,
            http: proxy(HTTP_PROXY_VARS)?,
            no_proxy: first(NO_PROXY_VARS),
            disabled: false,
        })
    }

    /// `--proxy URL` for every destination, with the environment's `NO_PROXY`.
    pub fn explicit(
        proxy: &ProxyUrl,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            https: Some(proxy.clone()),
            http: Some(proxy.clone()),
            no_proxy: Self::from_env_vars(|n| {
                NO_PROXY_VARS.contains(&n).then(|| get(n)).flatten()
            })?
            .no_proxy,
            disabled: false,
        })
    }

    /// Whether any destination can go through a proxy.
    pub fn is_none(&self) -> bool {
        self.https.is_none() && self.http.is_none()
    }

    /// What the proxy flags say over the environment `get`: `--no-proxy`
    /// (`disabled`) ignores it, `--proxy` wins over its proxies (the two
    /// flags together are refused before this, by the subcommand's rules).
    pub fn resolve(
        proxy: Option<&ProxyUrl>,
        disabled: bool,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        match (proxy, disabled) {
            (_, true) => Ok(Self {
                disabled: true,
                ..Self::none()
            }),
            (Some(url), false) => Self::explicit(url, get),
            (None, false) => Self::from_env_vars(get),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn upper_case_first_and_empty_is_unset() {
        let s = ProxySettings::from_env_vars(env(&[
            ("HTTPS_PROXY", "http://upper:3128"),
            ("https_proxy", "http://lower:3128"),
            ("HTTP_PROXY", ""),
            ("http_proxy", "lower-http:8080"),
            ("no_proxy", ".svc,10.0.0.0/8"),
        ]))
        .unwrap();
        let https = s.https.unwrap();
        assert_eq!(https.redacted(), "http://upper:3128");
        assert_eq!(https.origin(), ProxyOrigin::Env("HTTPS_PROXY"));
        let http = s.http.unwrap();
        assert_eq!(http.redacted(), "http://lower-http:8080");
        assert_eq!(http.origin(), ProxyOrigin::Env("http_proxy"));
        assert_eq!(s.no_proxy, Some((".svc,10.0.0.0/8".into(), "no_proxy")));
        assert!(ProxySettings::from_env_vars(env(&[])).unwrap().is_none());
    }

    #[test]
    fn credentials_are_kept_but_never_shown() {
        let p = ProxyUrl::parse("http://us%40er:pa%3Ass@proxy:3128/", ProxyOrigin::Flag).unwrap();
        assert_eq!(p.redacted(), "http://proxy:3128");
        assert_eq!(p.expose(), "http://us%40er:pa%3Ass@proxy:3128");
        assert!(p.has_credentials());
        let debug = format!("{p:?}");
        assert_eq!(debug, "http://proxy:3128 (from --proxy, with credentials)");
        assert!(!debug.contains("pa%3Ass"), "{debug}");
    }

    #[test]
    fn only_http_proxies_and_errors_do_not_repeat_the_value() {
        for (raw, why) in [
            ("https://user:hunter2@proxy:3128", "TLS to the proxy"),
            ("socks5://user:hunter2@proxy:1080", "SOCKS"),
            ("ftp://user:hunter2@proxy", "scheme"),
            ("http://user:hunter2@proxy:3128/path", "no path"),
            ("http://user:hunter2@:3128", "no host"),
            ("http://user:hunter2@proxy:99999", "port"),
            ("http://user:hunter2@proxy:", "port"),
            ("http://user:hunter2@proxy:x", "port"),
        ] {
            let e = ProxyUrl::parse(raw, ProxyOrigin::Env("HTTPS_PROXY")).unwrap_err();
            assert_eq!(e.flag, "HTTPS_PROXY", "{raw}");
            assert!(e.to_string().contains(why), "{raw}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{raw}: {e}");
        }
        assert_eq!(
            ProxyUrl::parse("proxy.corp:3128", ProxyOrigin::Flag)
                .unwrap()
                .expose(),
            "http://proxy.corp:3128"
        );
    }

    #[test]
    fn flags_win_over_the_environment() {
        let vars = env(&[
            ("HTTPS_PROXY", "http://from-env:3128"),
            ("NO_PROXY", "internal.example"),
        ]);
        let flag: ProxyUrl = "http://flag:8080".parse().unwrap();
        let s = ProxySettings::resolve(Some(&flag), false, &vars).unwrap();
        assert_eq!(s.https.as_ref().unwrap().redacted(), "http://flag:8080");
        assert_eq!(s.http.as_ref().unwrap().origin(), ProxyOrigin::Flag);
        assert_eq!(s.no_proxy, Some(("internal.example".into(), "NO_PROXY")));
        let s = ProxySettings::resolve(None, true, &vars).unwrap();
        assert!(s.is_none() && s.disabled);
        let s = ProxySettings::resolve(None, false, &vars).unwrap();
        assert_eq!(s.https.unwrap().origin(), ProxyOrigin::Env("HTTPS_PROXY"));
        let e = "https://u:hunter2@proxy".parse::<ProxyUrl>().unwrap_err();
        assert!(
            e.starts_with("TLS to the proxy") && !e.contains("hunter2"),
            "{e}"
        );
    }
}
