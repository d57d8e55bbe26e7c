//! Raw VRRP sockets (IP protocol 112) for IPv4 and IPv6, receivers and senders apart, as
//! keepalived does: a receiver is bound to the device and joined to the group, so it sees
//! multicast and unicast adverts alike; a sender is bound to the primary address (the advert
//! source) and the device (the virtual-MAC one in VMAC mode), sends with TTL / hop limit 255
//! and never loops back.
//! The I/O here does no protocol work: bytes in, bytes out.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::vrrp::Family;
use crate::vrrp::packet::{IPPROTO_VRRP, MULTICAST_V4, MULTICAST_V6, VRRP_TTL};

/// A packet as received, with the IP header fields VRRP checks.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub payload: Vec<u8>,
}

/// Receives every VRRP packet of one family arriving on one interface (multicast and
/// unicast), with TTL / hop limit and destination.
pub(crate) struct VrrpReceiver {
    family: Family,
    rx: AsyncFd<Socket>,
}

impl VrrpReceiver {
    pub(crate) fn open(family: Family, ifname: &str, ifindex: u32) -> io::Result<VrrpReceiver> {
        Self::from_socket(family, Self::open_socket(family, ifname, ifindex)?)
    }

    /// The socket alone, not yet registered with a runtime: opened where it may take time,
    /// registered (cheaply) by the runtime that reads it.
    pub(crate) fn open_socket(family: Family, ifname: &str, ifindex: u32) -> io::Result<Socket> {
        let rx = raw_socket(family, ifname)?;
        rx.set_recv_buffer_size(1 << 20)?;
        match family {
            Family::V4 => {
                rx.join_multicast_v4_n(&MULTICAST_V4, &InterfaceIndexOrAddress::Index(ifindex))?
            }
            Family::V6 => {
                rx.join_multicast_v6(&MULTICAST_V6, ifindex)?;
                set_int(&rx, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
                set_int(&rx, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
            }
        }
        Ok(rx)
    }

    /// Registers a socket from [`VrrpReceiver::open_socket`] with the current runtime.
    pub(crate) fn from_socket(family: Family, rx: Socket) -> io::Result<VrrpReceiver> {
        Ok(VrrpReceiver {
            family,
            // SAFETY: the socket is owned by the AsyncFd and keeps its descriptor until dropped.
            rx: unsafe { AsyncFd::register_with_interest(rx, tokio::io::Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?,
        })
    }

    /// Receives the next VRRP packet.
    pub(crate) async fn recv(&self) -> io::Result<Received> {
        loop {
            let mut guard = self.rx.readable().await?;
            match guard.try_io(|fd| match self.family {
                Family::V4 => recv_v4(fd.get_ref()),
                Family::V6 => recv_v6(fd.get_ref()),
            }) {
                Ok(Ok(Some(r))) => return Ok(r),
                Ok(Ok(None)) => continue, // not a usable packet (truncated IP header)
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Sends VRRP messages out of one interface from one source address, TTL / hop limit 255,
/// never looped back to this host.
pub(crate) struct VrrpSender {
    ifindex: u32,
    tx: Socket,
}

impl VrrpSender {
    /// `source`: the primary address (IPv6: our link-local address, present on the sending
    /// interface); `ifname`/`ifindex`: the interface to send from (the virtual-MAC one if any).
    pub(crate) fn open(ifname: &str, ifindex: u32, source: IpAddr) -> io::Result<VrrpSender> {
        let tx = raw_socket(Family::of(&source), ifname)?;
        // A raw socket gets a copy of every VRRP packet that matches it: this one only sends,
        // so it takes none (a flood must not be queued once per sender).
        drop_all_input(&tx)?;
        tx.set_recv_buffer_size(0)?;
        match source {
            IpAddr::V4(_) => {
                tx.set_freebind_v4(true)?;
                tx.bind(&SockAddr::from(SocketAddr::new(source, 0)))?;
                // By index: the source may live on the base interface while we send from the
                // virtual-MAC one.
                set_multicast_if_index_v4(&tx, ifindex)?;
                tx.set_multicast_ttl_v4(u32::from(VRRP_TTL))?;
                tx.set_ttl_v4(u32::from(VRRP_TTL))?;
                tx.set_multicast_loop_v4(false)?;
                tx.set_tos_v4(0xc0)?; // internetwork control, as keepalived
            }
            IpAddr::V6(src) => {
                let scope = if is_link_local(&src) { ifindex } else { 0 };
                tx.bind(&SockAddr::from(SocketAddrV6::new(src, 0, 0, scope)))?;
                tx.set_multicast_if_v6(ifindex)?;
                tx.set_multicast_hops_v6(u32::from(VRRP_TTL))?;
                tx.set_unicast_hops_v6(u32::from(VRRP_TTL))?;
                tx.set_multicast_loop_v6(false)?;
            }
        }
        Ok(VrrpSender { ifindex, tx })
    }

    /// The interface it sends from.
    pub(crate) fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sends one VRRP message to `dst` (the group, or a unicast peer).
    pub(crate) fn send(&self, dst: IpAddr, payload: &[u8]) -> io::Result<()> {
        let addr = match dst {
            IpAddr::V4(_) => SocketAddr::new(dst, 0),
            IpAddr::V6(d) => {
                let scope = if is_link_local(&d) || d.is_multicast() {
                    self.ifindex
                } else {
                    0
                };
                SocketAddr::V6(SocketAddrV6::new(d, 0, 0, scope))
            }
        };
        self.tx.send_to(payload, &SockAddr::from(addr))?;
        Ok(())
    }
}

fn raw_socket(family: Family, ifname: &str) -> io::Result<Socket> {
    let domain = match family {
        Family::V4 => Domain::IPV4,
        Family::V6 => Domain::IPV6,
    };
    let s = Socket::new(
        domain,
        Type::RAW,
        Some(Protocol::from(i32::from(IPPROTO_VRRP))),
    )?;
    s.bind_device(Some(ifname.as_bytes()))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Attaches a classic BPF program that accepts nothing.
fn drop_all_input(s: &Socket) -> io::Result<()> {
    let mut code = [libc::sock_filter {
        code: 0x06, // BPF_RET | BPF_K
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: code.as_mut_ptr(),
    };
    set_opt(s, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

/// `setsockopt` with any plain value.
fn set_opt<T>(s: &Socket, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live, properly sized T for the duration of the call.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

fn set_multicast_if_index_v4(s: &Socket, ifindex: u32) -> io::Result<()> {
    let mreq = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: ifindex as i32,
    };
    set_opt(s, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreq)
}

fn set_int(s: &Socket, level: i32, name: i32, value: i32) -> io::Result<()> {
    set_opt(s, level, name, &value)
}

/// IPv4 raw sockets deliver the IP header: TTL and addresses come from it.
fn recv_v4(s: &Socket) -> io::Result<Option<Received>> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let (n, _) = s.recv_from(&mut buf)?;
    let buf: Vec<u8> = buf[..n]
        .iter()
        .map(|b| unsafe { b.assume_init() })
        .collect();
    if n < 20 {
        return Ok(None);
    }
    let ihl = usize::from(buf[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([buf[2], buf[3]])).min(n);
    if ihl < 20 || total < ihl {
        return Ok(None);
    }
    Ok(Some(Received {
        ttl: buf[8],
        src: IpAddr::V4(Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15])),
        dst: IpAddr::V4(Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19])),
        payload: buf[ihl..total].to_vec(),
    }))
}

/// IPv6 raw sockets deliver the payload only: hop limit and destination come as ancillary
/// data (IPV6_HOPLIMIT, IPV6_PKTINFO).
fn recv_v6(s: &Socket) -> io::Result<Option<Received>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg};
    let mut buf = vec![0u8; 4096];
    let mut cmsg = nix::cmsg_space!(libc::c_int, libc::in6_pktinfo);
    let (n, src, hop, dst) = {
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let msg =
            recvmsg::<SockaddrIn6>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
                .map_err(io::Error::from)?;
        let mut hop = None;
        let mut dst = None;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            match c {
                ControlMessageOwned::Ipv6HopLimit(h) => hop = Some(h),
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr))
                }
                _ => {}
            }
        }
        (msg.bytes, msg.address.map(|a| a.ip()), hop, dst)
    };
    let (Some(src), Some(hop), Some(dst)) = (src, hop, dst) else {
        return Ok(None);
    };
    Ok(Some(Received {
        src: IpAddr::V6(src),
        dst: IpAddr::V6(dst),
        ttl: u8::try_from(hop).unwrap_or(0),
        payload: buf[..n].to_vec(),
    }))
}
