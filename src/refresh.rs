//! Refreshing credentials ahead of their expiry: one engine for every
//! identity in both modes.
//!
//! - `schedule`: the pure schedule ([`RefreshPolicy`](crate::config::RefreshPolicy)'s
//!   refresh point, backoff, serve-until), tested without clocks.
//! - `engine`: [`Engine`], one exchange and what it means for the next one,
//!   counted in the refresh metrics.
//! - `refresher`: [`Refresher`], the sidecar's task that follows the
//!   projected token and is the one writer of its store. Node mode drives
//!   the same engine from `node::fill`.

mod engine;
mod refresher;
mod schedule;

pub use self::engine::{Attempts, Engine, Failure, Fresh, Jitter, Outcome};
pub use self::refresher::{Refresher, TOKEN_REFRESH_SPACING};
