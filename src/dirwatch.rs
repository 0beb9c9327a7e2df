//! Watching a directory for changes with notify, for every reader of files
//! that others replace: the projected token (`token`), the webhook's serving
//! certificate (`webhook::serve::tls`) and the credential-process directory
//! (`surfaces::process_dir`).
//!
//! Only changes count: a create, a modification (data, metadata, a rename)
//! or a removal is a hint to re-read. Accesses (open, read, close) never
//! are, so a reader's own reads cannot wake it again (on inotify every open
//! of a file in the directory is an event; reacting to them spun a core).
//! Event names and kinds vary by writer (kubelet renames a `..data` symlink,
//! cert-manager's projected Secret does the same, `cp` writes in place), so
//! the kind is not inspected further: the reader compares what it reads.
//!
//! A watch that breaks (the directory itself removed or renamed, an event
//! queue overflow, a watcher error) asks to be set up again through
//! `rearm`; readers also poll, so a lost watch costs latency, not
//! correctness.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use notify::event::ModifyKind;
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

/// A live watch on a directory; dropping it stops the watch.
pub struct DirWatch {
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for DirWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirWatch")
    }
}

/// Watches the directory holding `path`, non-recursively: each change
/// notifies `kick`; one that means the watch itself is gone also sets
/// `rearm`.
pub fn watch_parent(
    path: &Path,
    kick: &Arc<Notify>,
    rearm: &Arc<AtomicBool>,
) -> notify::Result<DirWatch> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    watch_dir(&dir, kick, rearm)
}

/// Watches `dir` itself, non-recursively (see [`watch_parent`]).
pub fn watch_dir(
    dir: &Path,
    kick: &Arc<Notify>,
    rearm: &Arc<AtomicBool>,
) -> notify::Result<DirWatch> {
    let (kick, rearm, watched) = (kick.clone(), rearm.clone(), dir.to_path_buf());
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| match res {
        Ok(ev) => match classify(&ev, &watched) {
            Hint::Ignore => {}
            Hint::Changed => kick.notify_one(),
            Hint::Rearm => {
                rearm.store(true, Ordering::Release);
                kick.notify_one();
            }
        },
        Err(_) => {
            rearm.store(true, Ordering::Release);
            kick.notify_one();
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(DirWatch { _watcher: watcher })
}

/// What one event means to a reader of `watched`'s files.
#[derive(Debug, PartialEq, Eq)]
enum Hint {
    /// An access: nothing changed.
    Ignore,
    /// Something in the directory changed: re-read.
    Changed,
    /// The watch itself is gone or lost events: re-read and watch again.
    Rearm,
}

fn classify(ev: &Event, watched: &Path) -> Hint {
    if matches!(ev.kind, EventKind::Access(_)) {
        return Hint::Ignore;
    }
    let dir_itself = ev.paths.iter().any(|p| p == watched)
        && matches!(
            ev.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
        );
    if ev.need_rescan() || dir_itself {
        Hint::Rearm
    } else {
        Hint::Changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, Flag, RemoveKind};

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn accesses_are_not_changes() {
        let dir = Path::new("/d");
        for kind in [
            AccessKind::Open(AccessMode::Read),
            AccessKind::Read,
            AccessKind::Close(AccessMode::Read),
            AccessKind::Close(AccessMode::Write),
            AccessKind::Any,
        ] {
            assert_eq!(
                classify(&event(EventKind::Access(kind), "/d/aws-config"), dir),
                Hint::Ignore,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn changes_and_lost_watches() {
        let dir = Path::new("/d");
        let changed = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Metadata(notify::event::MetadataKind::Any)),
            EventKind::Modify(ModifyKind::Name(notify::event::RenameMode::To)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Any,
            EventKind::Other,
        ];
        for kind in changed {
            assert_eq!(classify(&event(kind, "/d/..data"), dir), Hint::Changed);
        }
        assert_eq!(
            classify(&event(EventKind::Remove(RemoveKind::Folder), "/d"), dir),
            Hint::Rearm
        );
        let overflow = Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert_eq!(classify(&overflow, dir), Hint::Rearm);
    }
}
