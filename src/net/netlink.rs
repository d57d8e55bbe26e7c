//! Links and addresses through rtnetlink: find interfaces, bind and release virtual addresses,
//! create the virtual-MAC macvlan.
//!
//! Every address we add carries `IFA_PROTO` = [`ADDRESS_PROTO`], so a restarted agent finds the
//! VIPs it left behind (after a SIGKILL) and removes those, and only those. The kernel keeps
//! that mark since Linux 6.3; on older kernels the agent's state file names them instead.

use std::io;
use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressProtocol, CacheInfo,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, MacVlanMode};
use rtnetlink::{LinkMacVlan, LinkUnspec};

use crate::vrrp::VirtualAddress;

/// The receive buffer of the event socket (SO_RCVBUFFORCE: beyond `rmem_max`).
const EVENT_BUFFER: libc::c_int = 16 << 20;

// What a node has is plain data the pure model reads; the kernel fills it in here.
pub use crate::model::host::{ADDRESS_LIFETIME, ADDRESS_PROTO, Address, Link, RENEW_EVERY};

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink: {0}")]
    Io(#[from] io::Error),
    #[error("netlink request failed: {0}")]
    Request(String),
    #[error("no interface named {0:?}")]
    NoSuchInterface(String),
}

fn request_error(e: rtnetlink::Error) -> NetlinkError {
    match e {
        rtnetlink::Error::NetlinkError(m) => NetlinkError::Io(m.to_io()),
        other => NetlinkError::Request(other.to_string()),
    }
}

fn errno(e: &NetlinkError) -> Option<i32> {
    match e {
        NetlinkError::Io(io) => io.raw_os_error(),
        _ => None,
    }
}

/// The lifetime our addresses get when bound or renewed (see
/// [`crate::model::host::renewal`]): set by the agent from the addresses its configuration
/// may bind, raised by the renewal task if more are held. One value shared by the handles
/// that bind (the agent's and its data plane's), never a process-wide global.
#[derive(Debug, Clone)]
pub struct Lifetime(std::sync::Arc<std::sync::atomic::AtomicU32>);

impl Default for Lifetime {
    fn default() -> Self {
        Lifetime(std::sync::Arc::new(std::sync::atomic::AtomicU32::new(
            ADDRESS_LIFETIME.as_secs() as u32,
        )))
    }
}

impl Lifetime {
    pub fn get(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.0.load(std::sync::atomic::Ordering::Relaxed)))
    }

    /// From now on, for every handle sharing it.
    pub fn set(&self, d: std::time::Duration) {
        self.0.store(
            u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// A handle on the namespace's rtnetlink socket.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
    lifetime: Lifetime,
}

impl Netlink {
    /// Connects and subscribes to link and address changes (RTNLGRP_LINK, *_IFADDR): the
    /// kernel tells us when an interface goes up, down or away, and when an address comes or
    /// goes, whoever did it.
    pub fn connect_with_events() -> Result<(Netlink, NetEvents), NetlinkError> {
        use rtnetlink::MulticastGroup;
        let (mut conn, handle, messages) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ])?;
        // Removing a link with a thousand addresses sends a thousand events at once. The
        // default buffer (rmem_default) holds a few hundred; beyond it the kernel drops
        // events, and with them the acknowledgements of requests on this socket.
        {
            use netlink_sys::AsyncSocket;
            use std::os::fd::AsRawFd;
            let fd = conn.socket_mut().socket_mut().as_raw_fd();
            let size: libc::c_int = EVENT_BUFFER;
            // SAFETY: a valid socket descriptor, an int option of the right size.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                tracing::warn!(error = %io::Error::last_os_error(), "cannot enlarge the netlink event buffer");
            }
        }
        tokio::spawn(conn);
        Ok((
            Netlink {
                handle,
                lifetime: Lifetime::default(),
            },
            NetEvents { messages },
        ))
    }

    /// A second connection for requests only (the data plane's, so its batches never queue
    /// behind the agent's reads).
    pub fn connect() -> Result<Netlink, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Netlink {
            handle,
            lifetime: Lifetime::default(),
        })
    }

    /// This handle binding and renewing with `lifetime` (shared with another handle).
    pub fn sharing(mut self, lifetime: &Lifetime) -> Netlink {
        self.lifetime = lifetime.clone();
        self
    }

    /// The lifetime addresses get when this handle binds or renews them.
    pub fn lifetime(&self) -> &Lifetime {
        &self.lifetime
    }

    pub async fn links(&self) -> Result<Vec<Link>, NetlinkError> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(request_error)?;
        Ok(msgs.iter().map(link_of).collect())
    }

    pub async fn link_by_name(&self, name: &str) -> Result<Link, NetlinkError> {
        self.links()
            .await?
            .into_iter()
            .find(|l| l.name == name)
            .ok_or_else(|| NetlinkError::NoSuchInterface(name.to_string()))
    }

    pub async fn link_by_index(&self, index: u32) -> Result<Option<Link>, NetlinkError> {
        Ok(self.links().await?.into_iter().find(|l| l.index == index))
    }

    /// All addresses, or those of one interface.
    pub async fn addresses(&self, index: Option<u32>) -> Result<Vec<Address>, NetlinkError> {
        let mut req = self.handle.address().get();
        if let Some(i) = index {
            req = req.set_link_index_filter(i);
        }
        let msgs: Vec<AddressMessage> = req.execute().try_collect().await.map_err(request_error)?;
        Ok(msgs.iter().filter_map(address_of).collect())
    }

    /// The link-layer addresses the kernel's neighbour tables know (reachable, stale, ...; not
    /// failed or incomplete): (interface, address, MAC).
    pub async fn neighbours(&self) -> Result<Vec<(u32, IpAddr, [u8; 6])>, NetlinkError> {
        use rtnetlink::packet_route::neighbour::{
            NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
        };
        let msgs: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(request_error)?;
        Ok(msgs
            .iter()
            .filter(|m| {
                !matches!(
                    m.header.state,
                    NeighbourState::Failed | NeighbourState::Incomplete | NeighbourState::None
                )
            })
            .filter_map(|m| {
                let mut ip = None;
                let mut mac = None;
                for a in &m.attributes {
                    match a {
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => {
                            ip = Some(IpAddr::V4(*v))
                        }
                        NeighbourAttribute::Destination(NeighbourAddress::Inet6(v)) => {
                            ip = Some(IpAddr::V6(*v))
                        }
                        NeighbourAttribute::LinkLayerAddress(l) => {
                            mac = <[u8; 6]>::try_from(l.as_slice()).ok()
                        }
                        _ => {}
                    }
                }
                Some((m.header.ifindex, ip?, mac?))
            })
            .collect())
    }

    /// Binds a virtual address, marked as ours; IPv6 without duplicate address detection (the
    /// VRRP election already made it unique, and DAD would delay it by a second). It is
    /// deprecated (preferred lifetime 0) and adds no prefix route, so the node's own addresses
    /// and routes stay the source of what the node sends; and it lives [`ADDRESS_LIFETIME`]
    /// unless [`renew_address`](Self::renew_address) extends it, so a dead agent's addresses
    /// go by themselves. `Ok(false)`: it was there already, and the caller must find out whose
    /// it is.
    pub async fn add_address(
        &self,
        index: u32,
        vip: &VirtualAddress,
    ) -> Result<bool, NetlinkError> {
        match self
            .put_address(index, vip, false, self.lifetime.get())
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives an address of ours a fresh [`ADDRESS_LIFETIME`] (and our flags). Only for an
    /// address the caller knows is ours: the kernel would rewrite anyone's.
    pub async fn renew_address(
        &self,
        index: u32,
        vip: &VirtualAddress,
    ) -> Result<(), NetlinkError> {
        self.put_address(index, vip, true, self.lifetime.get())
            .await
    }

    /// Gives an address of ours `lifetime` from now (a previous run's, kept while the
    /// election decides). Only for an address the caller knows is ours.
    pub async fn expire_address_in(
        &self,
        index: u32,
        vip: &VirtualAddress,
        lifetime: std::time::Duration,
    ) -> Result<(), NetlinkError> {
        self.put_address(index, vip, true, lifetime).await
    }

    async fn put_address(
        &self,
        index: u32,
        vip: &VirtualAddress,
        replace: bool,
        lifetime: std::time::Duration,
    ) -> Result<(), NetlinkError> {
        let mut req = self
            .handle
            .address()
            .add(index, vip.address, vip.prefix_len);
        if replace {
            req = req.replace();
        }
        let msg = req.message_mut();
        msg.attributes
            .push(AddressAttribute::Protocol(AddressProtocol::Other(
                ADDRESS_PROTO,
            )));
        let mut flags = AddressFlags::Noprefixroute;
        if vip.address.is_ipv6() {
            flags |= AddressFlags::Nodad;
        }
        msg.attributes.push(AddressAttribute::Flags(flags));
        let mut life = CacheInfo::default();
        life.ifa_preferred = 0;
        life.ifa_valid = lifetime.as_secs().clamp(1, u64::from(u32::MAX)) as u32;
        msg.attributes.push(AddressAttribute::CacheInfo(life));
        req.execute().await.map_err(request_error)
    }

    /// Releases an address. Already gone is success.
    pub async fn del_address(
        &self,
        index: u32,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.prefix_len = prefix_len;
        msg.header.family = match address {
            IpAddr::V4(_) => rtnetlink::packet_route::AddressFamily::Inet,
            IpAddr::V6(_) => rtnetlink::packet_route::AddressFamily::Inet6,
        };
        msg.attributes.push(AddressAttribute::Address(address));
        if address.is_ipv4() {
            msg.attributes.push(AddressAttribute::Local(address));
        }
        match self
            .handle
            .address()
            .del(msg)
            .execute()
            .await
            .map_err(request_error)
        {
            Err(e)
                if matches!(
                    errno(&e),
                    Some(libc::EADDRNOTAVAIL) | Some(libc::ENOENT) | Some(libc::ENODEV)
                ) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Creates (or finds) the macvlan `name` on `parent` with `mac`. Returns its index.
    /// Left down: the caller sets it up once configured, so it sends nothing of its own
    /// first (an IPv6 link-local DAD or MLD frame from the virtual MAC on a backup would pull
    /// the switch's forwarding entry away from the master).
    pub async fn ensure_macvlan(
        &self,
        parent: u32,
        name: &str,
        mac: [u8; 6],
    ) -> Result<u32, NetlinkError> {
        if let Some(l) = self.links().await?.into_iter().find(|l| l.name == name) {
            if l.mac == Some(mac) && l.parent == Some(parent) {
                return Ok(l.index);
            }
            self.delete_link(l.index).await?;
        }
        let msg = LinkMacVlan::new(name, parent, MacVlanMode::Private)
            .address(mac.to_vec())
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(request_error)?;
        Ok(self.link_by_name(name).await?.index)
    }

    /// Creates the macvlan `name` on `parent` with a MAC the kernel picks, left down. Returns
    /// its index and MAC.
    pub async fn create_macvlan(
        &self,
        parent: u32,
        name: &str,
    ) -> Result<(u32, [u8; 6]), NetlinkError> {
        let msg = LinkMacVlan::new(name, parent, MacVlanMode::Private).build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(request_error)?;
        let l = self.link_by_name(name).await?;
        Ok((l.index, l.mac.unwrap_or_default()))
    }

    pub async fn set_down(&self, index: u32) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(index).down().build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(request_error)
    }

    pub async fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(request_error)
    }

    pub async fn delete_link(&self, index: u32) -> Result<(), NetlinkError> {
        match self
            .handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(request_error)
        {
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            other => other,
        }
    }
}

/// A change the kernel announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    Link(Link),
    LinkGone(u32),
    AddressAdded(Address),
    AddressRemoved(Address),
}

/// Link and address changes as the kernel announces them.
pub struct NetEvents {
    messages: futures::channel::mpsc::UnboundedReceiver<(
        rtnetlink::packet_core::NetlinkMessage<rtnetlink::packet_route::RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
}

impl NetEvents {
    /// The next change (`None` when the connection closed).
    pub async fn next(&mut self) -> Option<NetEvent> {
        use futures::StreamExt;
        use rtnetlink::packet_core::NetlinkPayload;
        use rtnetlink::packet_route::RouteNetlinkMessage as M;
        loop {
            let (msg, _) = self.messages.next().await?;
            let NetlinkPayload::InnerMessage(m) = msg.payload else {
                continue;
            };
            let event = match m {
                M::NewLink(m) => NetEvent::Link(link_of(&m)),
                M::DelLink(m) => NetEvent::LinkGone(m.header.index),
                M::NewAddress(m) => match address_of(&m) {
                    Some(a) => NetEvent::AddressAdded(a),
                    None => continue,
                },
                M::DelAddress(m) => match address_of(&m) {
                    Some(a) => NetEvent::AddressRemoved(a),
                    None => continue,
                },
                _ => continue,
            };
            return Some(event);
        }
    }
}

fn link_of(m: &LinkMessage) -> Link {
    let mut link = Link {
        index: m.header.index,
        name: String::new(),
        mac: None,
        mtu: 1500,
        up: m.header.flags.contains(LinkFlags::Up) && m.header.flags.contains(LinkFlags::LowerUp),
        parent: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(mac) if mac.len() == 6 => {
                link.mac = mac.as_slice().try_into().ok()
            }
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Link(p) => link.parent = Some(*p),
            _ => {}
        }
    }
    link
}

fn address_of(m: &AddressMessage) -> Option<Address> {
    let mut address = None;
    let mut local = None;
    let mut proto = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Address(x) => address = Some(*x),
            AddressAttribute::Local(x) => local = Some(*x),
            AddressAttribute::Protocol(p) => proto = Some(u8::from(*p)),
            _ => {}
        }
    }
    // For IPv4 IFA_LOCAL is the interface's own address (IFA_ADDRESS the peer on p2p links).
    Some(Address {
        index: m.header.index,
        address: local.or(address)?,
        prefix_len: m.header.prefix_len,
        proto,
    })
}
