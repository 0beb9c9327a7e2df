//! Bounded, non-blocking reads of the files the agent is given: the
//! projected token, the auth token, PEM certificates and keys, the
//! webhook's in-cluster credentials.
//!
//! A path on the command line can name anything: a FIFO (an open for
//! reading blocks until a writer comes, forever), `/dev/zero` (a read never
//! ends), a directory, a socket, a file of gigabytes. Read naively, each
//! hung the agent before it bound a port, grew it by gigabytes, or left it
//! deaf to SIGTERM. So every read here:
//!
//! - checks the path (following symlinks: the projected token is a chain
//!   through `..data`) before opening it, so a device is never even opened
//!   (opening some has side effects);
//! - opens with `O_NONBLOCK` (a FIFO's open returns at once), `O_NOCTTY`
//!   and `O_CLOEXEC` (std sets it);
//! - checks again what it opened (`fstat`, the authoritative answer: the
//!   path may have been swapped in between) and refuses anything but a
//!   regular file, naming what it is;
//! - refuses a file over the caller's cap before reading a byte, and reads
//!   at most cap + 1 bytes (a file may grow, and `/proc` files report size
//!   0), so a read costs at most its cap in memory.
//!
//! [`read_async`] runs the read on tokio's blocking pool, never on a runtime
//! worker: a regular file on a hung network filesystem can still block in
//! `read(2)`, and a worker stuck there would stall every task on it.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The most bytes a kind of file may hold, and its name for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// What the file is, for errors ("the auth token file").
    pub what: &'static str,
    /// The largest size read, in bytes.
    pub max: u64,
}

/// PEM certificates, chains, CA bundles and private keys: 1 MiB. A
/// serving chain is a few KiB; Debian's whole CA bundle is about 220 KB.
pub const PEM: Limit = Limit {
    what: "a PEM file",
    max: 1024 * 1024,
};

/// A short text file such as a Kubernetes namespace name: 4 KiB.
pub const SMALL_TEXT: Limit = Limit {
    what: "a short text file",
    max: 4096,
};

/// Why a file was not read. Never holds the file's contents.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// An I/O error (`ENOENT`, `EACCES`, `EMFILE`, …).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not a regular file.
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead ("a FIFO", "a character device", …).
        kind: &'static str,
    },
    /// Over the cap.
    #[error("{} is over the {}-byte limit for {} ({})", path.display(), limit.max, limit.what, size.map_or_else(|| "it kept growing".to_owned(), |s| format!("{s} bytes")))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap it broke.
        limit: Limit,
        /// Its size, if `fstat` knew it.
        size: Option<u64>,
    },
}

// === impl FileError ===

impl FileError {
    /// The I/O error's kind, if this is one (`NotFound` matters to readers
    /// of files kubelet swaps).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            Self::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    /// The size, if this is [`FileError::TooLarge`] and it is known.
    pub fn too_large(&self) -> Option<u64> {
        match self {
            Self::TooLarge { size, limit, .. } => Some(size.unwrap_or(limit.max + 1)),
            _ => None,
        }
    }

    /// The error without its path (for readers that name the file
    /// themselves).
    pub fn reason(&self) -> String {
        match self {
            Self::Io { source, .. } => source.to_string(),
            Self::NotRegular { kind, .. } => format!("it is {kind}, not a regular file"),
            Self::TooLarge { limit, .. } => {
                format!("over the {}-byte limit for {}", limit.max, limit.what)
            }
        }
    }
}

/// Reads the whole regular file at `path`, at most `limit.max` bytes.
/// Blocking: from async code use [`read_async`].
pub fn read(path: &Path, limit: Limit) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let (file, size) = open(path, limit)?;
    // One allocation for a file that does not change under the read (no
    // copy of a secret left behind by a reallocation).
    let mut buf = Zeroizing::new(Vec::with_capacity(size.min(limit.max) as usize + 1));
    file.take(limit.max + 1)
        .read_to_end(&mut buf)
        .map_err(|source| io(path, source))?;
    if buf.len() as u64 > limit.max {
        return Err(FileError::TooLarge {
            path: path.to_owned(),
            limit,
            size: None,
        });
    }
    Ok(buf)
}

/// [`read`] on tokio's blocking pool.
pub async fn read_async(path: &Path, limit: Limit) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || read(&owned, limit))
        .await
        .unwrap_or_else(|e| Err(io(path, std::io::Error::other(e))))
}

/// Opens the regular file at `path` for reading, refusing one over
/// `limit`; returns it and its size (from `fstat`). For callers that
/// stream a file (hashing or copying a binary).
pub fn open(path: &Path, limit: Limit) -> Result<(File, u64), FileError> {
    // A first look through the path, so a device or FIFO is never opened.
    let before = std::fs::metadata(path).map_err(|e| io(path, e))?;
    check(path, &before, limit)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| io(path, e))?;
    // What was opened: the path may name something else by now.
    let meta = file.metadata().map_err(|e| io(path, e))?;
    check(path, &meta, limit)?;
    Ok((file, meta.len()))
}

fn check(path: &Path, meta: &Metadata, limit: Limit) -> Result<(), FileError> {
    let t = meta.file_type();
    let kind = if t.is_file() {
        if meta.len() > limit.max {
            return Err(FileError::TooLarge {
                path: path.to_owned(),
                limit,
                size: Some(meta.len()),
            });
        }
        return Ok(());
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_socket() {
        "a socket"
    } else {
        "something else"
    };
    Err(FileError::NotRegular {
        path: path.to_owned(),
        kind,
    })
}

fn io(path: &Path, source: std::io::Error) -> FileError {
    FileError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limit = Limit {
        what: "a test file",
        max: 16,
    };

    fn kind(e: FileError) -> &'static str {
        match e {
            FileError::NotRegular { kind, .. } => kind,
            other => panic!("not NotRegular: {other}"),
        }
    }

    #[test]
    fn reads_regular_files_through_symlinks_within_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("..2026")).unwrap();
        std::fs::write(dir.path().join("..2026/token"), b"sixteen bytes!!!").unwrap();
        std::os::unix::fs::symlink("..2026", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/token", dir.path().join("token")).unwrap();
        let got = read(&dir.path().join("token"), SMALL).unwrap();
        assert_eq!(&got[..], b"sixteen bytes!!!");

        std::fs::write(dir.path().join("..2026/token"), b"seventeen bytes!!").unwrap();
        let e = read(&dir.path().join("token"), SMALL).unwrap_err();
        assert_eq!(e.too_large(), Some(17));
        let msg = e.to_string();
        assert!(
            msg.contains("16-byte limit for a test file") && msg.contains("17 bytes"),
            "{msg}"
        );
        assert!(!msg.contains("seventeen"), "{msg}");
        let e = read(&dir.path().join("absent"), SMALL).unwrap_err();
        assert_eq!(e.io_kind(), Some(std::io::ErrorKind::NotFound));
    }

    #[test]
    fn devices_fifos_directories_and_sockets_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        // Without a writer, a blocking open of the FIFO would never return.
        assert_eq!(kind(read(&fifo, SMALL).unwrap_err()), "a FIFO");
        assert_eq!(
            kind(read(Path::new("/dev/zero"), SMALL).unwrap_err()),
            "a character device"
        );
        assert_eq!(kind(read(dir.path(), SMALL).unwrap_err()), "a directory");
        let sock = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = read(&sock, SMALL).unwrap_err();
        assert!(
            e.to_string().ends_with("is a socket, not a regular file"),
            "{e}"
        );
        // Through a symlink too.
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
        let e = read(&dir.path().join("zero"), SMALL).unwrap_err();
        assert_eq!(
            e.reason(),
            "it is a character device, not a regular file",
            "{e}"
        );
    }

    #[test]
    fn a_file_that_reports_no_size_is_still_capped() {
        // /proc files report size 0 and may be any length.
        let limit = Limit {
            what: "a test file",
            max: 8,
        };
        let e = read(Path::new("/proc/self/status"), limit).unwrap_err();
        assert!(e.to_string().contains("kept growing"), "{e}");
        assert_eq!(e.too_large(), Some(9));
    }

    #[tokio::test]
    async fn async_reads_do_the_same_off_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(&read_async(&path, SMALL).await.unwrap()[..], b"abc");
        let e = read_async(Path::new("/dev/zero"), SMALL).await.unwrap_err();
        assert!(matches!(e, FileError::NotRegular { .. }), "{e}");
    }
}
