//! Raw packets in the lab: a VRRP message sent as is (malformed or hostile ones
//! included), ICMP probes timing an outage, and a capture of the advertisements on the wire.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Sends one raw VRRP message (IP protocol 112) from inside a namespace with the given TTL /
/// hop limit: how tests inject malformed or hostile packets.
pub fn send_vrrp(ns: &str, dst: std::net::IpAddr, ttl: u8, payload: &[u8]) {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let ns_path = format!("/run/netns/{ns}");
    let payload = payload.to_vec();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns_path).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let domain = if dst.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let s = Socket::new(domain, Type::RAW, Some(Protocol::from(112))).unwrap();
        s.bind_device(Some(b"eth0")).unwrap();
        if dst.is_ipv4() {
            s.set_multicast_ttl_v4(u32::from(ttl)).unwrap();
            s.set_ttl_v4(u32::from(ttl)).unwrap();
        } else {
            s.set_multicast_hops_v6(u32::from(ttl)).unwrap();
            s.set_unicast_hops_v6(u32::from(ttl)).unwrap();
        }
        s.send_to(&payload, &SockAddr::from(SocketAddr::new(dst, 0)))
            .unwrap();
    })
    .join()
    .unwrap();
}

/// What a run of probes saw around a failover.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outage {
    /// From the first unanswered probe to the first answered one after the last unanswered.
    pub outage: Duration,
    pub lost: usize,
    pub sent: usize,
}

/// ICMP echo probes to `target` every `interval` from inside namespace `ns`, on a thread of its
/// own. Call [`Prober::stop`] to collect.
pub struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<(Instant, bool)>>>,
}

impl Prober {
    pub fn start(ns: &str, target: std::net::Ipv4Addr, interval: Duration) -> Prober {
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let ns_path = format!("/run/netns/{ns}");
        let handle = std::thread::spawn(move || {
            let f = std::fs::File::open(&ns_path).unwrap();
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).unwrap();
            s.set_nonblocking(true).unwrap();
            let dst = SockAddr::from(SocketAddr::new(target.into(), 0));
            let ident = (std::process::id() & 0xffff) as u16;
            let mut sent: Vec<(Instant, bool)> = Vec::new();
            let start = Instant::now();
            let mut seq: u16 = 0;
            while !flag.load(Ordering::SeqCst) {
                let mut pkt = vec![8, 0, 0, 0];
                pkt.extend_from_slice(&ident.to_be_bytes());
                pkt.extend_from_slice(&seq.to_be_bytes());
                pkt.extend_from_slice(&[0u8; 16]);
                let sum = ones_complement(&pkt);
                pkt[2..4].copy_from_slice(&sum.to_be_bytes());
                let _ = s.send_to(&pkt, &dst);
                sent.push((Instant::now(), false));
                seq = seq.wrapping_add(1);
                let next = start + interval * sent.len() as u32;
                // Collect replies until the next probe is due.
                loop {
                    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
                    match s.recv(&mut buf) {
                        Ok(n) if n >= 28 => {
                            let b: Vec<u8> = buf[..n]
                                .iter()
                                .map(|x| unsafe { x.assume_init() })
                                .collect();
                            let ihl = usize::from(b[0] & 0x0f) * 4;
                            if b[ihl] == 0 && u16::from_be_bytes([b[ihl + 4], b[ihl + 5]]) == ident
                            {
                                let rseq = u16::from_be_bytes([b[ihl + 6], b[ihl + 7]]);
                                // Map the 16-bit sequence back to the newest probe with it.
                                let idx = (0..sent.len()).rev().find(|i| (*i as u16) == rseq);
                                if let Some(i) = idx {
                                    sent[i].1 = true;
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(_) => {
                            if Instant::now() >= next {
                                break;
                            }
                            std::thread::sleep(Duration::from_micros(500));
                        }
                    }
                }
            }
            sent
        });
        Prober {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops probing (answers still in flight for 200 ms count) and measures the outage.
    pub fn stop(mut self) -> Outage {
        std::thread::sleep(Duration::from_millis(200));
        self.stop.store(true, Ordering::SeqCst);
        let probes = self.handle.take().unwrap().join().unwrap();
        // The last 200 ms of probes may not have been answered yet: ignore them.
        let cutoff =
            probes.last().map(|p| p.0).unwrap_or_else(Instant::now) - Duration::from_millis(150);
        let probes: Vec<(Instant, bool)> = probes.into_iter().filter(|p| p.0 <= cutoff).collect();
        let first_lost = probes.iter().position(|p| !p.1);
        let last_lost = probes.iter().rposition(|p| !p.1);
        let outage = match (first_lost, last_lost) {
            (Some(f), Some(l)) => probes
                .get(l + 1)
                .map(|after| after.0 - probes[f].0)
                .unwrap_or_else(|| probes[l].0 - probes[f].0),
            _ => Duration::ZERO,
        };
        Outage {
            outage,
            lost: probes.iter().filter(|p| !p.1).count(),
            sent: probes.len(),
        }
    }
}

fn ones_complement(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A VRRP advertisement seen on the segment.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub at: Instant,
    pub ipv6: bool,
    pub vrid: u8,
    pub priority: u8,
    pub src: std::net::IpAddr,
}

/// Captures VRRP (IPv4 and IPv6, multicast) on `eth0` of a namespace from a thread of its
/// own, as a switch port would see it: what actually went out on the wire. Call
/// [`Capture::stop`] to collect.
pub struct Capture {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handles: Vec<std::thread::JoinHandle<Vec<Seen>>>,
}

impl Capture {
    pub fn start(ns: &str) -> Capture {
        use socket2::{Domain, Protocol, Socket, Type};
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut handles = Vec::new();
        for ipv6 in [false, true] {
            let flag = stop.clone();
            let ns_path = format!("/run/netns/{ns}");
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            handles.push(std::thread::spawn(move || {
                let f = std::fs::File::open(&ns_path).unwrap();
                nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                // The instrument must not be what is late: real-time priority, above the
                // implementations measured (kube-vrrp's engine asks for 10).
                let param = libc::sched_param { sched_priority: 20 };
                // SAFETY: `param` is a valid sched_param for the call's duration; pid 0 is
                // this thread. Failure (no CAP_SYS_NICE) leaves it at normal priority.
                unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
                let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
                let s = Socket::new(domain, Type::RAW, Some(Protocol::from(112))).unwrap();
                s.bind_device(Some(b"eth0")).unwrap();
                s.set_recv_buffer_size(16 << 20).unwrap();
                let index = nix::net::if_::if_nametoindex("eth0").unwrap();
                if ipv6 {
                    s.join_multicast_v6(&"ff02::12".parse().unwrap(), index)
                        .unwrap();
                } else {
                    s.join_multicast_v4_n(
                        &"224.0.0.18".parse().unwrap(),
                        &socket2::InterfaceIndexOrAddress::Index(index),
                    )
                    .unwrap();
                }
                s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                ready_tx.send(()).unwrap();
                let mut seen = Vec::new();
                let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
                while !flag.load(Ordering::Relaxed) {
                    let Ok((n, from)) = s.recv_from(&mut buf) else {
                        continue;
                    };
                    let at = Instant::now();
                    let b: Vec<u8> = buf[..n]
                        .iter()
                        .map(|x| unsafe { x.assume_init() })
                        .collect();
                    // IPv4 raw sockets deliver the IP header, IPv6 ones do not.
                    let off = if ipv6 {
                        0
                    } else {
                        usize::from(b[0] & 0x0f) * 4
                    };
                    if b.len() < off + 8 {
                        continue;
                    }
                    let Some(src) = from.as_socket().map(|a| a.ip()) else {
                        continue;
                    };
                    seen.push(Seen {
                        at,
                        ipv6,
                        vrid: b[off + 1],
                        priority: b[off + 2],
                        src,
                    });
                }
                seen
            }));
            ready_rx.recv().unwrap();
        }
        Capture { stop, handles }
    }

    pub fn stop(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: Vec<Seen> = self
            .handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect();
        all.sort_by_key(|s| s.at);
        all
    }
}
