//! Client traffic for the load-balancing tests and benchmarks: kept-alive connections, one
//! HTTP GET on them, every address pinged until it answers, room in the neighbour table.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Raises the (host-wide) IPv6 neighbour table limits; puts the old values back on drop.
pub struct NeighbourRoom(Vec<(String, String)>);

impl NeighbourRoom {
    pub fn raise(entries: usize) -> NeighbourRoom {
        let mut old = Vec::new();
        for (k, mul) in [("gc_thresh1", 1), ("gc_thresh2", 2), ("gc_thresh3", 4)] {
            let path = format!("/proc/sys/net/ipv6/neigh/default/{k}");
            let was = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .trim()
                .to_string();
            let want = (entries * mul).max(was.parse().unwrap_or(0));
            if std::fs::write(&path, want.to_string()).is_ok() {
                old.push((path, was));
            }
        }
        NeighbourRoom(old)
    }
}

impl Drop for NeighbourRoom {
    fn drop(&mut self) {
        for (path, was) in &self.0 {
            let _ = std::fs::write(path, was);
        }
    }
}

/// From `start`, pings every address not yet answered since, round after round; returns when
/// each first answered (None for those that never did within `limit`).
pub fn until_all_answer(
    ns: &str,
    addrs: &[std::net::Ipv6Addr],
    start: Instant,
    limit: Duration,
) -> std::collections::BTreeMap<std::net::Ipv6Addr, Duration> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).unwrap();
    sock.set_nonblocking(true).unwrap();
    // A round's thousand replies must fit (the default buffer holds ~200: the rest would
    // be dropped and answer only rounds later, measuring the client, not the failover).
    {
        use std::os::fd::AsRawFd;
        let size: libc::c_int = 16 << 20;
        // SAFETY: a valid socket descriptor, an int option of the right size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
    }
    let mut waiting: std::collections::BTreeSet<std::net::Ipv6Addr> =
        addrs.iter().copied().collect();
    let mut answered = std::collections::BTreeMap::new();
    let mut seq: u16 = 0;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
    while !waiting.is_empty() && start.elapsed() < limit {
        seq = seq.wrapping_add(1);
        for a in &waiting {
            // Echo request: type 128, code 0, checksum by the kernel, id, sequence.
            let pkt = [128u8, 0, 0, 0, 0x4b, 0x56, (seq >> 8) as u8, seq as u8];
            let _ = sock.send_to(
                &pkt,
                &SockAddr::from(std::net::SocketAddrV6::new(*a, 0, 0, 0)),
            );
        }
        let round_end = Instant::now() + Duration::from_millis(10);
        while Instant::now() < round_end {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    // SAFETY: recv_from initialised the first n bytes.
                    let b: Vec<u8> = buf[..n]
                        .iter()
                        .map(|x| unsafe { x.assume_init() })
                        .collect();
                    if b.first() == Some(&129)
                        && let Some(src) = from.as_socket_ipv6().map(|s| *s.ip())
                        && waiting.remove(&src)
                    {
                        answered.insert(src, start.elapsed());
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    }
    answered
}

/// `n` keep-alive TCP connections from namespace `ns` to `target` (a socket stays in the
/// namespace it was opened in); those that could not connect are left out.
pub fn keep_alive(ns: &str, target: SocketAddr, n: usize) -> Vec<TcpStream> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(path).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        (0..n)
            .filter_map(|_| {
                let s = TcpStream::connect_timeout(&target, Duration::from_secs(3)).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(3))).ok();
                Some(s)
            })
            .collect()
    })
    .join()
    .unwrap()
}

/// One HTTP/1.1 GET on a kept-alive connection: the body (the lab's nginx answers its node's
/// name), or why none came.
pub fn ask(s: &mut TcpStream) -> Result<String, String> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".into());
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .ok_or("no Content-Length")?;
            if body.len() >= len {
                return Ok(body.trim().to_string());
            }
        }
    }
}
