//! The exchange: a projected token in, temporary credentials (or a classified
//! error) out.
//!
//! This is the only code that talks to the upstream. The [`Exchange`] trait
//! lets tests and the demo plug in a stand-in; [`HttpExchanger`] is the real
//! HTTPS client.
//!
//! The upstream (CoreWeave AI Object Storage) is called as
//! `GET <url>` with the raw JWT as the whole `Authorization` value and
//! answers, in PascalCase:
//!
//! ```json
//! {"AccessKeyId": "...", "SecretAccessKey": "...", "Token": "",
//!  "Expiration": "2026-03-14T21:44:43Z", "attributes": {"cw-role": "..."}}
//! ```
//!
//! - `client`: the [`Exchange`] trait.
//! - `error`: [`ExchangeError`] and what each failure means for a retry.
//! - `http`: [`HttpExchanger`], the HTTPS client.
//! - `parse`: the upstream's answer.

mod client;
mod error;
pub mod http;
mod parse;

pub use self::client::{BoxFuture, Exchange};
pub use self::error::{status_class, Disposition, ExchangeError};
pub use self::http::HttpExchanger;
pub use self::parse::{parse_credentials, MAX_RESPONSE_BYTES};
