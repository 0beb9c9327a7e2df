//! The open-file limit. Container runtimes often start a process with a
//! soft `RLIMIT_NOFILE` of 1,024 under a hard one of 524,288 or more
//! (containerd 2.0 no longer raises it), fewer than the connection caps of
//! one listener; every serving mode raises its soft limit to the hard one
//! at start, as Go's runtime has done since 1.19, and warns when even that
//! is below what its caps can hold (accepts then fail with EMFILE, which
//! `accept` backs off from).

use std::io;

use rlimit::Resource;
use tracing::{info, warn};

/// Descriptors a mode uses besides its listeners' connections: the
/// listeners, epoll, inotify, stdio, the files it reads, its upstream
/// connections.
pub const RESERVE: u64 = 128;

/// The Linux default of `fs.nr_open`, above which a soft limit cannot be
/// set: the target when the hard limit is "unlimited".
const NR_OPEN_DEFAULT: u64 = 1 << 20;

/// The open-file limit before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    /// The soft limit found.
    pub before: u64,
    /// The soft limit now.
    pub after: u64,
}

/// Raises the soft open-file limit to the hard one.
pub fn raise() -> io::Result<Raised> {
    let (soft, hard) = Resource::NOFILE.get()?;
    let target = if hard == rlimit::INFINITY {
        NR_OPEN_DEFAULT
    } else {
        hard
    };
    if soft >= target {
        return Ok(Raised {
            before: soft,
            after: soft,
        });
    }
    Resource::NOFILE.set(target, hard)?;
    Ok(Raised {
        before: soft,
        after: target,
    })
}

/// [`raise`], logged: one line when it raised the limit, a warning when it
/// could not.
pub fn raise_and_log() {
    match raise() {
        Ok(Raised { before, after }) if after > before => {
            info!(before, after, "raised the open-file limit")
        }
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot raise the open-file limit"),
    }
}

/// Warns when the soft open-file limit is below `connections` (the sum of
/// the listeners' caps) plus [`RESERVE`].
pub fn check(connections: usize) {
    let Ok((soft, _)) = Resource::NOFILE.get() else {
        return;
    };
    let needed = connections as u64 + RESERVE;
    if soft < needed {
        warn!(
            limit = soft,
            needed,
            "the open-file limit is below what the connection caps can hold: under load, accepts fail (counted in credagent_accept_errors_total) until connections close; raise the container's nofile limit or lower --max-connections"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let raised = raise().unwrap();
        let (soft, hard) = Resource::NOFILE.get().unwrap();
        assert_eq!(raised.after, soft);
        assert!(raised.after >= raised.before);
        assert!(
            soft == hard || (hard == rlimit::INFINITY && soft == NR_OPEN_DEFAULT),
            "soft {soft}, hard {hard}"
        );
        assert_eq!(
            raise().unwrap().before,
            soft,
            "a second raise changes nothing"
        );
    }
}
