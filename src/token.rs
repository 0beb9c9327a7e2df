//! The token source: keeps an in-memory copy of the kubelet-projected
//! service-account token current while kubelet rotates it.
//!
//! kubelet never writes the token file in place: it writes a new hidden
//! directory and renames a `..data` symlink over the old one. So this module
//! - watches the token's *directory*, non-recursively, with notify, and treats
//!   every event except `Access` as a hint (names and kinds vary by writer);
//! - debounces the burst of events of one swap;
//! - re-reads through the user-visible path every time (never a resolved
//!   path, whose directory kubelet deletes right after the swap);
//! - retries transient `ENOENT`, `EACCES` and empty reads, and keeps the last
//!   good token;
//! - publishes only when the bytes change;
//! - also polls (at most every 60 s, more often for short-lived tokens), so it
//!   works where inotify does not (gVisor, Kata, NFS, exhausted limits).
//!
//! See `shared/research/token-watch.md` for the evidence behind each rule.

//!
//! - `source`: the task ([`spawn`]) and its configuration.
//! - `read`: one validated read of the file, [`Token`], [`read_token`].
//! - the notify watch on the directory is [`crate::dirwatch`].
//! - `mountinfo`: the `subPath` check; the token's shape and claims are
//!   [`crate::jwt`]'s.

pub mod mountinfo;
mod read;
mod source;

pub use self::mountinfo::is_subpath_mount;
pub use self::read::{read_token, ReadError, Token};
pub use self::source::{derived_poll_interval, spawn, TokenSourceConfig};
pub use crate::jwt::{Claims, JwtError, MAX_TOKEN_BYTES};
