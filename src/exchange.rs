//! The exchange: a projected token in, temporary credentials (or a classified
//! error) out.
//!
//! This is the only code that talks to the upstream. The [`Exchange`] trait
//! lets tests and the demo plug in a stand-in; [`HttpExchanger`] is the real
//! HTTPS client.
//!
//! The upstream (CoreWeave AI Object Storage) offers two exchanges. By
//! default the agent calls the GET ("Create access key from container
//! credentials"): `GET <url>` with the raw JWT as the whole `Authorization`
//! value; the upstream chooses the key's lifetime and answers, in
//! PascalCase:
//!
//! ```json
//! {"AccessKeyId": "...", "SecretAccessKey": "...", "Token": "",
//!  "Expiration": "2026-03-14T21:44:43Z", "attributes": {"cw-role": "..."}}
//! ```
//!
//! With `--key-lifetime` it calls the POST ("Create access key from OIDC")
//! instead, asking for that lifetime and tagging the key with the Pod that
//! asked (`post`). Both answers become the same [`Credentials`], served the
//! same way.
//!
//! [`Credentials`]: crate::credentials::Credentials
//!
//! - `client`: the [`Exchange`] trait.
//! - `error`: [`ExchangeError`] and what each failure means for a retry.
//! - `http`: [`HttpExchanger`], the HTTPS client.
//! - `parse`: the GET exchange's answer; `post`: the POST exchange (its
//!   body, the attributes keys are tagged with, its answer).

mod client;
mod error;
pub mod http;
mod parse;
pub mod post;

pub use self::client::{BoxFuture, Exchange};
pub use self::error::{status_class, Disposition, ExchangeError};
pub use self::http::HttpExchanger;
pub use self::parse::{parse_credentials, MAX_RESPONSE_BYTES};
