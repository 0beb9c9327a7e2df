//! The seam every upstream call goes through: a token in, credentials or a
//! classified error out.

use std::future::Future;
use std::pin::Pin;

use super::error::ExchangeError;
use crate::credentials::Credentials;
use crate::secret::Secret;

/// A boxed future, so that [`Exchange`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Exchanges a token for credentials. The HTTPS client implements it; tests
/// and the demo plug in stand-ins.
pub trait Exchange: Send + Sync + 'static {
    /// One exchange. Implementations bound it in time.
    fn exchange<'a>(
        &'a self,
        token: &'a Secret,
    ) -> BoxFuture<'a, Result<Credentials, ExchangeError>>;

    /// Which of the upstream's exchanges this is (`get` or `post`), for the
    /// audit line and `credagent_keys_issued_total`.
    fn method(&self) -> &'static str {
        "get"
    }
}
