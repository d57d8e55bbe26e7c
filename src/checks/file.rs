//! `file`: a maintenance file's presence is a failure (`Exists`), or the integer in it is
//! multiplied by the weight (`Value`, keepalived `track_file`).
//!
//! Held to what it may read: in a cluster the path is opened beneath the agent's
//! `--check-files` directory only (`openat2` with `RESOLVE_BENEATH`: a symlink or `..` that
//! leads out is refused the same way whether or not its target exists, so nothing outside
//! can be read or probed); a `Value` file must be a regular file, opened without blocking (a
//! FIFO or a device is refused at once, never waited on); and what it holds is never echoed:
//! only the integer it begins with is read.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{BoxFuture, Checker, Outcome, io_text};
use crate::api::FileMode;

pub(crate) struct File {
    pub path: PathBuf,
    pub mode: FileMode,
    /// The directory the path must stay beneath (the agent's `--check-files`, in a cluster).
    pub beneath: Option<PathBuf>,
}

/// keepalived reads the file's first number; an empty file counts as 0. The text is not
/// echoed back: a file that does not begin with an integer says only that.
fn value_of(text: &str) -> Result<i64, String> {
    let t = text.split_whitespace().next().unwrap_or("0");
    t.parse::<i64>()
        .map_err(|_| "the file does not begin with an integer".to_string())
}

/// What opening the path found.
enum Opened {
    File(std::fs::File),
    Missing,
    /// The path leads out of the allowed directory.
    Outside,
}

fn cstring(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput.into())
}

/// Opens `path` read-only and without blocking (O_NONBLOCK: a FIFO opens at once), beneath
/// `dir` if given.
fn open(path: &Path, dir: Option<&Path>, flags: i32) -> std::io::Result<Opened> {
    // O_PATH takes no other flags (openat2 refuses them); it opens nothing for reading.
    let flags = if flags & libc::O_PATH != 0 {
        flags | libc::O_CLOEXEC
    } else {
        flags | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY
    };
    let fd = match dir {
        None => {
            let c = cstring(path)?;
            // SAFETY: a valid C string; the fd is owned below.
            unsafe { libc::open(c.as_ptr(), flags) }
        }
        Some(dir) => {
            let Ok(rel) = path.strip_prefix(dir) else {
                return Ok(Opened::Outside);
            };
            let d = cstring(dir)?;
            // SAFETY: a valid C string.
            let dfd = unsafe {
                libc::open(
                    d.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            if dfd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: just opened, owned here.
            let dfd = unsafe { OwnedFd::from_raw_fd(dfd) };
            let r = cstring(rel)?;
            // SAFETY: open_how is plain data; zero is its default.
            let mut how: libc::open_how = unsafe { std::mem::zeroed() };
            how.flags = flags as u64;
            how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
            // SAFETY: openat2 with a valid dirfd, C string and struct of the size given.
            unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    std::os::fd::AsRawFd::as_raw_fd(&dfd),
                    r.as_ptr(),
                    &how as *const libc::open_how,
                    std::mem::size_of::<libc::open_how>(),
                ) as i32
            }
        }
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Ok(Opened::Missing),
            Some(libc::EXDEV) | Some(libc::ELOOP) if dir.is_some() => Ok(Opened::Outside),
            _ => Err(e),
        };
    }
    // SAFETY: just opened, owned by the File.
    Ok(Opened::File(unsafe { std::fs::File::from_raw_fd(fd) }))
}

fn outside(dir: Option<&Path>) -> Outcome {
    Outcome::fail(format!(
        "refused: the path leads outside {}",
        dir.map(|d| d.display().to_string()).unwrap_or_default()
    ))
}

/// One run, blocking (never for long: nothing here waits on a writer).
fn check(path: &Path, mode: FileMode, dir: Option<&Path>) -> Outcome {
    match mode {
        FileMode::Exists => match open(path, dir, libc::O_PATH) {
            Ok(Opened::File(_)) => Outcome::fail("file present".into()),
            Ok(Opened::Missing) => Outcome::pass("file absent".into()),
            Ok(Opened::Outside) => outside(dir),
            Err(e) => Outcome::fail(format!("cannot check the file: {}", io_text(&e))),
        },
        FileMode::Value => {
            let mut f = match open(path, dir, libc::O_RDONLY) {
                Ok(Opened::File(f)) => f,
                // keepalived: a missing file reads as 0.
                Ok(Opened::Missing) => return Outcome::value(0),
                Ok(Opened::Outside) => return outside(dir),
                Err(e) => return Outcome::fail(format!("cannot read the file: {}", io_text(&e))),
            };
            match f.metadata() {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Outcome::fail("refused: not a regular file".into()),
                Err(e) => return Outcome::fail(format!("cannot read the file: {}", io_text(&e))),
            }
            // A small read: a huge file is not a number anyway.
            let mut buf = [0u8; 64];
            match f.read(&mut buf) {
                Ok(n) => match value_of(&String::from_utf8_lossy(&buf[..n])) {
                    Ok(v) => Outcome::value(v),
                    Err(e) => Outcome::fail(e),
                },
                Err(e) => Outcome::fail(format!("cannot read the file: {}", io_text(&e))),
            }
        }
    }
}

impl Checker for File {
    fn run(&self, timeout: Duration) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let (path, mode, dir) = (self.path.clone(), self.mode, self.beneath.clone());
            let run = tokio::task::spawn_blocking(move || check(&path, mode, dir.as_deref()));
            match tokio::time::timeout(timeout, run).await {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => Outcome::fail(format!("the check stopped: {e}")),
                Err(_) => Outcome::timed_out(timeout),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(value_of("5\n"), Ok(5));
        assert_eq!(value_of("-254"), Ok(-254));
        assert_eq!(value_of(""), Ok(0));
        // What the file holds is never echoed.
        let e = value_of("secret$6$hash").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    fn lab() -> (PathBuf, PathBuf) {
        let root = std::env::temp_dir().join(format!(
            "kube-vrrp-file-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("checks");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(root.join("secret"), "hunter2 rest\n").unwrap();
        std::fs::write(dir.join("weight"), "7\n").unwrap();
        (root, dir)
    }

    #[test]
    fn a_symlink_out_of_the_directory_is_refused_whether_or_not_its_target_exists() {
        let (root, dir) = lab();
        std::os::unix::fs::symlink(root.join("secret"), dir.join("escape")).unwrap();
        std::os::unix::fs::symlink(root.join("nothing"), dir.join("probe")).unwrap();
        std::os::unix::fs::symlink("weight", dir.join("inside")).unwrap();
        let d = Some(dir.as_path());
        for mode in [FileMode::Value, FileMode::Exists] {
            let a = check(&dir.join("escape"), mode, d);
            let b = check(&dir.join("probe"), mode, d);
            assert!(
                !a.ok && a.text.starts_with("refused: the path leads outside"),
                "{a:?}"
            );
            assert_eq!(a.text, b.text, "existence outside can be probed");
            assert!(!a.text.contains("hunter2"));
            let up = check(&dir.join("../secret"), mode, d);
            assert!(up.text.starts_with("refused"), "{up:?}");
        }
        // A symlink that stays inside is followed.
        assert_eq!(
            check(&dir.join("inside"), FileMode::Value, d).value,
            Some(7)
        );
        assert_eq!(
            check(&dir.join("weight"), FileMode::Value, d).value,
            Some(7)
        );
        // Standalone (no directory): any path, as the file says.
        assert!(
            !check(&root.join("secret"), FileMode::Value, None)
                .text
                .contains("hunter2")
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_at_once_and_blocks_nothing() {
        let (root, dir) = lab();
        let fifo = dir.join("fifo");
        let c = cstring(&fifo).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // No writer ever opens it: a blocking open would hang for good, so the checks run on
        // a thread and a minute without an answer is a failure (not a speed bound).
        let (tx, rx) = std::sync::mpsc::channel();
        let (f, d) = (fifo.clone(), dir.clone());
        std::thread::spawn(move || {
            let texts: Vec<String> = (0..50)
                .map(|_| check(&f, FileMode::Value, Some(&d)).text)
                .collect();
            let _ = tx.send(texts);
        });
        let texts = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("opening a FIFO blocked");
        assert!(
            texts.iter().all(|t| t == "refused: not a regular file"),
            "{texts:?}"
        );
        assert!(!check(Path::new("/dev/zero"), FileMode::Value, None).ok);
        std::fs::remove_dir_all(root).unwrap();
    }
}
