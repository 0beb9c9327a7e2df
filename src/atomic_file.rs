//! Atomic file replacement (the `atomic-write-file` crate): readers see
//! either the old file or the whole new one, never a partial write, and the
//! rename is made durable with an fsync of the directory.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use atomic_write_file::unix::OpenOptionsExt as _;
use atomic_write_file::OpenOptions;

/// Writes `data` to `path` with `mode` (whatever the umask), creating the
/// directory if needed: a temporary file in the same directory, fsynced,
/// renamed over `path`, then the directory fsynced.
pub fn write(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    write_from(path, &mut &data[..], mode)
}

/// [`write`], with the contents streamed from `source` (a file to copy).
pub fn write_from(path: &Path, source: &mut impl Read, mode: u32) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new()
        .preserve_mode(false)
        .preserve_owner(false)
        .mode(mode)
        .open(path)?;
    std::io::copy(source, &mut file)?;
    file.flush()?;
    // The umask may have narrowed the mode given to open.
    file.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_with_the_given_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/file");
        write(&path, b"one", 0o640).unwrap();
        write(&path, b"two", 0o755).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(fs::read_dir(dir.path().join("a/b")).unwrap().count(), 1);
    }
}
