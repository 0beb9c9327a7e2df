//! Detects a token file that is a `subPath` (single-file bind) mount.
//!
//! kubelet rotates a projected token by swapping a directory symlink; a
//! `subPath` mount pins the file that existed when the container started, so
//! it never rotates and the exchange fails once the token expires.

use std::path::Path;

use tracing::warn;

/// Warns if `path` is a `subPath` mount (see [`is_subpath_mount`]).
pub fn warn_if_subpath(path: &Path) {
    if is_subpath_mount(path) {
        warn!(
            path = %path.display(),
            "the token file is a subPath (single-file) mount: kubelet will never rotate it and exchanges will fail once it expires; mount the projected volume's directory instead"
        );
    }
}

/// `/proc/self/mountinfo`'s cap: 8 MiB, some 50,000 mounts (a container
/// sees tens).
const MOUNTINFO: crate::fsread::Limit = crate::fsread::Limit {
    what: "the mount table",
    max: 8 * 1024 * 1024,
};

/// Returns true if and only if `path` is itself a mount point in this
/// process's mount namespace: a `subPath` mount that kubelet never rotates.
pub fn is_subpath_mount(path: &Path) -> bool {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(path),
            Err(_) => return false,
        }
    };
    crate::fsread::read(Path::new("/proc/self/mountinfo"), MOUNTINFO)
        .is_ok_and(|info| is_mount_point(&String::from_utf8_lossy(&info), &absolute))
}

/// Returns true if and only if `mountinfo` (the text of
/// `/proc/self/mountinfo`) lists `path` as a mount point.
pub fn is_mount_point(mountinfo: &str, path: &Path) -> bool {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| Path::new(&unescape(mount_point)) == path)
}

/// Undoes the kernel's octal escapes (`\040` for a space, etc.).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / / rw,relatime - overlay overlay rw
31 22 0:45 / /var/run/secrets/tokens ro,relatime - tmpfs tmpfs rw,size=1024k
32 22 0:45 /..2026_11_22_10_42_07.97895685/oidc-token//deleted /etc/tok/oidc-token ro,relatime - tmpfs tmpfs rw
33 22 0:46 / /mnt/with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn finds_file_bind_mounts() {
        assert!(is_mount_point(SAMPLE, Path::new("/etc/tok/oidc-token")));
        assert!(!is_mount_point(
            SAMPLE,
            Path::new("/var/run/secrets/tokens/oidc-token")
        ));
        assert!(is_mount_point(SAMPLE, Path::new("/mnt/with space")));
        assert!(!is_mount_point("", Path::new("/")));
    }
}
