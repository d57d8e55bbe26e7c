//! Multi-router behaviour on virtual time: several instances joined by a simulated wire (the
//! real codec on every packet). Table-driven cases with timing bounds, plus every scenario file
//! in e2e/scenarios/ (what `kube-vrrp simulate` runs).

use std::net::IpAddr;
use std::time::Duration;

use kube_vrrp::vrrp::sim::{Command, Scenario, Simulation};
use kube_vrrp::vrrp::{Authentication, InstanceConfig, State, Version};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const LATENCY: Duration = Duration::from_millis(1);

struct Router {
    name: &'static str,
    addr: &'static str,
    priority: u8,
}

fn sim(version: Version, interval: Duration, preempt: bool, routers: &[Router]) -> Simulation {
    let mut s = Simulation::new(LATENCY);
    for r in routers {
        let addr: IpAddr = r.addr.parse().unwrap();
        let vip = if addr.is_ipv4() {
            "198.51.100.50/24"
        } else {
            "2001:db8:1::50/64"
        };
        let mut c = InstanceConfig::new(51, addr, vec![vip.parse().unwrap()]);
        c.version = version;
        c.priority = r.priority;
        c.advert_interval = interval;
        c.preempt = preempt;
        if version == Version::V2 {
            c.authentication = Authentication::password("s3cret");
        }
        c.validate().unwrap();
        s.add_router(r.name, c);
    }
    for r in routers {
        s.schedule(
            Duration::ZERO,
            Command::Start {
                router: r.name.into(),
            },
        );
    }
    s
}

fn three() -> [Router; 3] {
    [
        Router {
            name: "a",
            addr: "198.51.100.11",
            priority: 200,
        },
        Router {
            name: "b",
            addr: "198.51.100.12",
            priority: 150,
        },
        Router {
            name: "c",
            addr: "198.51.100.13",
            priority: 100,
        },
    ]
}

/// When `router` last became Master.
fn became_master(s: &Simulation, router: &str) -> Duration {
    let t = s
        .transitions()
        .iter()
        .rev()
        .find(|t| t.router == router && t.to == State::Master)
        .unwrap_or_else(|| panic!("{router} never became master"));
    t.at
}

#[test]
fn election_picks_the_highest_priority_and_only_it() {
    for (version, interval) in [
        (Version::V3, ms(100)),
        (Version::V3, ms(20)),
        (Version::V2, ms(1000)),
    ] {
        let mut s = sim(version, interval, true, &three());
        s.run_until(interval * 10).unwrap();
        assert_eq!(s.masters(), vec!["a"], "{version:?} {interval:?}");
        assert_eq!(s.holders(), vec!["a"]);
        // Exactly one Master transition in the whole run: no flapping on start.
        let to_master = s
            .transitions()
            .iter()
            .filter(|t| t.to == State::Master)
            .count();
        assert_eq!(to_master, 1, "{:?}", s.transitions());
        // a's own master down interval: 3 * interval + skew(200).
        let mdi = 3 * interval + s.instance("a").unwrap().skew_time();
        assert_eq!(became_master(&s, "a"), mdi);
        assert!(s.decode_errors().is_empty());
    }
}

#[test]
fn master_silence_fails_over_within_master_down_interval() {
    for (version, interval) in [
        (Version::V3, ms(100)),
        (Version::V3, ms(20)),
        (Version::V2, ms(1000)),
    ] {
        let mut s = sim(version, interval, true, &three());
        let crash = interval * 20;
        s.schedule(crash, Command::Crash { router: "a".into() });
        s.run_until(crash + interval * 10).unwrap();
        assert_eq!(s.masters(), vec!["b"], "{version:?}");
        let took = became_master(&s, "b") - crash;
        let b_mdi = 3 * interval + s.instance("b").unwrap().skew_time();
        // b last heard a at most one interval (plus latency) before the crash.
        assert!(
            took <= b_mdi,
            "{version:?}: failover took {took:?} > {b_mdi:?}"
        );
        assert!(
            took + interval + LATENCY >= b_mdi,
            "{version:?}: failover too early: {took:?}"
        );
        // c (lower priority, longer skew) never became master.
        assert!(
            s.transitions()
                .iter()
                .all(|t| t.router != "c" || t.to != State::Master)
        );
    }
}

#[test]
fn priority_zero_handover_takes_skew_time() {
    for (version, interval) in [(Version::V3, ms(100)), (Version::V2, ms(1000))] {
        let mut s = sim(version, interval, true, &three());
        let stop = interval * 20 + ms(3);
        s.schedule(stop, Command::Shutdown { router: "a".into() });
        s.run_until(stop + interval * 2).unwrap();
        assert_eq!(s.masters(), vec!["b"]);
        let took = became_master(&s, "b") - stop;
        assert_eq!(
            took,
            LATENCY + s.instance("b").unwrap().skew_time(),
            "{version:?}"
        );
        assert_eq!(
            s.instance("b").unwrap().counters().priority_zero_received,
            1
        );
    }
}

#[test]
fn preempt_fails_back_to_the_higher_priority() {
    let mut s = sim(Version::V3, ms(100), true, &three());
    s.schedule(ms(2000), Command::Crash { router: "a".into() });
    s.schedule(ms(4000), Command::Restart { router: "a".into() });
    s.run_until(ms(3000)).unwrap();
    assert_eq!(s.masters(), vec!["b"]);
    s.run_until(ms(6000)).unwrap();
    assert_eq!(s.masters(), vec!["a"]);
    let a = s
        .transitions()
        .iter()
        .rev()
        .find(|t| t.router == "a" && t.to == State::Master)
        .unwrap();
    assert_eq!(a.reason, "preempting lower priority 150 from 198.51.100.12");
    let b = s
        .transitions()
        .iter()
        .rev()
        .find(|t| t.router == "b" && t.to == State::Backup)
        .unwrap();
    assert_eq!(
        b.reason,
        "preempted by higher priority 200 from 198.51.100.11"
    );
    assert_eq!(s.holders(), vec!["a"], "b released the VIP");
}

#[test]
fn non_preempt_keeps_the_current_master() {
    let mut s = sim(Version::V3, ms(100), false, &three());
    s.schedule(ms(2000), Command::Crash { router: "a".into() });
    s.schedule(ms(4000), Command::Restart { router: "a".into() });
    s.run_until(ms(10_000)).unwrap();
    assert_eq!(s.masters(), vec!["b"]);
    assert_eq!(s.instance("a").unwrap().state(), State::Backup);
}

#[test]
fn equal_priorities_elect_the_higher_address() {
    let routers = [
        Router {
            name: "low",
            addr: "198.51.100.11",
            priority: 100,
        },
        Router {
            name: "high",
            addr: "198.51.100.200",
            priority: 100,
        },
        Router {
            name: "mid",
            addr: "198.51.100.12",
            priority: 100,
        },
    ];
    let mut s = sim(Version::V3, ms(100), true, &routers);
    s.run_until(ms(2000)).unwrap();
    assert_eq!(s.masters(), vec!["high"]);
    let v6 = [
        Router {
            name: "x",
            addr: "fe80::1:0:0:0",
            priority: 100,
        },
        Router {
            name: "y",
            addr: "fe80::ffff",
            priority: 100,
        },
    ];
    let mut s = sim(Version::V3, ms(100), true, &v6);
    s.run_until(ms(2000)).unwrap();
    assert_eq!(s.masters(), vec!["x"]);
}

#[test]
fn split_brain_resolves_when_the_wire_heals() {
    let mut s = sim(Version::V3, ms(100), true, &three());
    s.schedule(
        ms(1000),
        Command::Partition {
            groups: vec![vec!["a".into()], vec!["b".into(), "c".into()]],
        },
    );
    s.schedule(ms(3000), Command::Heal);
    s.run_until(ms(2000)).unwrap();
    assert_eq!(
        s.masters(),
        vec!["a", "b"],
        "each side elects its own master"
    );
    s.run_until(ms(3000) + ms(100) + LATENCY).unwrap();
    assert_eq!(
        s.masters(),
        vec!["a"],
        "one advertisement interval after healing"
    );
    assert_eq!(s.holders(), vec!["a"]);
}

#[test]
fn runtime_priority_drop_hands_over() {
    let mut s = sim(Version::V3, ms(100), true, &three());
    s.schedule(
        ms(1000),
        Command::SetPriority {
            router: "a".into(),
            priority: 120,
        },
    );
    s.run_until(ms(2000)).unwrap();
    assert_eq!(s.masters(), vec!["b"]);
}

#[test]
fn scenario_files_behave_as_expected() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let report = Scenario::from_json(&std::fs::read_to_string(&path).unwrap())
                .and_then(|s| s.run())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                !report.observations.is_empty(),
                "{}: no expectations",
                path.display()
            );
            assert!(
                report.passed,
                "{}: {:#?}",
                path.display(),
                report.observations
            );
            n += 1;
        }
    }
    assert!(n >= 3, "scenario files found: {n}");
}

#[test]
fn a_failing_expectation_is_reported() {
    let text = r#"{"name": "wrong", "virtualRouterId": 1, "advertInterval": "1s",
        "addresses": ["192.0.2.10/24"],
        "routers": [{"name": "r1", "address": "192.0.2.1", "priority": 100}],
        "steps": [{"at": "0s", "do": "start", "router": "r1"}],
        "expect": [{"at": "10s", "masters": []}]}"#;
    let report = Scenario::from_json(text).unwrap().run().unwrap();
    assert!(!report.passed);
    assert_eq!(report.observations[0].masters, vec!["r1"]);
    let bad = text.replace("\"priority\": 100", "\"priority\": 0");
    let e = Scenario::from_json(&bad).unwrap().run().unwrap_err();
    assert!(e.contains("priority 0 is reserved"), "{e}");
}
