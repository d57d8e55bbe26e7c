//! One virtual router on one node: the state machine of RFC 5798 §6 (VRRPv3) and RFC 3768 §6
//! (VRRPv2), plus a Fault state for tracked failures.
//!
//! Sans-IO: [`Instance::handle`] takes the current time and one [`Input`] and returns
//! [`Action`]s: effects for the I/O shell to carry out, the timer to keep, transitions to
//! report. [`super::driver`] is how the agent's engine and the simulator both drive it. Time is a [`Duration`] since an arbitrary epoch
//! chosen by the caller (the agent's start, or 0 in a simulation), so the core never reads a
//! clock and every rule can be tested on virtual time.
//!
//! ```text
//!              Startup (priority 255)                 master down timer expired
//!  Initialize ─────────────────────────▶ Master ◀──────────────────────────────── Backup
//!      │  Startup                          │  higher priority advert / tie lost      ▲
//!      └──────────────────────────────────▶│────────────────────────────────────────┘
//!   any state ── interface down / tracked fault ──▶ Fault ── cleared ──▶ (Startup again)
//!   any state ── Shutdown ──▶ Initialize   (a master first sends priority 0)
//! ```

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::{InstanceConfig, VirtualAddress};
use super::packet::{Addresses, Advertisement, DecodeError, VRRP_TTL, Version};

/// RFC 5798 §6.4 states, plus Fault (keepalived's FAULT: an interface or tracked check is down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum State {
    Initialize,
    Backup,
    Master,
    Fault,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Initialize => "Initialize",
            State::Backup => "Backup",
            State::Master => "Master",
            State::Fault => "Fault",
        })
    }
}

/// The protocol's timers; an instance has at most one armed at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimerKind {
    /// Adver_Timer: the master's next advertisement.
    Advertisement,
    /// Master_Down_Timer: a backup's patience with a silent master.
    MasterDown,
}

/// Something that happened to the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Input {
    /// The instance is enabled (RFC 5798 §6.4.1 Startup event).
    Startup,
    /// The instance is disabled (Shutdown event): a master hands over with priority 0.
    Shutdown,
    /// A decoded advertisement with this instance's VRID, with the IP header fields the RFC
    /// checks: source address and TTL / hop limit.
    Advertisement {
        src: IpAddr,
        ttl: u8,
        advertisement: Advertisement,
    },
    /// A packet for this instance that failed to decode: counted, never acted on.
    Malformed(DecodeError),
    /// A timer armed by [`Action::ArmTimer`] fired. Stale expiries (re-armed or cancelled
    /// since, or not due yet) are ignored.
    TimerExpired(TimerKind),
    /// The effective priority changed (health tracking). 0 is taken as 1: priority 0 on the
    /// wire means "leaving", which only Shutdown and Fault send.
    SetPriority(u8),
    /// The interface went down: Fault, reason "interface down". The agent and the simulator
    /// report their interface as a weight-0 tracker instead (`TrackedFault`, see
    /// [`super::driver`]); this is for a shell without trackers.
    InterfaceDown,
    /// The interface came back: Fault clears unless a tracked fault remains.
    InterfaceUp,
    /// A tracked check put the instance in Fault (`Some(reason)`) or released it (`None`).
    TrackedFault(Option<String>),
}

/// What one input led to, in order: effects the I/O shell carries out (send, bind, release,
/// announce), the timer it keeps ([`super::driver::ArmedTimer`] follows `ArmTimer` /
/// `CancelTimer`), and a report (`StateChanged`) for logs, status and notifications. The agent
/// may defer an effect: a master handing over keeps its addresses until its successor is heard
/// (`RemoveAddresses` later, make before break).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Send this advertisement (multicast, or to every unicast peer) with TTL 255.
    SendAdvertisement(Advertisement),
    /// Bind the virtual addresses. `accept` is RFC 5798 Accept_Mode (or owner): when false the
    /// RFC has a master not accept traffic addressed to them; the agent binds them either way
    /// and filters nothing (keepalived outside `vrrp_strict` does the same).
    AddAddresses {
        addresses: Vec<VirtualAddress>,
        accept: bool,
    },
    RemoveAddresses(Vec<VirtualAddress>),
    /// Gratuitous ARP (IPv4) / unsolicited Neighbor Advertisement (IPv6) for these addresses.
    Announce(Vec<VirtualAddress>),
    /// Arm the single protocol timer (replacing any armed one) to fire at `at`.
    ArmTimer {
        kind: TimerKind,
        at: Duration,
    },
    /// Disarm the protocol timer (Initialize, Fault).
    CancelTimer,
    /// A transition happened (already done: this reports it).
    StateChanged(Transition),
}

/// A state change and why it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub at: Duration,
    pub reason: Reason,
}

/// Why a transition happened, rendered for logs, status and Events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Reason {
    /// Initialize → Backup.
    Startup,
    /// Initialize → Master: priority 255.
    AddressOwner,
    /// Backup → Master: no advertisement within Master_Down_Interval.
    MasterDown {
        interval: Duration,
    },
    /// Backup → Master: the master left with a priority-0 advertisement.
    PriorityZeroHandover {
        from: IpAddr,
    },
    /// Backup → Master: a lower-priority master was ignored until its timer ran out.
    PreemptedLower {
        priority: u8,
        from: IpAddr,
    },
    /// Master → Backup: a higher-priority master.
    PreemptedBy {
        priority: u8,
        from: IpAddr,
    },
    /// Master → Backup: the same priority from a higher primary address.
    TieBreakLost {
        priority: u8,
        from: IpAddr,
    },
    Shutdown,
    Fault {
        reason: String,
    },
    FaultCleared,
}

/// How [`Reason::MasterDown`] begins: a backup took over because the master's
/// advertisements stopped.
pub const MASTER_DOWN: &str = "master down timer expired";

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Startup => write!(f, "startup"),
            Reason::AddressOwner => write!(f, "address owner (priority 255)"),
            Reason::MasterDown { interval } => write!(
                f,
                "{MASTER_DOWN} (no advertisement for {:.3}s)",
                interval.as_secs_f64()
            ),
            Reason::PriorityZeroHandover { from } => write!(f, "priority-0 handover from {from}"),
            Reason::PreemptedLower { priority, from } => {
                write!(f, "preempting lower priority {priority} from {from}")
            }
            Reason::PreemptedBy { priority, from } => {
                write!(f, "preempted by higher priority {priority} from {from}")
            }
            Reason::TieBreakLost { priority, from } => write!(
                f,
                "equal priority {priority} from higher address {from} wins the tie-break"
            ),
            Reason::Shutdown => write!(f, "shutdown"),
            Reason::Fault { reason } => write!(f, "fault: {reason}"),
            Reason::FaultCleared => write!(f, "fault cleared"),
        }
    }
}

/// RFC 9568 `vrrpv3StatisticsNewMasterReason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NewMasterReason {
    #[default]
    NotMaster,
    Priority,
    Preempted,
    MasterNoResponse,
}

/// A master re-announces its addresses for a lower-priority master at most this often.
pub const REANNOUNCE_HOLD: Duration = Duration::from_secs(1);

/// Per-instance statistics after RFC 6527 / RFC 9568 (`vrrpv3StatisticsEntry`) and RFC 2787
/// (v2 authentication), plus what we send.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub master_transitions: u64,
    pub new_master_reason: NewMasterReason,
    pub adverts_received: u64,
    pub adverts_sent: u64,
    pub advert_interval_errors: u64,
    pub ip_ttl_errors: u64,
    pub priority_zero_received: u64,
    pub priority_zero_sent: u64,
    pub invalid_type_received: u64,
    pub address_list_errors: u64,
    pub packet_length_errors: u64,
    pub checksum_errors: u64,
    pub version_errors: u64,
    pub vrid_errors: u64,
    pub auth_failures: u64,
    pub invalid_auth_type: u64,
    pub auth_type_mismatch: u64,
    pub other_decode_errors: u64,
    pub unknown_peer: u64,
    /// Advertisements whose interval exceeded `max_learned_interval` (capped, not adopted).
    pub learned_interval_capped: u64,
    /// Advertisements from another master with a lower priority heard while master: a split
    /// brain (or a spoof) the election settles in our favour.
    #[serde(default)]
    pub lower_priority_masters: u64,
}

impl Counters {
    fn count_decode_error(&mut self, e: &DecodeError) {
        let counter = match e {
            DecodeError::TooShort { .. } | DecodeError::Length { .. } => {
                &mut self.packet_length_errors
            }
            DecodeError::Version(_) | DecodeError::V2OverIpv6 => &mut self.version_errors,
            DecodeError::Type(_) => &mut self.invalid_type_received,
            DecodeError::NoAddresses => &mut self.address_list_errors,
            DecodeError::Checksum { .. } => &mut self.checksum_errors,
            DecodeError::AuthAh | DecodeError::AuthType(_) => &mut self.invalid_auth_type,
            DecodeError::ZeroInterval => &mut self.advert_interval_errors,
            DecodeError::FamilyMismatch { .. } => &mut self.other_decode_errors,
        };
        *counter += 1;
    }
}

/// What the instance knows of the current master (in Backup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerMaster {
    pub address: IpAddr,
    pub priority: u8,
}

/// One virtual router.
#[derive(Debug, Clone)]
pub struct Instance {
    config: InstanceConfig,
    state: State,
    /// Effective priority: the configured one moved by health tracking.
    priority: u8,
    /// Master_Adver_Interval: learned from the master in v3, the configured interval in v2.
    master_adver_interval: Duration,
    timer: Option<(TimerKind, Duration)>,
    /// What the Master_Down_Timer will mean when it fires.
    takeover_reason: Option<Reason>,
    /// Until when a lower-priority master is still accepted (preempt delay).
    preempt_hold_until: Option<Duration>,
    /// The master we follow while Backup.
    master: Option<PeerMaster>,
    /// While master: when the addresses may be announced again for a lower-priority master.
    next_reannounce: Duration,
    enabled: bool,
    interface_down: bool,
    tracked_fault: Option<String>,
    last_transition: Option<Transition>,
    counters: Counters,
}

impl Instance {
    /// A new instance in Initialize. The configuration must have passed
    /// [`InstanceConfig::validate`].
    pub fn new(config: InstanceConfig) -> Instance {
        let priority = config.priority;
        let master_adver_interval = config.advert_interval;
        Instance {
            config,
            state: State::Initialize,
            priority,
            master_adver_interval,
            timer: None,
            takeover_reason: None,
            preempt_hold_until: None,
            master: None,
            next_reannounce: Duration::ZERO,
            enabled: false,
            interface_down: false,
            tracked_fault: None,
            last_transition: None,
            counters: Counters::default(),
        }
    }

    pub fn config(&self) -> &InstanceConfig {
        &self.config
    }
    pub fn state(&self) -> State {
        self.state
    }
    pub fn priority(&self) -> u8 {
        self.priority
    }
    /// A new configured priority at run time (not to or from 255, the owner): advertised from
    /// the next advertisement on; a backup that now outranks the master preempts it when it
    /// hears it, a master that no longer outranks a backup is preempted by it.
    pub fn reconfigure_priority(&mut self, priority: u8) {
        self.config.priority = priority;
        self.priority = priority.max(1);
    }
    /// New excluded addresses (those after the advertised ones) at run time: advertisements
    /// do not change; the caller binds and releases the difference when master.
    pub fn reconfigure_excluded(&mut self, addresses: Vec<VirtualAddress>) {
        debug_assert_eq!(
            addresses[..self.config.advertised],
            self.config.addresses[..self.config.advertised]
        );
        self.config.addresses = addresses;
    }
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    pub fn last_transition(&self) -> Option<&Transition> {
        self.last_transition.as_ref()
    }
    /// The master this backup follows; `None` when Master itself, or none heard yet.
    pub fn master(&self) -> Option<PeerMaster> {
        self.master
    }
    /// The armed timer and when it fires (what [`Action::ArmTimer`] / [`Action::CancelTimer`]
    /// last said, except that a timer that fired is spent).
    pub fn timer(&self) -> Option<(TimerKind, Duration)> {
        self.timer
    }
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// Skew_Time: v3 `((256 - Priority) * Master_Adver_Interval) / 256` (RFC 5798 §6.1),
    /// v2 `(256 - Priority) / 256` seconds (RFC 3768 §6.1).
    pub fn skew_time(&self) -> Duration {
        let unit = match self.config.version {
            Version::V3 => self.master_adver_interval,
            Version::V2 => Duration::from_secs(1),
        };
        let nanos = unit.as_nanos() * (256 - u128::from(self.priority)) / 256;
        Duration::from_nanos(nanos as u64)
    }

    /// Master_Down_Interval: `3 * Master_Adver_Interval + Skew_Time` (v3), with the configured
    /// Advertisement_Interval in v2.
    pub fn master_down_interval(&self) -> Duration {
        let interval = match self.config.version {
            Version::V3 => self.master_adver_interval,
            Version::V2 => self.config.advert_interval,
        };
        3 * interval + self.skew_time()
    }

    fn preempts(&self) -> bool {
        // The address owner always preempts (RFC 5798 §6.1 Preempt_Mode).
        self.config.preempt || self.priority == 255
    }

    fn in_fault(&self) -> bool {
        self.interface_down || self.tracked_fault.is_some()
    }

    /// Feeds one input; returns what to do.
    pub fn handle(&mut self, now: Duration, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Startup => {
                if !self.enabled {
                    self.enabled = true;
                    self.preempt_hold_until = self.hold_from(now);
                    if self.in_fault() {
                        let reason = self.fault_reason();
                        self.change_state(now, State::Fault, Reason::Fault { reason }, &mut out);
                    } else {
                        self.start(now, None, &mut out);
                    }
                }
            }
            Input::Shutdown => {
                if self.enabled {
                    self.enabled = false;
                    self.change_state(now, State::Initialize, Reason::Shutdown, &mut out);
                }
            }
            Input::Advertisement {
                src,
                ttl,
                advertisement,
            } => self.receive(now, src, ttl, advertisement, &mut out),
            Input::Malformed(e) => self.counters.count_decode_error(&e),
            Input::TimerExpired(kind) => self.timer_expired(now, kind, &mut out),
            Input::SetPriority(p) => self.priority = p.max(1),
            Input::InterfaceDown => {
                self.interface_down = true;
                self.enter_fault(now, &mut out);
            }
            Input::InterfaceUp => {
                self.interface_down = false;
                self.leave_fault(now, &mut out);
            }
            Input::TrackedFault(Some(reason)) => {
                self.tracked_fault = Some(reason);
                self.enter_fault(now, &mut out);
            }
            Input::TrackedFault(None) => {
                self.tracked_fault = None;
                self.leave_fault(now, &mut out);
            }
        }
        out
    }

    fn fault_reason(&self) -> String {
        match (&self.tracked_fault, self.interface_down) {
            (_, true) => "interface down".to_string(),
            (Some(r), false) => r.clone(),
            (None, false) => "none".to_string(),
        }
    }

    fn hold_from(&self, now: Duration) -> Option<Duration> {
        (!self.config.preempt_delay.is_zero()).then(|| now + self.config.preempt_delay)
    }

    fn enter_fault(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.enabled && self.state != State::Fault {
            let reason = self.fault_reason();
            self.change_state(now, State::Fault, Reason::Fault { reason }, out);
        }
    }

    fn leave_fault(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.state == State::Fault && !self.in_fault() {
            self.preempt_hold_until = self.hold_from(now);
            self.start(now, Some(Reason::FaultCleared), out);
        }
    }

    /// RFC 5798 §6.4.1: the owner becomes Master at once, everyone else waits as Backup.
    fn start(&mut self, now: Duration, reason: Option<Reason>, out: &mut Vec<Action>) {
        if self.priority == 255 {
            self.change_state(
                now,
                State::Master,
                reason.unwrap_or(Reason::AddressOwner),
                out,
            );
        } else {
            self.master_adver_interval = self.config.advert_interval;
            self.change_state(now, State::Backup, reason.unwrap_or(Reason::Startup), out);
        }
    }

    fn timer_expired(&mut self, now: Duration, kind: TimerKind, out: &mut Vec<Action>) {
        let due = match self.timer {
            Some((armed, at)) if armed == kind && at <= now => at,
            _ => return, // stale: re-armed or cancelled since
        };
        self.timer = None;
        match (self.state, kind) {
            (State::Master, TimerKind::Advertisement) => {
                self.send_advertisement(self.priority, out);
                // From when it was due, not from when we got to it: a wake-up that is late by
                // a millisecond must not stretch every interval (backups would see the master
                // drift towards their Master_Down_Interval). After a long stall, resume from now.
                let next = (due + self.config.advert_interval).max(now);
                self.arm(next, TimerKind::Advertisement, out);
            }
            (State::Backup, TimerKind::MasterDown) => {
                let reason = self.takeover_reason.take().unwrap_or(Reason::MasterDown {
                    interval: self.master_down_interval(),
                });
                self.change_state(now, State::Master, reason, out);
            }
            _ => {}
        }
    }

    /// RFC 5798 §7.1 receive checks, then §6.4.2 (Backup) / §6.4.3 (Master).
    fn receive(
        &mut self,
        now: Duration,
        src: IpAddr,
        ttl: u8,
        adv: Advertisement,
        out: &mut Vec<Action>,
    ) {
        if ttl != VRRP_TTL {
            self.counters.ip_ttl_errors += 1;
            return;
        }
        if adv.version != self.config.version {
            self.counters.version_errors += 1;
            return;
        }
        if adv.vrid != self.config.vrid || adv.addresses.family() != self.config.family() {
            self.counters.vrid_errors += 1;
            return;
        }
        if !self.config.unicast_peers.is_empty() && !self.config.unicast_peers.contains(&src) {
            self.counters.unknown_peer += 1;
            return;
        }
        if self.config.version == Version::V2 {
            // RFC 3768 §7.1: auth type and data must match, and so must the interval.
            if std::mem::discriminant(&adv.auth)
                != std::mem::discriminant(&self.config.authentication)
            {
                self.counters.auth_type_mismatch += 1;
                return;
            }
            if adv.auth != self.config.authentication {
                self.counters.auth_failures += 1;
                return;
            }
            if Duration::from_millis(u64::from(adv.interval_cs) * 10) != self.config.advert_interval
            {
                self.counters.advert_interval_errors += 1;
                return;
            }
        }
        self.counters.adverts_received += 1;
        if !self.addresses_match(&adv.addresses) {
            // RFC 5798 §7.1: MAY log; the advertisement is still acted on (keepalived also
            // accepts it), so a peer advertising a truncated list never causes a split brain.
            self.counters.address_list_errors += 1;
        }
        if adv.priority == 0 {
            self.counters.priority_zero_received += 1;
        }
        let advertised_interval = Duration::from_millis(u64::from(adv.interval_cs) * 10);
        match self.state {
            State::Backup => self.backup_receive(now, src, adv.priority, advertised_interval, out),
            State::Master => self.master_receive(now, src, adv.priority, advertised_interval, out),
            State::Initialize | State::Fault => {}
        }
    }

    fn backup_receive(
        &mut self,
        now: Duration,
        src: IpAddr,
        priority: u8,
        interval: Duration,
        out: &mut Vec<Action>,
    ) {
        if priority == 0 {
            self.takeover_reason = Some(Reason::PriorityZeroHandover { from: src });
            self.arm(now + self.skew_time(), TimerKind::MasterDown, out);
            return;
        }
        let lower = priority < self.priority;
        if lower && self.preempts() {
            match self.preempt_hold_until {
                Some(until) if now < until => {} // still holding off: follow it for now
                None if !self.config.preempt_delay.is_zero() => {
                    // First sight of a lower master: start the hold-off.
                    self.preempt_hold_until = self.hold_from(now);
                }
                _ => {
                    // Discard: the Master_Down_Timer runs out and we take over.
                    self.takeover_reason = Some(Reason::PreemptedLower {
                        priority,
                        from: src,
                    });
                    return;
                }
            }
        } else if !lower {
            self.preempt_hold_until = None;
        }
        self.follow(src, priority, interval);
        self.takeover_reason = None;
        self.arm(
            now + self.master_down_interval(),
            TimerKind::MasterDown,
            out,
        );
    }

    fn master_receive(
        &mut self,
        now: Duration,
        src: IpAddr,
        priority: u8,
        interval: Duration,
        out: &mut Vec<Action>,
    ) {
        if priority == 0 {
            // Another router left: answer at once so backups keep following us.
            self.send_advertisement(self.priority, out);
            self.arm(
                now + self.config.advert_interval,
                TimerKind::Advertisement,
                out,
            );
            return;
        }
        let reason = if priority > self.priority {
            Reason::PreemptedBy {
                priority,
                from: src,
            }
        } else if priority == self.priority
            && address_key(&src) > address_key(&self.config.primary_address)
        {
            Reason::TieBreakLost {
                priority,
                from: src,
            }
        } else {
            // Discarded: we stay master and our next advertisement corrects them. But clients
            // may have followed the other master (a split brain healing, or a spoof): announce
            // again so they come back now (keepalived's `garp_lower_prio_repeat`), at most
            // once per [`REANNOUNCE_HOLD`].
            self.counters.lower_priority_masters += 1;
            if now >= self.next_reannounce {
                self.next_reannounce = now + REANNOUNCE_HOLD;
                out.push(Action::Announce(self.config.addresses.clone()));
            }
            return;
        };
        // One parting advertisement: the winner may never have heard us (a split brain
        // healing, where its advertisement reached us first); hearing a lower-priority master
        // makes it announce again, so clients that followed us go back at once. Backups that
        // follow it discard a lower priority.
        self.send_advertisement(self.priority, out);
        self.follow(src, priority, interval);
        self.change_state(now, State::Backup, reason, out);
    }

    /// Accepts `src` as the master: v3 learns its interval (RFC 5798 §6.4.2, §6.4.3), v2
    /// keeps its own (RFC 3768 discards a mismatch earlier).
    fn follow(&mut self, src: IpAddr, priority: u8, interval: Duration) {
        if self.config.version == Version::V3 {
            self.master_adver_interval = match self.config.max_learned_interval {
                Some(limit) if interval > limit => {
                    self.counters.learned_interval_capped += 1;
                    limit
                }
                _ => interval,
            };
        }
        self.master = Some(PeerMaster {
            address: src,
            priority,
        });
    }

    /// All side effects of a transition live here.
    fn change_state(&mut self, now: Duration, to: State, reason: Reason, out: &mut Vec<Action>) {
        let from = self.state;
        if from == State::Master && to != State::Master {
            if to != State::Backup {
                // Leaving the protocol (shutdown or fault): hand over with priority 0 so a
                // backup takes over after Skew_Time instead of Master_Down_Interval.
                self.send_advertisement(0, out);
            }
            out.push(Action::RemoveAddresses(self.config.addresses.clone()));
        }
        self.takeover_reason = None;
        match to {
            State::Master => {
                self.master = None;
                self.counters.master_transitions += 1;
                self.counters.new_master_reason = match reason {
                    Reason::AddressOwner => NewMasterReason::Priority,
                    Reason::PreemptedLower { .. } => NewMasterReason::Preempted,
                    _ => NewMasterReason::MasterNoResponse,
                };
                out.push(Action::AddAddresses {
                    addresses: self.config.addresses.clone(),
                    accept: self.config.accept_mode || self.priority == 255,
                });
                self.send_advertisement(self.priority, out);
                out.push(Action::Announce(self.config.addresses.clone()));
                self.arm(
                    now + self.config.advert_interval,
                    TimerKind::Advertisement,
                    out,
                );
            }
            State::Backup => {
                self.arm(
                    now + self.master_down_interval(),
                    TimerKind::MasterDown,
                    out,
                );
            }
            State::Initialize | State::Fault => {
                self.master = None;
                if self.timer.take().is_some() {
                    out.push(Action::CancelTimer);
                }
            }
        }
        if from == State::Master && to != State::Master {
            self.counters.new_master_reason = NewMasterReason::NotMaster;
        }
        self.state = to;
        let transition = Transition {
            from,
            to,
            at: now,
            reason,
        };
        self.last_transition = Some(transition.clone());
        out.push(Action::StateChanged(transition));
    }

    fn arm(&mut self, at: Duration, kind: TimerKind, out: &mut Vec<Action>) {
        self.timer = Some((kind, at));
        out.push(Action::ArmTimer { kind, at });
    }

    /// The advertisement this instance sends now: as many addresses as fit in the MTU; the
    /// master still owns all of them.
    pub fn advertisement(&self, priority: u8) -> Advertisement {
        let family = self.config.family();
        let fit = Advertisement::max_addresses(self.config.version, family, self.config.mtu);
        let addrs: Vec<IpAddr> = self
            .config
            .addresses
            .iter()
            .take(fit.min(self.config.advertised))
            .map(|v| v.address)
            .collect();
        Advertisement {
            version: self.config.version,
            vrid: self.config.vrid,
            priority,
            interval_cs: self.config.interval_cs(),
            addresses: Addresses::from_ip_addrs(family, &addrs),
            auth: self.config.authentication,
        }
    }

    fn send_advertisement(&mut self, priority: u8, out: &mut Vec<Action>) {
        self.counters.adverts_sent += 1;
        if priority == 0 {
            self.counters.priority_zero_sent += 1;
        }
        out.push(Action::SendAdvertisement(self.advertisement(priority)));
    }

    /// Whether the advertised list is the one we would send (same set, same order ignored).
    fn addresses_match(&self, received: &Addresses) -> bool {
        let mut ours = self.advertisement(self.priority).addresses.to_ip_addrs();
        let mut theirs = received.to_ip_addrs();
        ours.sort();
        theirs.sort();
        ours == theirs
    }
}

/// Primary addresses compare as unsigned integers in network byte order (RFC 5798 §6.4.3).
fn address_key(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}
