//! One agent per node. A second agent would find the first one's addresses (they carry our
//! mark) and remove them as stale, then both would run VRRP from one host. The lock is an
//! abstract Unix socket: scoped to the network namespace (the node, for a host-network pod or
//! a lab node), released by the kernel however the holder dies, no file to clean up.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NAME: &[u8] = b"kube-vrrp-agent";

#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    #[error(
        "another kube-vrrp agent already runs on this node (in this network namespace): stop it first; two agents would remove each other's addresses"
    )]
    Held,
    #[error("cannot take the node lock: {0}")]
    Io(std::io::Error),
}

/// Held for as long as the value lives.
pub(crate) struct NodeLock {
    _fd: OwnedFd,
}

impl NodeLock {
    /// [`acquire`](Self::acquire), waiting up to `wait` while another agent holds the node:
    /// an agent started right after its predecessor's SIGTERM waits for that one's handover
    /// (at most three advertisement intervals) instead of failing.
    pub(crate) async fn acquire_waiting(wait: std::time::Duration) -> Result<NodeLock, LockError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut said = false;
        loop {
            match Self::acquire() {
                Err(LockError::Held) if tokio::time::Instant::now() < deadline => {
                    if !said {
                        tracing::info!(
                            wait = %crate::units::format_duration(wait),
                            "another kube-vrrp agent holds this node (a predecessor handing over?): waiting for it"
                        );
                        said = true;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                r => return r,
            }
        }
    }

    pub(crate) fn acquire() -> Result<NodeLock, LockError> {
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(LockError::Io(std::io::Error::last_os_error()));
        }
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        // sun_path[0] = 0: the abstract namespace.
        for (i, b) in NAME.iter().enumerate() {
            addr.sun_path[i + 1] = *b as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sa_family_t>() + 1 + NAME.len();
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len as libc::socklen_t,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EADDRINUSE) {
                LockError::Held
            } else {
                LockError::Io(e)
            });
        }
        Ok(NodeLock { _fd: fd })
    }
}
