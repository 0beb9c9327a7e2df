//! A port of kubelet's `AtomicWriter.Write` (pkg/volume/util/atomic_writer.go) for a single-file
//! payload, op for op as in token-watch.md §7.1 and `shared/tools/kubelet-swap.sh`. It is a test
//! and demo helper. A token watcher must handle this exact sequence of directory operations; an
//! in-place rewrite of the file is not what kubelet does.
//!
//! Resulting layout:
//!
//! ```text
//! dir/
//! ├── ..2026_11_22_10_38_08.1466524837/   0755
//! │   └── NAME                            mode
//! ├── ..data -> ..2026_11_22_10_38_08.1466524837
//! └── NAME -> ..data/NAME
//! ```
//!
//! This is Unix only (symlinks, modes). It leaves out fsGroup/runAsUser ownership (step 7).

use std::{
    fs::{self, DirBuilder, OpenOptions, Permissions},
    io::{self, Write as _},
    os::unix::fs::{symlink, DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

use time::{macros::format_description, OffsetDateTime};

/// The symlink that points at the current timestamped directory.
pub const DATA_DIR_NAME: &str = "..data";
/// The symlink created next to `..data` and renamed over it (the atomic commit).
pub const DATA_DIR_TMP_NAME: &str = "..data_tmp";

/// Writes `data` as `dir/name` exactly as kubelet's AtomicWriter does (token-watch.md §7.1,
/// kubelet-swap.sh).
///
/// It reads the `..data` link. If the current file already holds these bytes, it only ensures
/// the user-visible symlink and returns `Ok(false)`. Otherwise it creates
/// `..<UTC %Y_%m_%d_%H_%M_%S>.<random u32>` with mode 0700, then chmods it to 0755. It writes
/// the file (`O_WRONLY|O_CREAT|O_TRUNC`, `mode`), then chmods it explicitly. It symlinks the
/// relative timestamp name as `..data_tmp` and renames that over `..data`. It creates
/// `name -> ..data/name` only if that link is missing, removes the old timestamped directory, and
/// returns `Ok(true)`.
///
/// It creates `dir` if it is missing. Two writes in the same second get distinct directories
/// (the random suffix, retried on collision like Go's `os.MkdirTemp`). `name` must be a single
/// path component that does not start with `..`.
pub fn atomic_write(dir: &Path, name: &str, data: &[u8], mode: u32) -> io::Result<bool> {
    if name.is_empty() || name.contains('/') || name.starts_with("..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "payload name must be one path component not starting with `..`",
        ));
    }
    fs::create_dir_all(dir)?;

    // (2) The current timestamped directory, if any.
    let old_ts = match fs::read_link(dir.join(DATA_DIR_NAME)) {
        Ok(target) => Some(target),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };

    // (3)(4) Unchanged payload: only recreate a missing user-visible link.
    if let Some(old) = &old_ts {
        match fs::read(dir.join(old).join(name)) {
            Ok(current) if current == data => {
                ensure_user_visible_link(dir, name)?;
                return Ok(false);
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }

    // (5) os.MkdirTemp(dir, "..<ts>.") then chmod 0755.
    let ts_name = make_ts_dir(dir)?;
    let ts_path = dir.join(&ts_name);
    let publish = || -> io::Result<()> {
        fs::set_permissions(&ts_path, Permissions::from_mode(0o755))?;
        // (6) os.WriteFile + os.Chmod (the chmod makes the mode independent of the umask).
        let file_path = ts_path.join(name);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&file_path)?;
        file.write_all(data)?;
        drop(file);
        fs::set_permissions(&file_path, Permissions::from_mode(mode))?;
        // (8) A relative target, as kubelet does.
        symlink(&ts_name, dir.join(DATA_DIR_TMP_NAME))?;
        // (9) rename(2) of the symlink itself: the single atomic commit point.
        fs::rename(dir.join(DATA_DIR_TMP_NAME), dir.join(DATA_DIR_NAME))
    };
    if let Err(e) = publish() {
        // kubelet removes the new directory when a step before the commit fails.
        let _ = fs::remove_dir_all(&ts_path);
        return Err(e);
    }

    // (10) Created once, never rewritten.
    ensure_user_visible_link(dir, name)?;

    // (12) Remove the previous timestamped directory.
    if let Some(old) = old_ts {
        fs::remove_dir_all(dir.join(old))?;
    }
    Ok(true)
}

/// Creates `dir/..<UTC timestamp>.<random u32>` with mode 0700 and returns its name. Like
/// `os.MkdirTemp`, it tries another random suffix if the name exists.
fn make_ts_dir(dir: &Path) -> io::Result<String> {
    let stamp = now_utc()
        .format(format_description!(
            "[year]_[month]_[day]_[hour]_[minute]_[second]"
        ))
        .map_err(io::Error::other)?;
    let mut builder = DirBuilder::new();
    builder.mode(0o700);
    // Go gives up after 10000 attempts.
    for _ in 0..10_000 {
        let name = format!("..{stamp}.{}", rand::random::<u32>());
        match builder.create(dir.join(&name)) {
            Ok(()) => return Ok(name),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not find a free timestamped directory name",
    ))
}

/// kubelet's `createUserVisibleFiles`: `readlink(dir/name)`; if it does not exist, symlink
/// `..data/name` there. Other readlink errors (such as a regular file) are ignored, as kubelet does.
fn ensure_user_visible_link(dir: &Path, name: &str) -> io::Result<()> {
    let visible = dir.join(name);
    match fs::read_link(&visible) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            symlink(Path::new(DATA_DIR_NAME).join(name), &visible)
        }
        _ => Ok(()),
    }
}

/// The wall clock, for the directory name only.
#[allow(clippy::disallowed_methods)]
fn now_utc() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    fn ts_dirs(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("..") && n != DATA_DIR_NAME && n != DATA_DIR_TMP_NAME)
            .collect();
        names.sort();
        names
    }

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn first_write_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tokens"); // does not exist yet
        assert!(atomic_write(&dir, "oidc-token", b"tok-1", 0o600).unwrap());

        let data = fs::read_link(dir.join("..data")).unwrap();
        assert!(data.is_relative(), "{data:?}");
        let ts = data.to_str().unwrap().to_owned();
        assert_eq!(ts_dirs(&dir), vec![ts.clone()]);
        // ..YYYY_MM_DD_HH_MM_SS.<u32>
        let (stamp, suffix) = ts[2..].split_once('.').unwrap();
        assert_eq!(stamp.len(), 19, "{ts}");
        assert_eq!(stamp.split('_').count(), 6, "{ts}");
        suffix.parse::<u32>().unwrap();

        assert_eq!(
            fs::read_link(dir.join("oidc-token")).unwrap(),
            Path::new("..data/oidc-token")
        );
        assert_eq!(mode_of(&dir.join(&ts)), 0o755);
        assert_eq!(mode_of(&dir.join(&ts).join("oidc-token")), 0o600);
        assert!(!dir.join("..data_tmp").exists());
        assert_eq!(fs::read(dir.join("oidc-token")).unwrap(), b"tok-1");
        let entries = fs::read_dir(&dir).unwrap().count();
        assert_eq!(entries, 3, "ts dir, ..data, oidc-token");
    }

    #[test]
    fn mode_is_exact_despite_umask() {
        let tmp = tempfile::tempdir().unwrap();
        atomic_write(tmp.path(), "t", b"x", 0o666).unwrap();
        assert_eq!(mode_of(&tmp.path().join("..data/t")), 0o666);
    }

    #[test]
    fn unchanged_write_is_a_no_op() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert!(atomic_write(dir, "oidc-token", b"same", 0o644).unwrap());
        let before = ts_dirs(dir);
        assert!(!atomic_write(dir, "oidc-token", b"same", 0o644).unwrap());
        assert_eq!(ts_dirs(dir), before);

        // A missing user-visible link is recreated even when nothing else changes.
        fs::remove_file(dir.join("oidc-token")).unwrap();
        assert!(!atomic_write(dir, "oidc-token", b"same", 0o644).unwrap());
        assert_eq!(fs::read(dir.join("oidc-token")).unwrap(), b"same");
        assert_eq!(ts_dirs(dir), before);
    }

    #[test]
    fn three_rotations_leave_one_ts_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let link_inode = |d: &Path| fs::symlink_metadata(d.join("oidc-token")).unwrap().ino();
        atomic_write(dir, "oidc-token", b"tok-0", 0o644).unwrap();
        let first_link = link_inode(dir);
        let mut seen = ts_dirs(dir);
        for i in 1..=3 {
            let data = format!("tok-{i}");
            // All within the same second: the random suffix keeps the names distinct.
            assert!(atomic_write(dir, "oidc-token", data.as_bytes(), 0o644).unwrap());
            let now = ts_dirs(dir);
            assert_eq!(now.len(), 1, "{now:?}");
            assert!(!seen.contains(&now[0]), "directory name reused: {now:?}");
            seen.extend(now);
            assert_eq!(fs::read(dir.join("oidc-token")).unwrap(), data.as_bytes());
        }
        // The user-visible link is never rewritten.
        assert_eq!(link_inode(dir), first_link);
        assert_eq!(fs::read_to_string(dir.join("oidc-token")).unwrap(), "tok-3");
    }

    #[test]
    fn rejects_bad_names() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["", "a/b", "..data", "..x"] {
            let err = atomic_write(tmp.path(), name, b"x", 0o644).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
    }
}
