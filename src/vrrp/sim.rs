//! Several instances joined by a simulated wire, on virtual time.
//!
//! Every advertisement goes through the real codec (encoded by the sender with its source and
//! the multicast group, decoded by each receiver), arrives after a fixed latency with TTL 255,
//! and only reaches routers on the same side of a partition. Timers fire exactly when armed.
//! Each router is driven as the agent's engine drives an instance ([`super::driver`]): its
//! timer follows the `ArmTimer` / `CancelTimer` actions, and its interface is the weight-0
//! interface tracker.
//! This is how multi-router behaviour (election, failover, preemption, split brain) is tested
//! without sockets, and what `kube-vrrp simulate` runs.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::{InstanceConfig, VirtualAddress, format_duration, parse_duration};
use super::driver::{ArmedTimer, INTERFACE_TRACKER, tracker_inputs};
use super::instance::{Action, Input, Instance, State, TimerKind};
use super::packet::{Advertisement, VRRP_TTL, Version};
use super::priority::Trackers;

/// The fault reason of a router whose interface is down.
const INTERFACE_DOWN: &str = "interface down";

/// Something a scenario does to the routers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "do")]
pub enum Command {
    /// Startup event.
    Start {
        router: String,
    },
    /// Graceful stop: a master sends priority 0.
    Shutdown {
        router: String,
    },
    /// The process dies and its link is cut: silence, no priority 0.
    Crash {
        router: String,
    },
    /// A crashed router comes back with a fresh instance and starts.
    Restart {
        router: String,
    },
    /// The priority health tracking gives the router now (its trackers still apply: while
    /// its interface is down it stays in Fault, and takes this priority when it comes back).
    SetPriority {
        router: String,
        priority: u8,
    },
    InterfaceDown {
        router: String,
    },
    InterfaceUp {
        router: String,
    },
    /// Split the segment: routers hear only those in their own group (unlisted: alone).
    Partition {
        groups: Vec<Vec<String>>,
    },
    /// Join the segment again.
    Heal,
}

#[derive(Debug, Clone)]
enum Event {
    Deliver {
        to: usize,
        src: IpAddr,
        dst: IpAddr,
        bytes: Vec<u8>,
    },
    Timer {
        router: usize,
        kind: TimerKind,
    },
    Command(Command),
}

/// A transition as the simulation saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimTransition {
    #[serde(serialize_with = "serialize_duration")]
    pub at: Duration,
    pub router: String,
    pub from: State,
    pub to: State,
    pub reason: String,
}

fn serialize_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    #[error("unknown router {0:?}")]
    UnknownRouter(String),
    #[error("router {0:?} does not encode: {1}")]
    Encode(String, String),
}

struct SimRouter {
    name: String,
    config: InstanceConfig,
    instance: Instance,
    /// Alive and linked; a crashed router neither sends nor receives nor runs timers.
    up: bool,
    /// Addresses currently bound by this router.
    bound: Vec<VirtualAddress>,
    /// The protocol timer, as the router's actions armed it.
    timer: ArmedTimer,
    /// The router's interface, as a tracker.
    trackers: Trackers,
    /// The priority trackers move: the configured one, or the last `SetPriority`.
    priority: u8,
}

impl SimRouter {
    fn new(name: &str, config: InstanceConfig) -> SimRouter {
        SimRouter {
            name: name.to_string(),
            instance: Instance::new(config.clone()),
            priority: config.priority,
            config,
            up: true,
            bound: Vec::new(),
            timer: ArmedTimer::default(),
            trackers: Trackers::default(),
        }
    }
}

/// The simulated segment.
pub struct Simulation {
    now: Duration,
    latency: Duration,
    routers: Vec<SimRouter>,
    queue: BinaryHeap<Reverse<(Duration, u64)>>,
    events: BTreeMap<u64, Event>,
    seq: u64,
    /// Partition group of each router; `None`: everyone hears everyone.
    groups: Option<Vec<usize>>,
    transitions: Vec<SimTransition>,
    /// Decode failures seen on the wire (must stay empty: we only send what we can decode).
    decode_errors: Vec<String>,
}

impl Simulation {
    pub fn new(latency: Duration) -> Simulation {
        Simulation {
            now: Duration::ZERO,
            latency,
            routers: Vec::new(),
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
            groups: None,
            transitions: Vec::new(),
            decode_errors: Vec::new(),
        }
    }

    pub fn add_router(&mut self, name: &str, config: InstanceConfig) {
        self.routers.push(SimRouter::new(name, config));
    }

    /// Queues a command at `at` (not before now).
    pub fn schedule(&mut self, at: Duration, command: Command) {
        self.push(at.max(self.now), Event::Command(command));
    }

    fn push(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.events.insert(self.seq, event);
        self.queue.push(Reverse((at, self.seq)));
    }

    /// Runs every event due at or before `until`, then sets the clock to `until`.
    pub fn run_until(&mut self, until: Duration) -> Result<(), SimError> {
        while let Some(Reverse((at, seq))) = self.queue.peek().copied() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = at;
            let event = self.events.remove(&seq).expect("queued event");
            self.dispatch(event)?;
        }
        self.now = until;
        Ok(())
    }

    fn index(&self, name: &str) -> Result<usize, SimError> {
        self.routers
            .iter()
            .position(|r| r.name == name)
            .ok_or_else(|| SimError::UnknownRouter(name.to_string()))
    }

    fn dispatch(&mut self, event: Event) -> Result<(), SimError> {
        match event {
            Event::Deliver {
                to,
                src,
                dst,
                bytes,
            } => {
                if !self.routers[to].up {
                    return Ok(());
                }
                let input = match Advertisement::decode(&bytes, src, dst) {
                    Ok(advertisement) => Input::Advertisement {
                        src,
                        ttl: VRRP_TTL,
                        advertisement,
                    },
                    Err(e) => {
                        self.decode_errors.push(e.to_string());
                        Input::Malformed(e)
                    }
                };
                self.feed(to, input)
            }
            Event::Timer { router, kind } => {
                let r = &mut self.routers[router];
                if r.up && r.timer.expire(kind, self.now) {
                    self.feed(router, Input::TimerExpired(kind))?;
                }
                Ok(())
            }
            Event::Command(c) => self.command(c),
        }
    }

    fn command(&mut self, c: Command) -> Result<(), SimError> {
        match c {
            Command::Start { router } => self.feed(self.index(&router)?, Input::Startup),
            Command::Shutdown { router } => self.feed(self.index(&router)?, Input::Shutdown),
            Command::Crash { router } => {
                let i = self.index(&router)?;
                self.routers[i].up = false;
                Ok(())
            }
            Command::Restart { router } => {
                let i = self.index(&router)?;
                let r = &mut self.routers[i];
                *r = SimRouter::new(&r.name, r.config.clone());
                self.feed(i, Input::Startup)
            }
            Command::SetPriority { router, priority } => {
                let i = self.index(&router)?;
                self.routers[i].priority = priority;
                self.apply_trackers(i)
            }
            Command::InterfaceDown { router } => self.link(&router, false),
            Command::InterfaceUp { router } => self.link(&router, true),
            Command::Partition { groups } => {
                // Unlisted routers each get a group of their own.
                let mut assigned: Vec<usize> =
                    (0..self.routers.len()).map(|i| groups.len() + i).collect();
                for (g, names) in groups.iter().enumerate() {
                    for n in names {
                        assigned[self.index(n)?] = g;
                    }
                }
                self.groups = Some(assigned);
                Ok(())
            }
            Command::Heal => {
                self.groups = None;
                Ok(())
            }
        }
    }

    fn link(&mut self, router: &str, up: bool) -> Result<(), SimError> {
        let i = self.index(router)?;
        self.routers[i]
            .trackers
            .set(INTERFACE_TRACKER, 0, !up, INTERFACE_DOWN);
        self.apply_trackers(i)
    }

    /// Feeds what the trackers make of router `i`, as the engine does.
    fn apply_trackers(&mut self, i: usize) -> Result<(), SimError> {
        let r = &self.routers[i];
        for input in tracker_inputs(&r.trackers, r.priority, r.instance.priority()) {
            self.feed(i, input)?;
        }
        Ok(())
    }

    fn hears(&self, from: usize, to: usize) -> bool {
        from != to && self.routers[to].up && self.groups.as_ref().is_none_or(|g| g[from] == g[to])
    }

    /// Feeds an input to one router and carries out its actions on the wire.
    pub fn feed(&mut self, i: usize, input: Input) -> Result<(), SimError> {
        let actions = self.routers[i].instance.handle(self.now, input);
        self.routers[i].timer.follow(&actions);
        for action in actions {
            match action {
                Action::SendAdvertisement(adv) => {
                    let src = self.routers[i].config.primary_address;
                    let dst = self.routers[i].config.family().multicast_group();
                    let bytes = adv.encode(src, dst).map_err(|e| {
                        SimError::Encode(self.routers[i].name.clone(), e.to_string())
                    })?;
                    for to in 0..self.routers.len() {
                        if self.hears(i, to) {
                            let at = self.now + self.latency;
                            self.push(
                                at,
                                Event::Deliver {
                                    to,
                                    src,
                                    dst,
                                    bytes: bytes.clone(),
                                },
                            );
                        }
                    }
                }
                Action::AddAddresses { addresses, .. } => self.routers[i].bound = addresses,
                Action::RemoveAddresses(_) => self.routers[i].bound.clear(),
                Action::ArmTimer { kind, at } => self.push(at, Event::Timer { router: i, kind }),
                Action::Announce(_) | Action::CancelTimer => {}
                Action::StateChanged(t) => self.transitions.push(SimTransition {
                    at: t.at,
                    router: self.routers[i].name.clone(),
                    from: t.from,
                    to: t.to,
                    reason: t.reason.to_string(),
                }),
            }
        }
        Ok(())
    }

    /// Routers that are up and Master, in insertion order.
    pub fn masters(&self) -> Vec<&str> {
        self.routers
            .iter()
            .filter(|r| r.up && r.instance.state() == State::Master)
            .map(|r| r.name.as_str())
            .collect()
    }

    /// Routers that are up and have the addresses bound.
    pub fn holders(&self) -> Vec<&str> {
        self.routers
            .iter()
            .filter(|r| r.up && !r.bound.is_empty())
            .map(|r| r.name.as_str())
            .collect()
    }

    pub fn instance(&self, name: &str) -> Result<&Instance, SimError> {
        Ok(&self.routers[self.index(name)?].instance)
    }

    pub fn transitions(&self) -> &[SimTransition] {
        &self.transitions
    }

    pub fn decode_errors(&self) -> &[String] {
        &self.decode_errors
    }
}

/// A scenario file: one virtual router shared by several routers, commands at times, and the
/// masters expected at times.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_version")]
    pub version: Version,
    pub virtual_router_id: u8,
    pub advert_interval: String,
    #[serde(default = "default_true")]
    pub preempt: bool,
    #[serde(default)]
    pub preempt_delay: Option<String>,
    pub addresses: Vec<VirtualAddress>,
    #[serde(default)]
    pub latency: Option<String>,
    pub routers: Vec<ScenarioRouter>,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub expect: Vec<Expectation>,
}

fn default_version() -> Version {
    Version::V3
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScenarioRouter {
    pub name: String,
    pub address: IpAddr,
    pub priority: u8,
    /// Overrides the scenario's `preempt` for this router.
    #[serde(default)]
    pub preempt: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub at: String,
    #[serde(flatten)]
    pub command: Command,
}

/// At `at`, exactly these routers are Master (empty: none).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expectation {
    pub at: String,
    pub masters: Vec<String>,
}

/// One checked expectation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    pub at: String,
    pub expected: Vec<String>,
    pub masters: Vec<String>,
    pub ok: bool,
}

/// What a scenario run produced.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioReport {
    pub name: String,
    pub transitions: Vec<SimTransition>,
    pub observations: Vec<Observation>,
    pub passed: bool,
}

impl Scenario {
    pub fn from_json(text: &str) -> Result<Scenario, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid scenario: {e}"))
    }

    /// Builds the routers, runs the steps and checks the expectations.
    pub fn run(&self) -> Result<ScenarioReport, String> {
        let dur = |s: &str| parse_duration(s).map_err(|e| format!("scenario {:?}: {e}", self.name));
        let latency = self
            .latency
            .as_deref()
            .map(dur)
            .transpose()?
            .unwrap_or(Duration::from_millis(1));
        let mut sim = Simulation::new(latency);
        for r in &self.routers {
            let mut c =
                InstanceConfig::new(self.virtual_router_id, r.address, self.addresses.clone());
            c.version = self.version;
            c.priority = r.priority;
            c.advert_interval = dur(&self.advert_interval)?;
            c.preempt = r.preempt.unwrap_or(self.preempt);
            c.preempt_delay = self
                .preempt_delay
                .as_deref()
                .map(dur)
                .transpose()?
                .unwrap_or_default();
            c.validate()
                .map_err(|e| format!("router {:?}: {e}", r.name))?;
            sim.add_router(&r.name, c);
        }
        for s in &self.steps {
            sim.schedule(dur(&s.at)?, s.command.clone());
        }
        let mut expectations: Vec<(Duration, &Expectation)> = self
            .expect
            .iter()
            .map(|e| Ok((dur(&e.at)?, e)))
            .collect::<Result<_, String>>()?;
        expectations.sort_by_key(|(t, _)| *t);
        let mut observations = Vec::new();
        for (t, e) in expectations {
            sim.run_until(t).map_err(|e| e.to_string())?;
            let masters: Vec<String> = sim.masters().into_iter().map(String::from).collect();
            let mut expected = e.masters.clone();
            expected.sort();
            let mut got = masters.clone();
            got.sort();
            observations.push(Observation {
                at: e.at.clone(),
                ok: expected == got,
                expected: e.masters.clone(),
                masters,
            });
        }
        if !sim.decode_errors().is_empty() {
            return Err(format!(
                "our own packets failed to decode: {:?}",
                sim.decode_errors()
            ));
        }
        Ok(ScenarioReport {
            name: self.name.clone(),
            transitions: sim.transitions().to_vec(),
            passed: observations.iter().all(|o| o.ok),
            observations,
        })
    }
}
