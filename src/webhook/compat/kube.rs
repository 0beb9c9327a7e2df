//! A minimal in-cluster Kubernetes API client: just the ServiceAccount
//! reads CoreWeave compatibility needs (GET one, LIST all, WATCH).
//!
//! Not the `kube` and `k8s-openapi` crates: those bring a typed copy of the
//! whole API and a second HTTP stack into a binary that needs three GETs.
//! This one goes through [`crate::outbound`] like every other call out of
//! the agent, and reads only the fields it uses.
//!
//! In the cluster: the API server from `KUBERNETES_SERVICE_HOST`/`_PORT`,
//! the CA from `…/serviceaccount/ca.crt`, and the bearer token from
//! `…/serviceaccount/token`, read again for every request (kubelet rotates
//! it; it is never logged).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::kube_wire::{parse_account, parse_list, AccountState, KubeError, ListPage, WatchStream};
use crate::config::{OutboundConfig, ProxySettings};
use crate::fsread::{self, Limit};
use crate::outbound::{read_body, Direct, Outbound, Route};
use crate::secret::Secret;
use crate::token::MAX_TOKEN_BYTES;

/// Where kubelet mounts a Pod's API credentials.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Time allowed to open a connection to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest answer read for one object or one page of a list.
const MAX_BODY: usize = 32 * 1024 * 1024;
/// ServiceAccounts per page of the list.
const PAGE_SIZE: usize = 500;
/// The bearer token file's cap: a projected token's.
const SERVICE_ACCOUNT_TOKEN: Limit = Limit {
    what: "a ServiceAccount token",
    max: MAX_TOKEN_BYTES as u64,
};

/// Where the API server is and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeConfig {
    /// `https://HOST:PORT`, no path.
    pub api: Uri,
    /// The bearer token file (re-read for every request).
    pub token_file: PathBuf,
    /// The API server's CA bundle, PEM.
    pub ca_file: PathBuf,
    /// The namespace this Pod runs in, if the file says.
    pub namespace: Option<String>,
    /// The proxy settings for the API server (`HTTPS_PROXY`, `NO_PROXY`).
    pub proxy: ProxySettings,
}

// === impl KubeConfig ===

impl KubeConfig {
    /// The Pod's own configuration: the environment kubelet sets and the
    /// files it mounts at [`SERVICE_ACCOUNT_DIR`].
    pub fn in_cluster() -> Result<Self, KubeError> {
        Self::from_env(
            |name| std::env::var(name).ok(),
            Path::new(SERVICE_ACCOUNT_DIR),
        )
    }

    /// [`KubeConfig::in_cluster`] with the environment read through `get`:
    /// `KUBERNETES_SERVICE_HOST`/`_PORT`, and the proxy variables every
    /// outbound call honours (the API server's address belongs in
    /// `NO_PROXY` where a proxy is set).
    pub fn from_env(get: impl Fn(&str) -> Option<String>, dir: &Path) -> Result<Self, KubeError> {
        let proxy =
            ProxySettings::from_env_vars(&get).map_err(|e| KubeError::Config(e.to_string()))?;
        Ok(Self {
            proxy,
            ..Self::from_parts(
                get("KUBERNETES_SERVICE_HOST"),
                get("KUBERNETES_SERVICE_PORT"),
                dir,
            )?
        })
    }

    /// The configuration for the API server at `host`:`port` with the
    /// credentials in `dir` (`token`, `ca.crt`, `namespace`), reached
    /// directly.
    pub fn from_parts(
        host: Option<String>,
        port: Option<String>,
        dir: &Path,
    ) -> Result<Self, KubeError> {
        let host = host
            .filter(|h| !h.is_empty())
            .ok_or_else(|| KubeError::Config("KUBERNETES_SERVICE_HOST is not set".into()))?;
        let port = port.unwrap_or_else(|| "443".into());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let api = format!("https://{host}:{port}")
            .parse::<Uri>()
            .map_err(|e| {
                KubeError::Config(format!("KUBERNETES_SERVICE_HOST/PORT make no URL: {e}"))
            })?;
        let namespace = fsread::read(&dir.join("namespace"), fsread::SMALL_TEXT)
            .ok()
            .and_then(|b| std::str::from_utf8(&b).ok().map(|s| s.trim().to_owned()))
            .filter(|s| !s.is_empty());
        Ok(Self {
            api,
            token_file: dir.join("token"),
            ca_file: dir.join("ca.crt"),
            namespace,
            proxy: ProxySettings::none(),
        })
    }
}

/// The client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct KubeClient {
    api: String,
    token_file: PathBuf,
    outbound: Outbound,
}

// === impl KubeClient ===

impl KubeClient {
    /// A client for `config`, trusting its CA file.
    pub fn new(config: &KubeConfig) -> Result<Self, KubeError> {
        let pem = fsread::read(&config.ca_file, fsread::PEM)
            .map_err(|e| KubeError::Config(e.to_string()))?;
        let roots = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                KubeError::Config(format!("bad PEM in {}: {e}", config.ca_file.display()))
            })?;
        if roots.is_empty() {
            return Err(KubeError::Config(format!(
                "no certificate in {}",
                config.ca_file.display()
            )));
        }
        let outbound = Outbound::new(&OutboundConfig {
            connect_timeout: CONNECT_TIMEOUT,
            extra_roots: roots,
            proxy: config.proxy.clone(),
        })
        .map_err(|e| KubeError::Config(e.to_string()))?;
        Ok(Self {
            api: config.api.to_string().trim_end_matches('/').to_owned(),
            token_file: config.token_file.clone(),
            outbound,
        })
    }

    /// How requests to the API server leave: directly or through a proxy.
    pub fn route(&self) -> Route {
        match self.api.parse::<Uri>() {
            Ok(uri) => self.outbound.route(&uri),
            Err(_) => Route::Direct(Direct::NoProxy),
        }
    }

    /// Reads one ServiceAccount: `Ok(None)` if it does not exist.
    pub async fn get_service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<AccountState>, KubeError> {
        if !is_name(namespace) || !is_name(name) {
            return Ok(None);
        }
        let path = format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}");
        let rsp = self.get(&path).await?;
        match rsp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            s => return Err(status(s, "GET serviceaccount")),
        }
        let body = read_body(rsp, MAX_BODY)
            .await
            .map_err(|e| KubeError::Transport(e.to_string()))?;
        parse_account(&body).map(Some)
    }

    /// Reads one page of every ServiceAccount in the cluster.
    pub async fn list_page(&self, continue_token: Option<&str>) -> Result<ListPage, KubeError> {
        let mut path = format!("/api/v1/serviceaccounts?limit={PAGE_SIZE}");
        if let Some(token) = continue_token {
            path.push_str("&continue=");
            path.push_str(&percent_encode(token));
        }
        let rsp = self.get(&path).await?;
        match rsp.status() {
            StatusCode::OK => {}
            StatusCode::GONE => return Err(KubeError::Gone),
            s => return Err(status(s, "LIST serviceaccounts")),
        }
        let body = read_body(rsp, MAX_BODY)
            .await
            .map_err(|e| KubeError::Transport(e.to_string()))?;
        parse_list(&body)
    }

    /// Starts watching every ServiceAccount from `resource_version`, with
    /// bookmarks; the server ends the stream after `timeout_secs`.
    pub async fn watch(
        &self,
        resource_version: &str,
        timeout_secs: u64,
    ) -> Result<WatchStream, KubeError> {
        let path = format!(
            "/api/v1/serviceaccounts?watch=true&allowWatchBookmarks=true&timeoutSeconds={timeout_secs}&resourceVersion={}",
            percent_encode(resource_version)
        );
        let rsp = self.get(&path).await?;
        match rsp.status() {
            StatusCode::OK => Ok(WatchStream::new(rsp.into_body())),
            StatusCode::GONE => Err(KubeError::Gone),
            s => Err(status(s, "WATCH serviceaccounts")),
        }
    }

    async fn get(&self, path: &str) -> Result<http::Response<Incoming>, KubeError> {
        let token = fsread::read_async(&self.token_file, SERVICE_ACCOUNT_TOKEN)
            .await
            .map_err(|e| KubeError::Token(e.to_string()))?;
        let token = std::str::from_utf8(&token)
            .map_err(|_| KubeError::Token(format!("{}: not UTF-8", self.token_file.display())))?;
        let token = Secret::new(token.trim());
        if token.is_empty() {
            return Err(KubeError::Token(format!(
                "{}: empty",
                self.token_file.display()
            )));
        }
        let mut auth =
            HeaderValue::try_from(format!("Bearer {}", token.expose())).map_err(|_| {
                KubeError::Token(format!("{}: not a header value", self.token_file.display()))
            })?;
        auth.set_sensitive(true);
        let req = Request::get(format!("{}{path}", self.api))
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json")
            .body(Full::<Bytes>::default())
            .map_err(|e| KubeError::Transport(e.to_string()))?;
        self.outbound
            .send(req)
            .await
            .map_err(|e| KubeError::Transport(e.to_string()))
    }
}

/// A watch's event stream: newline-delimited JSON.
fn status(s: StatusCode, what: &'static str) -> KubeError {
    KubeError::Status {
        status: s.as_u16(),
        what,
    }
}

/// A namespace or ServiceAccount name: an RFC 1123 subdomain.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_cluster_configuration() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("namespace"), "credagent-system\n").unwrap();
        let c = KubeConfig::from_parts(Some("10.0.0.1".into()), Some("6443".into()), dir.path())
            .unwrap();
        assert_eq!(c.api.to_string(), "https://10.0.0.1:6443/");
        assert_eq!(c.token_file, dir.path().join("token"));
        assert_eq!(c.namespace.as_deref(), Some("credagent-system"));
        let v6 = KubeConfig::from_parts(Some("fd00::1".into()), None, dir.path()).unwrap();
        assert_eq!(v6.api.host(), Some("[fd00::1]"));
        assert_eq!(v6.api.port_u16(), Some(443));
        assert!(matches!(
            KubeConfig::from_parts(None, None, dir.path()),
            Err(KubeError::Config(_))
        ));
    }

    /// The API server is reached as every other destination: through
    /// `HTTPS_PROXY` unless `NO_PROXY` names it.
    #[test]
    fn the_api_server_follows_the_proxy_variables() {
        let dir = tempfile::tempdir().unwrap();
        let ca = credagent_testkit::testing::test_pki().ca_pem;
        std::fs::write(dir.path().join("ca.crt"), ca).unwrap();
        let config = |extra: &[(&str, &str)]| {
            let mut vars = vec![
                ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
                ("KUBERNETES_SERVICE_PORT", "443"),
            ];
            vars.extend_from_slice(extra);
            KubeConfig::from_env(
                |name| {
                    vars.iter()
                        .find(|(k, _)| *k == name)
                        .map(|(_, v)| (*v).to_owned())
                },
                dir.path(),
            )
        };
        let route =
            |extra: &[(&str, &str)]| KubeClient::new(&config(extra).unwrap()).unwrap().route();

        assert!(matches!(route(&[]), Route::Direct(Direct::NoProxy)));
        match route(&[("HTTPS_PROXY", "http://user:pw@proxy.corp:3128")]) {
            Route::Proxy(via) => assert_eq!(via.proxy(), "http://proxy.corp:3128"),
            other => panic!("{other:?}"),
        }
        let excluded = [
            ("HTTPS_PROXY", "http://proxy.corp:3128"),
            ("NO_PROXY", ".svc,10.96.0.0/12"),
        ];
        assert!(matches!(route(&excluded), Route::Direct(Direct::Excluded)));
        let err = config(&[("HTTPS_PROXY", "socks5://proxy.corp:1080")]).unwrap_err();
        assert!(err.to_string().contains("HTTPS_PROXY"), "{err}");
    }

    #[test]
    fn encoding_and_names() {
        assert_eq!(percent_encode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
        assert!(is_name("my-ns.x") && !is_name("a/b") && !is_name(""));
    }
}
