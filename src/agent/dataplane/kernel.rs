//! The kernel as the data plane sees it: the few requests it makes (addresses, standby links,
//! their sysctls), behind one trait. The real one is rtnetlink ([`Netlink`]); tests use
//! [`FakeKernel`](fake::FakeKernel), which records every request and answers from a table.

use std::future::Future;

use crate::net::announce::Mac;
use crate::net::netlink::{Address, Netlink, NetlinkError};
use crate::vrrp::VirtualAddress;

/// What the data plane asks of the kernel.
pub(crate) trait Kernel: Send + Sync + 'static {
    /// All addresses, or those of one interface.
    fn addresses(
        &self,
        index: Option<u32>,
    ) -> impl Future<Output = Result<Vec<Address>, NetlinkError>> + Send;
    /// Binds a virtual address, marked as ours. `Ok(false)`: it was there already.
    fn add_address(
        &self,
        index: u32,
        vip: VirtualAddress,
    ) -> impl Future<Output = Result<bool, NetlinkError>> + Send;
    /// Gives an address of ours a fresh lifetime (only for one known to be ours).
    fn renew_address(
        &self,
        index: u32,
        vip: VirtualAddress,
    ) -> impl Future<Output = Result<(), NetlinkError>> + Send;
    /// Releases an address; already gone is success.
    fn del_address(
        &self,
        index: u32,
        vip: VirtualAddress,
    ) -> impl Future<Output = Result<(), NetlinkError>> + Send;
    /// Creates a macvlan on `parent` (left down) and returns its index and MAC.
    fn create_macvlan(
        &self,
        parent: u32,
        name: &str,
    ) -> impl Future<Output = Result<(u32, Mac), NetlinkError>> + Send;
    fn set_up(&self, index: u32) -> impl Future<Output = Result<(), NetlinkError>> + Send;
    fn set_down(&self, index: u32) -> impl Future<Output = Result<(), NetlinkError>> + Send;
    /// Removes a link (with its addresses); already gone is success.
    fn delete_link(&self, index: u32) -> impl Future<Output = Result<(), NetlinkError>> + Send;
    /// Writes `/proc/sys/<path>` (a failure is logged, not returned).
    fn set_sysctl(&self, path: &str, value: &str);
    /// The lifetime addresses get when bound or renewed, and a new one from now on.
    fn lifetime(&self) -> std::time::Duration;
    fn set_lifetime(&self, d: std::time::Duration);
}

impl Kernel for Netlink {
    async fn addresses(&self, index: Option<u32>) -> Result<Vec<Address>, NetlinkError> {
        Netlink::addresses(self, index).await
    }

    async fn add_address(&self, index: u32, vip: VirtualAddress) -> Result<bool, NetlinkError> {
        Netlink::add_address(self, index, &vip).await
    }

    async fn renew_address(&self, index: u32, vip: VirtualAddress) -> Result<(), NetlinkError> {
        Netlink::renew_address(self, index, &vip).await
    }

    async fn del_address(&self, index: u32, vip: VirtualAddress) -> Result<(), NetlinkError> {
        Netlink::del_address(self, index, vip.address, vip.prefix_len).await
    }

    async fn create_macvlan(&self, parent: u32, name: &str) -> Result<(u32, Mac), NetlinkError> {
        Netlink::create_macvlan(self, parent, name).await
    }

    async fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        Netlink::set_up(self, index).await
    }

    async fn set_down(&self, index: u32) -> Result<(), NetlinkError> {
        Netlink::set_down(self, index).await
    }

    async fn delete_link(&self, index: u32) -> Result<(), NetlinkError> {
        Netlink::delete_link(self, index).await
    }

    fn set_sysctl(&self, path: &str, value: &str) {
        crate::net::sysctl::set(path, value);
    }

    fn lifetime(&self) -> std::time::Duration {
        Netlink::lifetime(self).get()
    }

    fn set_lifetime(&self, d: std::time::Duration) {
        Netlink::lifetime(self).set(d);
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A kernel in memory: it records every request in order, keeps the addresses and links it
    //! was asked to make, and fails what a test tells it to.

    use std::collections::{BTreeMap, HashSet};
    use std::net::IpAddr;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::net::netlink::ADDRESS_PROTO;

    /// One request the data plane made.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Call {
        Addresses(Option<u32>),
        Add(u32, IpAddr),
        Renew(u32, IpAddr),
        Del(u32, IpAddr),
        CreateMacvlan(u32, String),
        SetUp(u32),
        SetDown(u32),
        DeleteLink(u32),
        Sysctl(String, String),
    }

    #[derive(Default)]
    pub(crate) struct State {
        pub calls: Vec<Call>,
        /// What is bound: (interface, address) → address as `addresses` reports it.
        pub bound: BTreeMap<(u32, IpAddr), Address>,
        /// Links made by `create_macvlan`, and whether they are up.
        pub links: BTreeMap<u32, bool>,
        pub next_link: u32,
        /// Address adds on these interfaces fail.
        pub failing: HashSet<u32>,
        /// Setting these links up or down fails.
        pub stuck: HashSet<u32>,
        /// The lifetime binds and renewals get (none: the default).
        pub lifetime: Option<std::time::Duration>,
    }

    /// The recording fake kernel (cheap to clone: clones share one state).
    #[derive(Clone, Default)]
    pub(crate) struct FakeKernel(pub Arc<Mutex<State>>);

    fn refused() -> NetlinkError {
        NetlinkError::Io(std::io::Error::from_raw_os_error(libc::EPERM))
    }

    impl FakeKernel {
        /// Someone else's address already on `index`.
        pub(crate) fn foreign(&self, index: u32, address: IpAddr, prefix_len: u8) {
            self.0.lock().unwrap().bound.insert(
                (index, address),
                Address {
                    index,
                    address,
                    prefix_len,
                    proto: None,
                },
            );
        }

        /// Someone else removes an address behind our back; returns it as the event names it.
        pub(crate) fn remove(&self, index: u32, address: IpAddr) -> Address {
            self.0
                .lock()
                .unwrap()
                .bound
                .remove(&(index, address))
                .expect("bound")
        }

        /// Address adds on `index` fail from now on.
        pub(crate) fn fail(&self, index: u32) {
            self.0.lock().unwrap().failing.insert(index);
        }

        /// Setting link `index` up or down fails from now on.
        pub(crate) fn stick(&self, index: u32) {
            self.0.lock().unwrap().stuck.insert(index);
        }

        pub(crate) fn is_bound(&self, index: u32, address: IpAddr) -> bool {
            self.0.lock().unwrap().bound.contains_key(&(index, address))
        }

        pub(crate) fn link_up(&self, index: u32) -> Option<bool> {
            self.0.lock().unwrap().links.get(&index).copied()
        }

        fn record(&self, call: Call) -> std::sync::MutexGuard<'_, State> {
            let mut s = self.0.lock().unwrap();
            s.calls.push(call);
            s
        }

        fn set_link(&self, call: Call, index: u32, up: bool) -> Result<(), NetlinkError> {
            let mut s = self.record(call);
            if s.stuck.contains(&index) {
                return Err(refused());
            }
            s.links.insert(index, up);
            Ok(())
        }
    }

    impl Kernel for FakeKernel {
        async fn addresses(&self, index: Option<u32>) -> Result<Vec<Address>, NetlinkError> {
            let s = self.record(Call::Addresses(index));
            Ok(s.bound
                .values()
                .filter(|a| index.is_none_or(|i| a.index == i))
                .cloned()
                .collect())
        }

        async fn add_address(&self, index: u32, v: VirtualAddress) -> Result<bool, NetlinkError> {
            let mut s = self.record(Call::Add(index, v.address));
            if s.failing.contains(&index) {
                return Err(refused());
            }
            if s.bound.contains_key(&(index, v.address)) {
                return Ok(false);
            }
            s.bound.insert(
                (index, v.address),
                Address {
                    index,
                    address: v.address,
                    prefix_len: v.prefix_len,
                    proto: Some(ADDRESS_PROTO),
                },
            );
            Ok(true)
        }

        async fn renew_address(&self, index: u32, v: VirtualAddress) -> Result<(), NetlinkError> {
            let mut s = self.record(Call::Renew(index, v.address));
            // As the kernel does: a replace rewrites whatever address is there (the caller
            // must only renew its own; tests look for foreign ones turned ours).
            let a = s.bound.entry((index, v.address)).or_insert(Address {
                index,
                address: v.address,
                prefix_len: v.prefix_len,
                proto: None,
            });
            a.proto = Some(ADDRESS_PROTO);
            Ok(())
        }

        async fn del_address(&self, index: u32, v: VirtualAddress) -> Result<(), NetlinkError> {
            self.record(Call::Del(index, v.address))
                .bound
                .remove(&(index, v.address));
            Ok(())
        }

        async fn create_macvlan(
            &self,
            parent: u32,
            name: &str,
        ) -> Result<(u32, Mac), NetlinkError> {
            let mut s = self.record(Call::CreateMacvlan(parent, name.to_string()));
            s.next_link += 1;
            let index = 100 + s.next_link;
            s.links.insert(index, false);
            Ok((index, [2, 0, 0, 0, 0, index as u8]))
        }

        async fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
            self.set_link(Call::SetUp(index), index, true)
        }

        async fn set_down(&self, index: u32) -> Result<(), NetlinkError> {
            self.set_link(Call::SetDown(index), index, false)
        }

        async fn delete_link(&self, index: u32) -> Result<(), NetlinkError> {
            let mut s = self.record(Call::DeleteLink(index));
            s.links.remove(&index);
            s.bound.retain(|(link, _), _| *link != index);
            Ok(())
        }

        fn set_sysctl(&self, path: &str, value: &str) {
            drop(self.record(Call::Sysctl(path.to_string(), value.to_string())));
        }

        fn lifetime(&self) -> std::time::Duration {
            self.0
                .lock()
                .unwrap()
                .lifetime
                .unwrap_or(crate::model::host::ADDRESS_LIFETIME)
        }

        fn set_lifetime(&self, d: std::time::Duration) {
            self.0.lock().unwrap().lifetime = Some(d);
        }
    }
}
