//! One test per transition and rule of RFC 5798 §6.4 (and RFC 3768 §6.4 for v2), the timer
//! formulas of §6.1, and the receive checks of §7.1, on one instance and virtual time.

use std::net::IpAddr;
use std::time::Duration;

use kube_vrrp::vrrp::instance::{NewMasterReason, PeerMaster};
use kube_vrrp::vrrp::{
    Action, Addresses, Advertisement, Authentication, DecodeError, Input, Instance, InstanceConfig,
    Reason, State, TimerKind, Version,
};

const ME: &str = "198.51.100.12";
const HIGHER_ADDR: &str = "198.51.100.13";
const LOWER_ADDR: &str = "198.51.100.11";
const VIP: &str = "198.51.100.50/24";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn config(version: Version, priority: u8, interval: Duration) -> InstanceConfig {
    let mut c = InstanceConfig::new(51, ip(ME), vec![VIP.parse().unwrap()]);
    c.version = version;
    c.priority = priority;
    c.advert_interval = interval;
    c.validate().unwrap();
    c
}

fn v3(priority: u8) -> InstanceConfig {
    config(Version::V3, priority, ms(100))
}

fn advert(c: &InstanceConfig, priority: u8) -> Advertisement {
    Advertisement {
        version: c.version,
        vrid: c.vrid,
        priority,
        interval_cs: c.interval_cs(),
        addresses: Addresses::from_ip_addrs(
            c.family(),
            &c.addresses.iter().map(|v| v.address).collect::<Vec<_>>(),
        ),
        auth: c.authentication,
    }
}

fn rx(c: &InstanceConfig, from: &str, priority: u8) -> Input {
    Input::Advertisement {
        src: ip(from),
        ttl: 255,
        advertisement: advert(c, priority),
    }
}

fn started(c: InstanceConfig) -> Instance {
    let mut i = Instance::new(c);
    i.handle(Duration::ZERO, Input::Startup);
    i
}

/// A backup that became master at `at` (its master down timer ran out).
fn master(c: InstanceConfig) -> (Instance, Duration) {
    let mut i = started(c);
    let (_, at) = i.timer().unwrap();
    i.handle(at, Input::TimerExpired(TimerKind::MasterDown));
    assert_eq!(i.state(), State::Master);
    (i, at)
}

fn sent(actions: &[Action]) -> Vec<u8> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendAdvertisement(adv) => Some(adv.priority),
            _ => None,
        })
        .collect()
}

fn transition(actions: &[Action]) -> Option<(State, State, Reason)> {
    actions.iter().find_map(|a| match a {
        Action::StateChanged(t) => Some((t.from, t.to, t.reason.clone())),
        _ => None,
    })
}

// ---- §6.1 timer formulas ----

#[test]
fn v2_one_second_priority_100_master_down_interval_is_3_609s() {
    let i = Instance::new(config(Version::V2, 100, Duration::from_secs(1)));
    assert_eq!(i.skew_time(), Duration::from_nanos(609_375_000));
    assert_eq!(
        i.master_down_interval(),
        Duration::from_nanos(3_609_375_000)
    );
}

#[test]
fn v3_100ms_priority_200_master_down_interval_is_0_322s() {
    // 10 centiseconds: Skew = (256-200)*100ms/256 = 21.875 ms; 3*100 ms + skew = 321.875 ms.
    let i = Instance::new(config(Version::V3, 200, ms(100)));
    assert_eq!(i.skew_time(), Duration::from_micros(21_875));
    assert_eq!(i.master_down_interval(), Duration::from_micros(321_875));
}

#[test]
fn v3_skew_scales_with_the_interval_v2_does_not() {
    let v3_slow = Instance::new(config(Version::V3, 100, Duration::from_secs(1)));
    assert_eq!(v3_slow.skew_time(), Duration::from_nanos(609_375_000));
    let v3_fast = Instance::new(config(Version::V3, 100, ms(20)));
    assert_eq!(v3_fast.skew_time(), Duration::from_nanos(12_187_500));
    assert_eq!(
        v3_fast.master_down_interval(),
        Duration::from_nanos(72_187_500)
    );
    let v2_slow = Instance::new(config(Version::V2, 100, Duration::from_secs(3)));
    assert_eq!(v2_slow.skew_time(), Duration::from_nanos(609_375_000));
    // Higher priority, shorter skew: the best backup wins the race.
    assert!(Instance::new(v3(254)).skew_time() < Instance::new(v3(1)).skew_time());
}

// ---- §6.4.1 Initialize ----

#[test]
fn startup_non_owner_becomes_backup_and_arms_master_down_timer() {
    let mut i = Instance::new(v3(100));
    let a = i.handle(ms(5), Input::Startup);
    let mdi = i.master_down_interval();
    assert_eq!(
        a,
        vec![
            Action::ArmTimer {
                kind: TimerKind::MasterDown,
                at: ms(5) + mdi
            },
            Action::StateChanged(i.last_transition().unwrap().clone()),
        ]
    );
    assert_eq!(
        transition(&a),
        Some((State::Initialize, State::Backup, Reason::Startup))
    );
    assert_eq!(i.master_adver_interval(), ms(100));
}

#[test]
fn startup_owner_becomes_master_at_once() {
    let c = v3(255);
    let mut i = Instance::new(c.clone());
    let a = i.handle(ms(0), Input::Startup);
    assert_eq!(
        a[0],
        Action::AddAddresses {
            addresses: c.addresses.clone(),
            accept: true
        }
    );
    assert_eq!(a[1], Action::SendAdvertisement(advert(&c, 255)));
    assert_eq!(a[2], Action::Announce(c.addresses.clone()));
    assert_eq!(
        a[3],
        Action::ArmTimer {
            kind: TimerKind::Advertisement,
            at: ms(100)
        }
    );
    assert_eq!(
        transition(&a),
        Some((State::Initialize, State::Master, Reason::AddressOwner))
    );
    assert_eq!(i.counters().master_transitions, 1);
    assert_eq!(i.counters().new_master_reason, NewMasterReason::Priority);
}

#[test]
fn startup_twice_is_one_startup() {
    let mut i = started(v3(100));
    assert!(i.handle(ms(1), Input::Startup).is_empty());
}

// ---- §6.4.2 Backup ----

#[test]
fn backup_shutdown_cancels_the_timer() {
    let mut i = started(v3(100));
    let a = i.handle(ms(10), Input::Shutdown);
    assert_eq!(a[0], Action::CancelTimer);
    assert_eq!(
        transition(&a),
        Some((State::Backup, State::Initialize, Reason::Shutdown))
    );
    assert!(sent(&a).is_empty(), "a backup sends nothing on shutdown");
}

#[test]
fn backup_becomes_master_when_the_master_down_timer_expires() {
    let c = v3(100);
    let mut i = started(c.clone());
    let (kind, at) = i.timer().unwrap();
    assert_eq!(
        (kind, at),
        (TimerKind::MasterDown, i.master_down_interval())
    );
    let a = i.handle(at, Input::TimerExpired(TimerKind::MasterDown));
    assert_eq!(
        a[0],
        Action::AddAddresses {
            addresses: c.addresses.clone(),
            accept: false
        }
    );
    assert_eq!(sent(&a), vec![100]);
    assert!(a.contains(&Action::Announce(c.addresses.clone())));
    assert!(a.contains(&Action::ArmTimer {
        kind: TimerKind::Advertisement,
        at: at + ms(100)
    }));
    let (_, _, reason) = transition(&a).unwrap();
    assert_eq!(
        reason,
        Reason::MasterDown {
            interval: i.master_down_interval()
        }
    );
    assert_eq!(
        reason.to_string(),
        "master down timer expired (no advertisement for 0.361s)"
    );
    assert_eq!(
        i.counters().new_master_reason,
        NewMasterReason::MasterNoResponse
    );
}

#[test]
fn backup_resets_the_master_down_timer_on_an_equal_or_higher_advert() {
    let c = v3(100);
    let mut i = started(c.clone());
    for (t, prio, from) in [(200, 100, LOWER_ADDR), (300, 150, HIGHER_ADDR)] {
        let a = i.handle(ms(t), rx(&c, from, prio));
        assert_eq!(
            a,
            vec![Action::ArmTimer {
                kind: TimerKind::MasterDown,
                at: ms(t) + i.master_down_interval()
            }]
        );
        assert_eq!(
            i.master(),
            Some(PeerMaster {
                address: ip(from),
                priority: prio
            })
        );
    }
    assert_eq!(i.state(), State::Backup);
    assert_eq!(i.counters().adverts_received, 2);
}

#[test]
fn backup_v3_learns_the_masters_interval() {
    let c = v3(100);
    let mut i = started(c.clone());
    let mut adv = advert(&c, 200);
    adv.interval_cs = 50;
    let a = i.handle(
        ms(10),
        Input::Advertisement {
            src: ip(HIGHER_ADDR),
            ttl: 255,
            advertisement: adv,
        },
    );
    assert_eq!(i.master_adver_interval(), ms(500));
    // 3 * 500 ms + (156 * 500 ms / 256)
    assert_eq!(
        i.master_down_interval(),
        Duration::from_micros(1_804_687) + Duration::from_nanos(500)
    );
    assert_eq!(
        a,
        vec![Action::ArmTimer {
            kind: TimerKind::MasterDown,
            at: ms(10) + i.master_down_interval()
        }]
    );
    assert_eq!(i.counters().advert_interval_errors, 0);
}

#[test]
fn backup_v3_never_adopts_an_interval_above_its_bound() {
    let mut c = v3(100);
    c.max_learned_interval = Some(ms(300));
    let mut i = started(c.clone());
    let mut adv = advert(&c, 200);
    adv.interval_cs = 4095; // 40.95 s: one spoofed advertisement
    i.handle(
        ms(10),
        Input::Advertisement {
            src: ip(HIGHER_ADDR),
            ttl: 255,
            advertisement: adv.clone(),
        },
    );
    assert_eq!(i.master_adver_interval(), ms(300));
    assert_eq!(i.counters().learned_interval_capped, 1);
    // Within the bound the master's interval is learned as the RFC says.
    adv.interval_cs = 20;
    i.handle(
        ms(20),
        Input::Advertisement {
            src: ip(HIGHER_ADDR),
            ttl: 255,
            advertisement: adv,
        },
    );
    assert_eq!(i.master_adver_interval(), ms(200));
    assert_eq!(i.counters().learned_interval_capped, 1);
}

#[test]
fn backup_v2_discards_an_advert_with_another_interval() {
    let c = config(Version::V2, 100, Duration::from_secs(1));
    let mut i = started(c.clone());
    let before = i.timer();
    let mut adv = advert(&c, 200);
    adv.interval_cs = 200;
    let a = i.handle(
        ms(10),
        Input::Advertisement {
            src: ip(HIGHER_ADDR),
            ttl: 255,
            advertisement: adv,
        },
    );
    assert!(a.is_empty());
    assert_eq!(i.timer(), before);
    assert_eq!(i.counters().advert_interval_errors, 1);
    assert_eq!(i.counters().adverts_received, 0);
}

#[test]
fn backup_takes_over_after_skew_time_on_priority_zero() {
    let c = v3(100);
    let mut i = started(c.clone());
    i.handle(ms(100), rx(&c, HIGHER_ADDR, 200));
    let a = i.handle(ms(150), rx(&c, HIGHER_ADDR, 0));
    let skew = i.skew_time();
    assert_eq!(
        a,
        vec![Action::ArmTimer {
            kind: TimerKind::MasterDown,
            at: ms(150) + skew
        }]
    );
    assert_eq!(i.counters().priority_zero_received, 1);
    let a = i.handle(ms(150) + skew, Input::TimerExpired(TimerKind::MasterDown));
    let (_, to, reason) = transition(&a).unwrap();
    assert_eq!(to, State::Master);
    assert_eq!(reason.to_string(), "priority-0 handover from 198.51.100.13");
}

#[test]
fn backup_with_preempt_discards_a_lower_priority_master_and_takes_over() {
    let c = v3(150);
    let mut i = started(c.clone());
    let armed = i.timer();
    let a = i.handle(ms(100), rx(&c, HIGHER_ADDR, 100));
    assert!(a.is_empty(), "discarded: the timer keeps running");
    assert_eq!(i.timer(), armed);
    let a = i.handle(armed.unwrap().1, Input::TimerExpired(TimerKind::MasterDown));
    let (_, to, reason) = transition(&a).unwrap();
    assert_eq!(to, State::Master);
    assert_eq!(
        reason.to_string(),
        "preempting lower priority 100 from 198.51.100.13"
    );
    assert_eq!(i.counters().new_master_reason, NewMasterReason::Preempted);
}

#[test]
fn backup_without_preempt_follows_a_lower_priority_master() {
    let mut c = v3(150);
    c.preempt = false;
    let mut i = started(c.clone());
    for t in (100..5000).step_by(100) {
        let a = i.handle(ms(t), rx(&c, HIGHER_ADDR, 100));
        assert_eq!(a.len(), 1, "the timer is reset at {t} ms");
        if let Some((_, at)) = i.timer() {
            assert!(at > ms(t));
        }
    }
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn the_address_owner_preempts_even_with_preempt_off() {
    let mut c = v3(255);
    c.preempt = false;
    let (mut i, at) = master(c.clone());
    i.handle(at, Input::Shutdown);
    // Re-enabled while a lower master runs: as owner it goes straight to Master.
    let a = i.handle(at + ms(500), Input::Startup);
    assert_eq!(transition(&a).unwrap().1, State::Master);
}

#[test]
fn preempt_delay_holds_off_after_startup_then_preempts() {
    let mut c = v3(150);
    c.preempt_delay = Duration::from_secs(2);
    let mut i = started(c.clone());
    // Within the delay a lower master is followed: the timer is reset every time.
    let mut t = 100;
    while t < 2000 {
        assert_eq!(
            i.handle(ms(t), rx(&c, HIGHER_ADDR, 100)).len(),
            1,
            "followed at {t} ms"
        );
        t += 100;
    }
    // After it, its adverts are discarded and the master down timer runs out.
    let armed = i.timer().unwrap();
    assert!(i.handle(ms(2000), rx(&c, HIGHER_ADDR, 100)).is_empty());
    let a = i.handle(armed.1, Input::TimerExpired(TimerKind::MasterDown));
    assert_eq!(transition(&a).unwrap().1, State::Master);
}

#[test]
fn preempt_delay_restarts_when_a_lower_master_appears_later() {
    let mut c = v3(150);
    c.preempt_delay = Duration::from_secs(1);
    let mut i = started(c.clone());
    // A higher master clears the start-up hold-off.
    i.handle(ms(100), rx(&c, HIGHER_ADDR, 200));
    // Later a lower one takes over the segment: followed for 1 s from first sight.
    assert_eq!(i.handle(ms(5000), rx(&c, HIGHER_ADDR, 100)).len(), 1);
    assert_eq!(i.handle(ms(5900), rx(&c, HIGHER_ADDR, 100)).len(), 1);
    assert!(i.handle(ms(6000), rx(&c, HIGHER_ADDR, 100)).is_empty());
}

// ---- §6.4.3 Master ----

#[test]
fn master_sends_an_advertisement_every_interval() {
    let (mut i, at) = master(v3(100));
    for n in 1..=5u64 {
        let t = at + ms(100 * n);
        let a = i.handle(t, Input::TimerExpired(TimerKind::Advertisement));
        assert_eq!(sent(&a), vec![100]);
        assert_eq!(
            a[1],
            Action::ArmTimer {
                kind: TimerKind::Advertisement,
                at: t + ms(100)
            }
        );
    }
    assert_eq!(i.counters().adverts_sent, 6);
}

#[test]
fn master_shutdown_sends_priority_zero_and_releases_the_addresses() {
    let c = v3(100);
    let (mut i, at) = master(c.clone());
    let a = i.handle(at + ms(50), Input::Shutdown);
    assert_eq!(a[0], Action::SendAdvertisement(advert(&c, 0)));
    assert_eq!(a[1], Action::RemoveAddresses(c.addresses.clone()));
    assert_eq!(a[2], Action::CancelTimer);
    assert_eq!(
        transition(&a),
        Some((State::Master, State::Initialize, Reason::Shutdown))
    );
    assert_eq!(i.counters().priority_zero_sent, 1);
    assert_eq!(i.counters().new_master_reason, NewMasterReason::NotMaster);
}

#[test]
fn master_yields_to_a_higher_priority() {
    let c = v3(100);
    let (mut i, at) = master(c.clone());
    let mut adv = advert(&c, 150);
    adv.interval_cs = 20;
    let a = i.handle(
        at + ms(10),
        Input::Advertisement {
            src: ip(LOWER_ADDR),
            ttl: 255,
            advertisement: adv,
        },
    );
    // One parting advertisement at our own priority (the winner, if it never heard us,
    // announces again), then the addresses go.
    assert_eq!(sent(&a), vec![100]);
    assert_eq!(a[1], Action::RemoveAddresses(c.addresses.clone()));
    // v3 learns the new master's interval: 3 * 200 ms + 156 * 200 ms / 256.
    assert_eq!(
        a[2],
        Action::ArmTimer {
            kind: TimerKind::MasterDown,
            at: at + ms(10) + ms(600) + Duration::from_micros(121_875)
        }
    );
    let (from, to, reason) = transition(&a).unwrap();
    assert_eq!((from, to), (State::Master, State::Backup));
    assert_eq!(
        reason.to_string(),
        "preempted by higher priority 150 from 198.51.100.11"
    );
}

#[test]
fn master_equal_priority_tie_break_by_primary_address() {
    let c = v3(100);
    let (mut i, at) = master(c.clone());
    // The lower address loses: no transition, nothing sent; we only re-announce.
    assert_eq!(
        i.handle(at + ms(1), rx(&c, LOWER_ADDR, 100)),
        vec![Action::Announce(c.addresses.clone())],
        "lower address loses"
    );
    assert_eq!(i.state(), State::Master);
    let a = i.handle(at + ms(2), rx(&c, HIGHER_ADDR, 100));
    assert_eq!(
        transition(&a).unwrap().2.to_string(),
        "equal priority 100 from higher address 198.51.100.13 wins the tie-break"
    );
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn master_ipv6_tie_break_compares_128_bit_addresses() {
    let mut c = InstanceConfig::new(7, ip("fe80::2"), vec!["2001:db8:1::60/64".parse().unwrap()]);
    c.advert_interval = ms(100);
    let (mut i, at) = master(c.clone());
    assert_eq!(
        i.handle(at, rx(&c, "fe80::1", 100)),
        vec![Action::Announce(c.addresses.clone())]
    );
    assert_eq!(
        transition(&i.handle(at, rx(&c, "fe80::1:0:0:1", 100)))
            .unwrap()
            .1,
        State::Backup
    );
}

#[test]
fn master_discards_a_lower_priority_and_re_announces_at_most_once_a_second() {
    let c = v3(150);
    let (mut i, at) = master(c.clone());
    // Clients may have followed the other master (a split brain healing): announce again,
    // as keepalived's garp_lower_prio_repeat does; nothing else changes.
    assert_eq!(
        i.handle(at + ms(1), rx(&c, HIGHER_ADDR, 100)),
        vec![Action::Announce(c.addresses.clone())]
    );
    assert_eq!(i.state(), State::Master);
    assert!(i.handle(at + ms(101), rx(&c, HIGHER_ADDR, 100)).is_empty());
    assert!(i.handle(at + ms(900), rx(&c, HIGHER_ADDR, 100)).is_empty());
    assert_eq!(
        i.handle(at + ms(1001), rx(&c, HIGHER_ADDR, 100)),
        vec![Action::Announce(c.addresses.clone())]
    );
    assert_eq!(i.counters().lower_priority_masters, 4);
}

#[test]
fn master_answers_priority_zero_at_once() {
    let c = v3(100);
    let (mut i, at) = master(c.clone());
    let a = i.handle(at + ms(30), rx(&c, HIGHER_ADDR, 0));
    assert_eq!(sent(&a), vec![100]);
    assert_eq!(
        a[1],
        Action::ArmTimer {
            kind: TimerKind::Advertisement,
            at: at + ms(130)
        }
    );
}

// ---- §7.1 receive checks: dropped, counted, no state change ----

fn assert_dropped(i: &mut Instance, input: Input) {
    let state = i.state();
    let timer = i.timer();
    let a = i.handle(ms(50), input);
    assert!(a.is_empty(), "{a:?}");
    assert_eq!((i.state(), i.timer()), (state, timer));
}

#[test]
fn ttl_other_than_255_is_dropped() {
    let c = v3(100);
    let mut i = started(c.clone());
    assert_dropped(
        &mut i,
        Input::Advertisement {
            src: ip(HIGHER_ADDR),
            ttl: 254,
            advertisement: advert(&c, 0),
        },
    );
    assert_eq!(i.counters().ip_ttl_errors, 1);
    assert_eq!(i.counters().adverts_received, 0);
}

#[test]
fn other_version_is_dropped() {
    let c = v3(100);
    let mut i = started(c.clone());
    let mut adv = advert(&c, 0);
    adv.version = Version::V2;
    adv.interval_cs = 100;
    assert_dropped(
        &mut i,
        Input::Advertisement {
            src: ip(HIGHER_ADDR),
            ttl: 255,
            advertisement: adv,
        },
    );
    assert_eq!(i.counters().version_errors, 1);
}

#[test]
fn other_vrid_is_dropped() {
    let c = v3(100);
    let mut i = started(c.clone());
    let mut adv = advert(&c, 0);
    adv.vrid = 52;
    assert_dropped(
        &mut i,
        Input::Advertisement {
            src: ip(HIGHER_ADDR),
            ttl: 255,
            advertisement: adv,
        },
    );
    assert_eq!(i.counters().vrid_errors, 1);
}

#[test]
fn v2_wrong_password_and_wrong_auth_type_are_dropped() {
    let mut c = config(Version::V2, 100, Duration::from_secs(1));
    c.authentication = Authentication::password("s3cret");
    let mut i = started(c.clone());
    let mut adv = advert(&c, 0);
    adv.auth = Authentication::password("guess");
    assert_dropped(
        &mut i,
        Input::Advertisement {
            src: ip(HIGHER_ADDR),
            ttl: 255,
            advertisement: adv.clone(),
        },
    );
    assert_eq!(i.counters().auth_failures, 1);
    adv.auth = Authentication::None;
    assert_dropped(
        &mut i,
        Input::Advertisement {
            src: ip(HIGHER_ADDR),
            ttl: 255,
            advertisement: adv,
        },
    );
    assert_eq!(i.counters().auth_type_mismatch, 1);
    // The right password is accepted.
    assert_eq!(i.handle(ms(60), rx(&c, HIGHER_ADDR, 0)).len(), 1);
}

#[test]
fn unicast_accepts_only_configured_peers() {
    let mut c = v3(100);
    c.unicast_peers = vec![ip(HIGHER_ADDR)];
    let mut i = started(c.clone());
    assert_dropped(&mut i, rx(&c, "198.51.100.99", 0));
    assert_eq!(i.counters().unknown_peer, 1);
    assert_eq!(i.handle(ms(60), rx(&c, HIGHER_ADDR, 0)).len(), 1);
}

#[test]
fn malformed_packets_are_counted_by_kind() {
    let mut i = started(v3(100));
    assert_dropped(
        &mut i,
        Input::Malformed(DecodeError::Checksum {
            found: 1,
            computed: 2,
        }),
    );
    assert_dropped(&mut i, Input::Malformed(DecodeError::Type(2)));
    assert_dropped(
        &mut i,
        Input::Malformed(DecodeError::Length {
            len: 9,
            count: 1,
            family: kube_vrrp::vrrp::Family::V4,
            expected: 12,
        }),
    );
    assert_dropped(&mut i, Input::Malformed(DecodeError::AuthAh));
    let n = i.counters();
    assert_eq!(
        (
            n.checksum_errors,
            n.invalid_type_received,
            n.packet_length_errors,
            n.invalid_auth_type
        ),
        (1, 1, 1, 1)
    );
}

#[test]
fn another_address_list_is_counted_but_followed() {
    let c = v3(100);
    let mut i = started(c.clone());
    let mut adv = advert(&c, 200);
    adv.addresses = Addresses::V4(vec!["198.51.100.51".parse().unwrap()]);
    let a = i.handle(
        ms(10),
        Input::Advertisement {
            src: ip(HIGHER_ADDR),
            ttl: 255,
            advertisement: adv,
        },
    );
    assert_eq!(a.len(), 1, "the master down timer is still reset");
    assert_eq!(i.counters().address_list_errors, 1);
}

// ---- Fault ----

#[test]
fn interface_down_on_master_hands_over_and_faults() {
    let c = v3(100);
    let (mut i, at) = master(c.clone());
    let a = i.handle(at + ms(5), Input::InterfaceDown);
    assert_eq!(
        sent(&a),
        vec![0],
        "priority 0 so backups take over after skew time"
    );
    assert!(a.contains(&Action::RemoveAddresses(c.addresses.clone())));
    assert_eq!(
        transition(&a).unwrap().2.to_string(),
        "fault: interface down"
    );
    assert_eq!(i.timer(), None);
    // In Fault adverts change nothing.
    assert!(i.handle(at + ms(10), rx(&c, HIGHER_ADDR, 0)).is_empty());
    let a = i.handle(at + ms(20), Input::InterfaceUp);
    assert_eq!(
        transition(&a),
        Some((State::Fault, State::Backup, Reason::FaultCleared))
    );
}

#[test]
fn tracked_fault_needs_every_source_cleared() {
    let c = v3(100);
    let mut i = started(c);
    i.handle(
        ms(1),
        Input::TrackedFault(Some("check nginx failed".into())),
    );
    assert_eq!(i.state(), State::Fault);
    assert_eq!(
        i.last_transition().unwrap().reason.to_string(),
        "fault: check nginx failed"
    );
    i.handle(ms(2), Input::InterfaceDown);
    i.handle(ms(3), Input::TrackedFault(None));
    assert_eq!(i.state(), State::Fault, "the interface is still down");
    i.handle(ms(4), Input::InterfaceUp);
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn startup_with_the_interface_down_goes_to_fault_and_owner_recovers_as_master() {
    let mut i = Instance::new(v3(255));
    i.handle(ms(0), Input::InterfaceDown);
    assert_eq!(i.state(), State::Initialize, "not started yet");
    i.handle(ms(1), Input::Startup);
    assert_eq!(i.state(), State::Fault);
    let a = i.handle(ms(2), Input::InterfaceUp);
    assert_eq!(transition(&a).unwrap().1, State::Master);
}

#[test]
fn shutdown_from_fault_returns_to_initialize() {
    let mut i = started(v3(100));
    i.handle(ms(1), Input::InterfaceDown);
    let a = i.handle(ms(2), Input::Shutdown);
    assert_eq!(
        transition(&a),
        Some((State::Fault, State::Initialize, Reason::Shutdown))
    );
}

// ---- timers and run-time priority ----

#[test]
fn stale_timer_expiries_are_ignored() {
    let c = v3(100);
    let mut i = started(c.clone());
    let (_, first) = i.timer().unwrap();
    i.handle(ms(100), rx(&c, HIGHER_ADDR, 200)); // re-armed later
    assert!(
        i.handle(first, Input::TimerExpired(TimerKind::MasterDown))
            .is_empty()
    );
    assert!(
        i.handle(first, Input::TimerExpired(TimerKind::Advertisement))
            .is_empty()
    );
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn priority_changes_at_run_time() {
    let c = v3(100);
    let (mut i, at) = master(c.clone());
    i.handle(at, Input::SetPriority(80));
    assert_eq!(
        sent(&i.handle(at + ms(100), Input::TimerExpired(TimerKind::Advertisement))),
        vec![80]
    );
    i.handle(at, Input::SetPriority(0));
    assert_eq!(i.priority(), 1, "0 is reserved for leaving");
    // A backup whose priority rises above its master's preempts it.
    let mut b = started(c.clone());
    b.handle(ms(100), rx(&c, HIGHER_ADDR, 120));
    b.handle(ms(150), Input::SetPriority(130));
    assert!(
        b.handle(ms(200), rx(&c, HIGHER_ADDR, 120)).is_empty(),
        "now discarded"
    );
}

#[test]
fn an_instance_owns_more_addresses_than_one_advert_carries() {
    let mut c = InstanceConfig::new(
        60,
        ip(ME),
        (0..300u32)
            .map(|n| {
                format!("{}/16", std::net::Ipv4Addr::from(0xc633_0000 + n))
                    .parse()
                    .unwrap()
            })
            .collect(),
    );
    c.mtu = 1500;
    c.validate().unwrap();
    let (mut i, at) = master(c.clone());
    let a = i.handle(at, Input::Shutdown);
    let Action::SendAdvertisement(adv) = &a[0] else {
        panic!("{a:?}")
    };
    assert_eq!(
        adv.addresses.len(),
        255,
        "the 8-bit count bounds one advert"
    );
    assert_eq!(a[1], Action::RemoveAddresses(c.addresses.clone()));
    assert_eq!(c.addresses.len(), 300);
    // A peer advertising the same truncated list is not an address-list error.
    let mut b = started(c.clone());
    b.handle(
        ms(5),
        Input::Advertisement {
            src: ip(HIGHER_ADDR),
            ttl: 255,
            advertisement: adv.clone(),
        },
    );
    assert_eq!(b.counters().address_list_errors, 0);
    // A small MTU carries fewer.
    c.mtu = 100;
    let i = Instance::new(c);
    assert_eq!(i.advertisement(100).addresses.len(), 18);
}

#[test]
fn late_wake_ups_do_not_stretch_the_advertisement_interval() {
    let (mut i, at) = master(v3(100));
    // Each expiry handled 3 ms late: the schedule stays on the 100 ms grid.
    let mut due = at + ms(100);
    for _ in 0..5 {
        i.handle(due + ms(3), Input::TimerExpired(TimerKind::Advertisement));
        due += ms(100);
        assert_eq!(i.timer(), Some((TimerKind::Advertisement, due)));
    }
    // A stall longer than an interval resumes from now instead of bursting.
    i.handle(due + ms(450), Input::TimerExpired(TimerKind::Advertisement));
    assert_eq!(i.timer(), Some((TimerKind::Advertisement, due + ms(450))));
}

#[test]
fn a_priority_raised_at_run_time_preempts_a_lower_master_after_master_down() {
    let c = v3(100);
    let mut i = started(c.clone());
    // The master (priority 150) is followed.
    i.handle(ms(50), rx(&c, HIGHER_ADDR, 150));
    assert_eq!(i.state(), State::Backup);
    // Reconfigured to 200: the master's next advertisement is now lower and is discarded,
    // so the master down timer runs out and this router takes over (preempt is on).
    i.reconfigure_priority(200);
    assert_eq!((i.priority(), i.config().priority), (200, 200));
    i.handle(ms(150), rx(&c, HIGHER_ADDR, 150));
    let (_, at) = i.timer().unwrap();
    let actions = i.handle(at, Input::TimerExpired(TimerKind::MasterDown));
    assert_eq!(i.state(), State::Master);
    assert!(
        matches!(
            transition(&actions),
            Some((
                State::Backup,
                State::Master,
                Reason::PreemptedLower { priority: 150, .. }
            ))
        ),
        "{actions:?}"
    );
    assert_eq!(sent(&actions), vec![200]);
}

#[test]
fn a_priority_lowered_at_run_time_is_advertised_and_a_higher_backup_takes_over() {
    let (mut i, at) = master(v3(200));
    i.reconfigure_priority(120);
    let (_, next) = i.timer().unwrap();
    assert!(next > at);
    let actions = i.handle(next, Input::TimerExpired(TimerKind::Advertisement));
    assert_eq!(
        sent(&actions),
        vec![120],
        "the new priority goes out, no handover"
    );
    assert_eq!(i.state(), State::Master);
    // A backup at 150 now outranks it: on its advertisement, this master steps down.
    let c = i.config().clone();
    i.handle(next + ms(10), rx(&c, LOWER_ADDR, 150));
    assert_eq!(i.state(), State::Backup);
}
