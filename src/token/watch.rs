//! Watching the token's directory with notify: every event but `Access` is
//! a hint to re-read, and a watch that breaks (the directory replaced or
//! removed, an overflow) asks to be set up again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

/// A live watch on the token's directory; dropping it stops the watch.
pub(crate) struct DirWatch {
    _watcher: RecommendedWatcher,
}

/// Watches the directory holding `path`, non-recursively: each event
/// notifies `kick`; one that means the watch itself is gone also sets
/// `rearm`.
pub(crate) fn watch_dir(
    path: &Path,
    kick: &Arc<Notify>,
    rearm: &Arc<AtomicBool>,
) -> notify::Result<DirWatch> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (kick, rearm, watched) = (kick.clone(), rearm.clone(), dir.clone());
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => {}
            Ok(ev) => {
                let dir_itself = ev.paths.iter().any(|p| p == &watched)
                    && matches!(
                        ev.kind,
                        EventKind::Remove(_)
                            | EventKind::Modify(notify::event::ModifyKind::Name(_))
                    );
                if ev.need_rescan() || dir_itself {
                    rearm.store(true, Ordering::Release);
                }
                kick.notify_one();
            }
            Err(_) => {
                rearm.store(true, Ordering::Release);
                kick.notify_one();
            }
        })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(DirWatch { _watcher: watcher })
}
