//! The data plane's decisions against [`FakeKernel`]: the real task and workers, a kernel in
//! memory, no root.

use crate::net::netlink::NetEvent;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::kernel::fake::{Call, FakeKernel};
use super::*;
use crate::ids::InstanceId;
use crate::net::netlink::{ADDRESS_PROTO, RENEW_EVERY};

const ETH: u32 = 2;
/// The index the fake gives the first link it makes.
const STANDBY_LINK: u32 = 101;
const KEY: &str = "web/ipv4";

struct Rig {
    kernel: FakeKernel,
    cmds: mpsc::UnboundedSender<DataplaneCmd>,
    engine: mpsc::UnboundedReceiver<EngineCmd>,
    announcer: mpsc::UnboundedReceiver<AnnounceCmd>,
    netlink_errors: Arc<AtomicU64>,
}

impl Rig {
    fn new() -> Rig {
        Rig::inheriting(FakeKernel::default(), Vec::new())
    }

    /// A data plane starting on `kernel`, with `inherited` left by a previous run.
    fn inheriting(kernel: FakeKernel, inherited: Vec<Address>) -> Rig {
        let (cmds, rx) = mpsc::unbounded_channel();
        let (engine_tx, engine) = mpsc::unbounded_channel();
        let (announcer_tx, announcer) = mpsc::unbounded_channel();
        let netlink_errors = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(
            kernel.clone(),
            rx,
            engine_tx,
            announcer_tx,
            netlink_errors.clone(),
            inherited,
        ));
        Rig {
            kernel,
            cmds,
            engine,
            announcer,
            netlink_errors,
        }
    }

    /// Sends a command and lets the data plane (and the tasks it spawns) run it out: the
    /// fake kernel answers at once, so a few rounds of the scheduler suffice.
    async fn send(&self, cmd: DataplaneCmd) {
        self.cmds.send(cmd).unwrap();
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    }

    async fn bind(&self, addresses: &[VirtualAddress]) {
        self.bind_as(InstanceId::nth(1), KEY, addresses).await
    }

    async fn bind_as(&self, id: InstanceId, key: &str, addresses: &[VirtualAddress]) {
        self.send(DataplaneCmd::Bind {
            id,
            key: key.parse().unwrap(),
            ifindex: ETH,
            addresses: addresses.to_vec(),
        })
        .await
    }

    async fn unbind(&self, addresses: &[VirtualAddress]) {
        self.unbind_as(InstanceId::nth(1), addresses).await
    }

    async fn unbind_as(&self, id: InstanceId, addresses: &[VirtualAddress]) {
        self.send(DataplaneCmd::Unbind {
            id,
            ifindex: ETH,
            addresses: addresses.to_vec(),
        })
        .await
    }

    async fn announce(&self, addresses: &[VirtualAddress]) {
        self.send(DataplaneCmd::Announce {
            id: InstanceId::nth(1),
            key: KEY.parse().unwrap(),
            ifindex: ETH,
            mac: [0, 0, 0x5e, 0, 1, 7],
            addresses: addresses.to_vec(),
            garp: GarpConfig::default(),
            burst: true,
        })
        .await
    }

    /// The kernel requests made since the last call (address reads and the renewal task's
    /// lifetime renewals left out).
    fn changes(&self) -> Vec<Call> {
        let mut s = self.kernel.0.lock().unwrap();
        std::mem::take(&mut s.calls)
            .into_iter()
            .filter(|c| !matches!(c, Call::Addresses(_) | Call::Sysctl(..) | Call::Renew(..)))
            .collect()
    }

    /// The lifetime renewals made since the last call (other requests are dropped too).
    fn renewals(&self) -> Vec<Call> {
        let mut s = self.kernel.0.lock().unwrap();
        let mut r: Vec<Call> = std::mem::take(&mut s.calls)
            .into_iter()
            .filter(|c| matches!(c, Call::Renew(..)))
            .collect();
        r.sort_by_key(|c| format!("{c:?}"));
        r
    }

    /// The conflict tracker's latest setting: Some(failing, reason).
    fn fault(&mut self) -> Option<(bool, String)> {
        let mut last = None;
        while let Ok(cmd) = self.engine.try_recv() {
            if let EngineCmd::Tracker {
                key,
                name,
                failing,
                reason,
                ..
            } = cmd
            {
                assert_eq!(
                    (key.to_string().as_str(), name.as_str()),
                    (KEY, CONFLICT_TRACKER)
                );
                last = Some((failing, reason));
            }
        }
        last
    }

    fn announcements(&mut self) -> Vec<AnnounceCmd> {
        std::iter::from_fn(|| self.announcer.try_recv().ok()).collect()
    }
}

fn v4(last: u8) -> VirtualAddress {
    VirtualAddress {
        address: IpAddr::from([192, 0, 2, last]),
        prefix_len: 24,
    }
}

fn v6(n: u16) -> VirtualAddress {
    VirtualAddress {
        address: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)),
        prefix_len: 64,
    }
}

fn many_v6() -> Vec<VirtualAddress> {
    (1..=STANDBY_MIN as u16).map(v6).collect()
}

fn sorted(mut calls: Vec<Call>) -> Vec<Call> {
    calls.sort_by_key(|c| format!("{c:?}"));
    calls
}

#[tokio::test]
async fn a_foreign_address_is_a_conflict_and_is_never_deleted() {
    let mut rig = Rig::new();
    rig.kernel.foreign(ETH, v4(1).address, 24);
    rig.bind(&[v4(1), v4(2)]).await;
    assert_eq!(
        sorted(rig.changes()),
        vec![Call::Add(ETH, v4(1).address), Call::Add(ETH, v4(2).address)]
    );
    let (failing, reason) = rig.fault().expect("a fault");
    assert!(failing);
    assert_eq!(
        reason,
        "cannot bind: 192.0.2.1 is already on the interface and was not added by kube-vrrp"
    );
    rig.unbind(&[v4(1), v4(2)]).await;
    assert_eq!(rig.changes(), vec![Call::Del(ETH, v4(2).address)]);
    assert!(rig.kernel.is_bound(ETH, v4(1).address));
}

#[tokio::test]
async fn a_conflict_clears_when_the_other_address_goes() {
    let mut rig = Rig::new();
    rig.kernel.foreign(ETH, v4(1).address, 24);
    rig.bind(&[v4(1)]).await;
    assert_eq!(rig.fault().map(|f| f.0), Some(true));
    let gone = rig.kernel.remove(ETH, v4(1).address);
    rig.send(DataplaneCmd::Event(NetEvent::AddressRemoved(gone)))
        .await;
    assert_eq!(rig.fault(), Some((false, String::new())));
    // Not ours: not put back.
    assert!(!rig.kernel.is_bound(ETH, v4(1).address));
}

#[tokio::test]
async fn an_address_change_binds_before_it_releases_and_only_the_difference() {
    let rig = Rig::new();
    rig.bind(&[v4(1), v4(2)]).await;
    rig.changes();
    rig.bind(&[v4(3)]).await;
    rig.unbind(&[v4(1)]).await;
    assert_eq!(
        rig.changes(),
        vec![Call::Add(ETH, v4(3).address), Call::Del(ETH, v4(1).address)]
    );
    assert!(rig.kernel.is_bound(ETH, v4(2).address));
}

#[tokio::test]
async fn an_address_of_ours_removed_by_someone_else_is_put_back_and_announced() {
    let mut rig = Rig::new();
    rig.bind(&[v4(1)]).await;
    rig.announce(&[v4(1)]).await;
    rig.announcements();
    rig.changes();
    let gone = rig.kernel.remove(ETH, v4(1).address);
    rig.send(DataplaneCmd::Event(NetEvent::AddressRemoved(gone)))
        .await;
    assert_eq!(rig.changes(), vec![Call::Add(ETH, v4(1).address)]);
    assert!(matches!(
        rig.announcements().as_slice(),
        [AnnounceCmd::Once { ifindex: ETH, address, .. }] if *address == v4(1).address
    ));
    let restored = std::iter::from_fn(|| rig.engine.try_recv().ok())
        .any(|c| matches!(c, EngineCmd::Restored { key, .. } if key.to_string() == KEY));
    assert!(restored);
}

#[tokio::test]
async fn a_marked_address_nothing_holds_is_removed_and_a_released_one_stays_gone() {
    let rig = Rig::new();
    rig.bind(&[v4(1)]).await;
    rig.unbind(&[v4(1)]).await;
    // Our own delete event: not a loss.
    let gone = Address {
        index: ETH,
        address: v4(1).address,
        prefix_len: 24,
        proto: Some(ADDRESS_PROTO),
    };
    rig.send(DataplaneCmd::Event(NetEvent::AddressRemoved(gone.clone())))
        .await;
    rig.changes();
    rig.send(DataplaneCmd::Event(NetEvent::AddressAdded(gone)))
        .await;
    assert_eq!(rig.changes(), vec![Call::Del(ETH, v4(1).address)]);
}

#[tokio::test]
async fn the_standby_link_goes_up_on_master_and_down_on_backup() {
    let mut rig = Rig::new();
    rig.send(DataplaneCmd::Stage {
        id: InstanceId::nth(1),
        key: KEY.parse().unwrap(),
        ifindex: ETH,
        addresses: many_v6(),
    })
    .await;
    let calls = rig.changes();
    assert_eq!(
        calls[0],
        Call::CreateMacvlan(ETH, standby_name(InstanceId::nth(1)))
    );
    assert_eq!(calls.len(), 1 + STANDBY_MIN);
    assert!(
        calls[1..]
            .iter()
            .all(|c| matches!(c, Call::Add(STANDBY_LINK, _)))
    );
    assert_eq!(rig.kernel.link_up(STANDBY_LINK), Some(false));

    // Master: the link up, only the others bound.
    let mut all = many_v6();
    all.push(v4(1));
    rig.bind(&all).await;
    assert_eq!(
        rig.changes(),
        vec![Call::SetUp(STANDBY_LINK), Call::Add(ETH, v4(1).address)]
    );
    rig.announce(&all).await;
    let ids: Vec<ScheduleId> = rig
        .announcements()
        .into_iter()
        .filter_map(|a| match a {
            AnnounceCmd::Start { id, addresses, .. } => Some((id, addresses.len())),
            _ => None,
        })
        .map(|(id, n)| {
            let expected = match id {
                ScheduleId::StandbyLink(_) => STANDBY_MIN,
                ScheduleId::Instance(..) => 1,
            };
            assert_eq!(n, expected);
            id
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            ScheduleId::StandbyLink(InstanceId::nth(1)),
            ScheduleId::Instance(InstanceId::nth(1), ETH)
        ]
    );

    // Backup: the link down, its addresses kept for next time.
    rig.unbind(&all).await;
    assert_eq!(
        rig.changes(),
        vec![Call::SetDown(STANDBY_LINK), Call::Del(ETH, v4(1).address)]
    );
    assert!(rig.kernel.is_bound(STANDBY_LINK, v6(1).address));
    let stops: Vec<ScheduleId> = rig
        .announcements()
        .into_iter()
        .filter_map(|a| match a {
            AnnounceCmd::Stop { id } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(
        stops,
        vec![
            ScheduleId::Instance(InstanceId::nth(1), ETH),
            ScheduleId::StandbyLink(InstanceId::nth(1))
        ]
    );

    // Forgotten: the link goes with its addresses.
    rig.send(DataplaneCmd::Forget {
        id: InstanceId::nth(1),
    })
    .await;
    assert_eq!(rig.changes(), vec![Call::DeleteLink(STANDBY_LINK)]);
}

#[tokio::test]
async fn a_standby_link_that_cannot_go_up_is_replaced_by_the_usual_bind() {
    let rig = Rig::new();
    rig.send(DataplaneCmd::Stage {
        id: InstanceId::nth(1),
        key: KEY.parse().unwrap(),
        ifindex: ETH,
        addresses: many_v6(),
    })
    .await;
    rig.changes();
    rig.kernel.stick(STANDBY_LINK);
    rig.bind(&many_v6()).await;
    let calls = rig.changes();
    assert_eq!(
        calls[..2],
        [Call::SetUp(STANDBY_LINK), Call::DeleteLink(STANDBY_LINK)]
    );
    assert_eq!(calls.len(), 2 + STANDBY_MIN);
    assert!(calls[2..].iter().all(|c| matches!(c, Call::Add(ETH, _))));
    assert_eq!(rig.netlink_errors.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn the_standby_link_follows_an_excluded_address_change() {
    let rig = Rig::new();
    rig.send(DataplaneCmd::Stage {
        id: InstanceId::nth(1),
        key: KEY.parse().unwrap(),
        ifindex: ETH,
        addresses: many_v6(),
    })
    .await;
    rig.changes();
    let mut wanted = many_v6();
    wanted[0] = v6(1000);
    rig.send(DataplaneCmd::Restage {
        id: InstanceId::nth(1),
        key: KEY.parse().unwrap(),
        ifindex: ETH,
        addresses: wanted,
        master: false,
    })
    .await;
    assert_eq!(
        rig.changes(),
        vec![
            Call::Del(STANDBY_LINK, v6(1).address),
            Call::Add(STANDBY_LINK, v6(1000).address)
        ]
    );
}

#[tokio::test]
async fn a_master_gets_its_standby_link_when_it_leaves_master() {
    let rig = Rig::new();
    rig.bind(&[v4(1)]).await;
    rig.changes();
    rig.send(DataplaneCmd::Restage {
        id: InstanceId::nth(1),
        key: KEY.parse().unwrap(),
        ifindex: ETH,
        addresses: many_v6(),
        master: true,
    })
    .await;
    assert!(rig.changes().is_empty());
    rig.unbind(&[v4(1)]).await;
    let calls = rig.changes();
    assert_eq!(
        calls[..2],
        [
            Call::Del(ETH, v4(1).address),
            Call::CreateMacvlan(ETH, standby_name(InstanceId::nth(1)))
        ]
    );
    assert_eq!(calls.len(), 2 + STANDBY_MIN);
}

#[tokio::test]
async fn a_failed_bind_is_a_fault_and_a_netlink_error() {
    let mut rig = Rig::new();
    rig.kernel.fail(ETH);
    rig.bind(&[v4(1)]).await;
    let (failing, reason) = rig.fault().expect("a fault");
    assert!(failing);
    assert!(reason.starts_with("cannot bind: "), "{reason}");
    assert_eq!(rig.netlink_errors.load(Ordering::Relaxed), 1);
    // Not held: nothing to release.
    rig.changes();
    rig.unbind(&[v4(1)]).await;
    assert!(rig.changes().is_empty());
}

#[tokio::test]
async fn release_all_deletes_everything_ours_and_answers() {
    let rig = Rig::new();
    rig.kernel.foreign(ETH, v4(9).address, 24);
    rig.bind(&[v4(1), v4(9)]).await;
    rig.changes();
    let (tx, rx) = oneshot::channel();
    rig.send(DataplaneCmd::ReleaseAll(tx)).await;
    rx.await.unwrap();
    assert_eq!(rig.changes(), vec![Call::Del(ETH, v4(1).address)]);
    assert!(rig.kernel.is_bound(ETH, v4(9).address));
}

#[test]
fn bind_outcomes_and_reasons() {
    let refused = || crate::net::netlink::NetlinkError::Request("refused".into());
    let (existed, failed) = split_outcomes(vec![
        (v4(1), Ok(true)),
        (v4(2), Ok(false)),
        (v4(3), Err(refused())),
    ]);
    assert_eq!(existed, vec![v4(2)]);
    assert_eq!(failed.len(), 1);
    assert_eq!(failure_reason(&[]), None);
    assert_eq!(
        failure_reason(&[
            (v4(1), "a".into()),
            (v4(2), "b".into()),
            (v4(3), "c".into())
        ])
        .as_deref(),
        Some("a (and 2 more)")
    );
    let ours = Address {
        index: ETH,
        address: v4(2).address,
        prefix_len: 24,
        proto: Some(ADDRESS_PROTO),
    };
    let theirs = Address {
        address: v4(3).address,
        proto: None,
        ..ours.clone()
    };
    assert_eq!(foreign(&[v4(2), v4(3)], &[ours, theirs]), vec![v4(3)]);
}

fn ours(index: u32, vip: VirtualAddress) -> Address {
    Address {
        index,
        address: vip.address,
        prefix_len: vip.prefix_len,
        proto: Some(ADDRESS_PROTO),
    }
}

#[tokio::test]
async fn a_vip_two_instances_hold_stays_until_the_last_lets_go() {
    // The old VirtualIP still handing over while its successor on the same address binds.
    let rig = Rig::new();
    rig.bind_as(InstanceId::nth(1), "old/ipv4", &[v4(50)]).await;
    rig.bind_as(InstanceId::nth(7), "new/ipv4", &[v4(50)]).await;
    rig.changes();
    rig.unbind_as(InstanceId::nth(1), &[v4(50)]).await;
    assert_eq!(rig.changes(), vec![], "the successor still holds it");
    assert!(rig.kernel.is_bound(ETH, v4(50).address));
    // The successor is removed without unbinding (deleted while backup, or before its
    // handover ran): its worker's end releases it. Nothing is left answering.
    rig.send(DataplaneCmd::Forget {
        id: InstanceId::nth(7),
    })
    .await;
    assert_eq!(rig.changes(), vec![Call::Del(ETH, v4(50).address)]);
    assert!(!rig.kernel.is_bound(ETH, v4(50).address));
}

#[tokio::test]
async fn a_forgotten_instance_takes_its_addresses_with_it() {
    let rig = Rig::new();
    rig.bind(&[v4(1), v4(2)]).await;
    rig.changes();
    rig.send(DataplaneCmd::Forget {
        id: InstanceId::nth(1),
    })
    .await;
    assert_eq!(
        sorted(rig.changes()),
        vec![Call::Del(ETH, v4(1).address), Call::Del(ETH, v4(2).address)]
    );
}

#[tokio::test]
async fn a_predecessors_address_is_kept_bound_by_a_master_and_dropped_by_a_backup() {
    let kernel = FakeKernel::default();
    kernel.foreign(ETH, v4(1).address, 24);
    kernel.foreign(ETH, v4(2).address, 24);
    let left: Vec<Address> = [v4(1), v4(2)].map(|v| ours(ETH, v)).to_vec();
    for a in &left {
        kernel
            .0
            .lock()
            .unwrap()
            .bound
            .insert((ETH, a.address), a.clone());
    }
    let rig = Rig::inheriting(kernel, left);
    // Nothing is deleted at start: the addresses keep answering while the election decides.
    assert_eq!(rig.changes(), vec![]);
    // Instance 1 becomes master of v4(1): it is there and ours, so it is kept and renewed at
    // once, never deleted and added again.
    rig.bind(&[v4(1)]).await;
    let calls: Vec<Call> = std::mem::take(&mut rig.kernel.0.lock().unwrap().calls)
        .into_iter()
        .filter(|c| !matches!(c, Call::Addresses(_)))
        .collect();
    assert_eq!(
        calls,
        vec![
            Call::Add(ETH, v4(1).address),
            Call::Renew(ETH, v4(1).address)
        ]
    );
    // Instance 2 learns another node is master of v4(2): it lets go, and the address goes.
    rig.unbind_as(InstanceId::nth(2), &[v4(2)]).await;
    assert_eq!(rig.changes(), vec![Call::Del(ETH, v4(2).address)]);
    assert!(rig.kernel.is_bound(ETH, v4(1).address));
}

#[tokio::test(start_paused = true)]
async fn lifetimes_are_renewed_for_what_live_instances_hold_and_nothing_else() {
    let kernel = FakeKernel::default();
    // A predecessor's address nobody binds: not renewed, it expires by itself.
    kernel
        .0
        .lock()
        .unwrap()
        .bound
        .insert((ETH, v4(9).address), ours(ETH, v4(9)));
    let rig = Rig::inheriting(kernel, vec![ours(ETH, v4(9))]);
    // Someone else's address: never renewed (the kernel's replace would make it ours).
    rig.kernel.foreign(ETH, v4(3).address, 24);
    rig.bind(&[v4(1), v4(2), v4(3)]).await;
    rig.bind_as(InstanceId::nth(7), "other/ipv4", &[v4(4)])
        .await;
    tokio::time::sleep(RENEW_EVERY * 2 + std::time::Duration::from_millis(10)).await;
    let renewed = rig.renewals();
    let once: Vec<Call> = [v4(1), v4(2), v4(4)]
        .map(|v| Call::Renew(ETH, v.address))
        .to_vec();
    assert_eq!(renewed.len(), 6, "two rounds: {renewed:?}");
    for c in &once {
        assert_eq!(renewed.iter().filter(|r| *r == c).count(), 2, "{c:?}");
    }
    assert!(!rig.kernel.0.lock().unwrap().bound[&(ETH, v4(3).address)].is_ours());
    // Instance 7 goes: its address is deleted and no longer renewed.
    rig.send(DataplaneCmd::Forget {
        id: InstanceId::nth(7),
    })
    .await;
    rig.renewals();
    tokio::time::sleep(RENEW_EVERY).await;
    let renewed = rig.renewals();
    assert!(
        !renewed.contains(&Call::Renew(ETH, v4(4).address)),
        "{renewed:?}"
    );
    assert!(
        renewed.contains(&Call::Renew(ETH, v4(1).address)),
        "{renewed:?}"
    );
}
