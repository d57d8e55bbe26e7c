//! The agent's last will, and what its warden does with it (pure: the process shell is
//! `warden.rs`).
//!
//! The agent runs as the child of a small warden process. While it lives, the engine keeps
//! its will up to date: for every instance it is master of, the priority-0 advertisement it
//! would send on a graceful stop, already encoded for each destination. When the agent
//! ends without releasing (a crash, SIGKILL, the OOM killer, a panic), the warden sends
//! those advertisements at once (every backup takes over after its skew time, as on a
//! graceful stop: RFC 5798 6.4.2) and removes every address the kernel shows with our mark.
//! A graceful stop (exit status 0) has released everything itself: the warden does nothing.
//!
//! The will travels over a pipe as frames: a 4-byte big-endian length, then the will in
//! JSON. A frame is bounded ([`MAX_FRAME`]); the newest complete frame is the will.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::Family;

/// The environment variable that tells an agent it runs under a warden, and on which file
/// descriptor (the write end of the will's pipe) it publishes its will.
pub(crate) const WILL_FD_ENV: &str = "KUBE_VRRP_WILL_FD";

/// The largest will a warden reads (1,000 masters with 20 IPv6 addresses each, to two
/// destinations, take about 1.5 MB).
pub(crate) const MAX_FRAME: usize = 8 << 20;

/// One advertisement to send on the agent's behalf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Farewell {
    /// The interface it leaves from (the virtual-MAC one in VMAC mode).
    pub ifindex: u32,
    /// The instance's primary address: the advertisement's checksum covers it.
    pub source: IpAddr,
    /// The group, or a unicast peer.
    pub destination: IpAddr,
    /// The encoded VRRP message, priority 0.
    pub packet: Vec<u8>,
}

/// Everything the warden needs to hand over for a dead agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Will {
    pub farewells: Vec<Farewell>,
}

impl Will {
    /// One frame: length, then JSON.
    pub(crate) fn frame(&self) -> Vec<u8> {
        let body = serde_json::to_vec(self).expect("a will serializes");
        let mut out = Vec::with_capacity(body.len() + 4);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }
}

/// Why the warden stopped reading a will (it keeps the last good one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("a will of {0} bytes is over the {MAX_FRAME}-byte bound")]
    TooLarge(usize),
    #[error("a will that does not parse: {0}")]
    Malformed(String),
}

/// Reads frames as bytes arrive; holds the newest complete will.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    buf: Vec<u8>,
    will: Will,
    broken: Option<ReadError>,
}

impl Reader {
    /// Takes bytes from the pipe. After an error the rest is ignored (the agent is the same
    /// binary: a broken frame means a bug, and the last good will is the best there is).
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<(), ReadError> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        self.buf.extend_from_slice(bytes);
        loop {
            let Some(len) = self.buf.get(..4) else {
                return Ok(());
            };
            let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
            if len > MAX_FRAME {
                return Err(self.fail(ReadError::TooLarge(len)));
            }
            if self.buf.len() < 4 + len {
                return Ok(());
            }
            match serde_json::from_slice::<Will>(&self.buf[4..4 + len]) {
                Ok(w) => self.will = w,
                Err(e) => return Err(self.fail(ReadError::Malformed(e.to_string()))),
            }
            self.buf.drain(..4 + len);
        }
    }

    fn fail(&mut self, e: ReadError) -> ReadError {
        self.buf = Vec::new();
        self.broken = Some(e.clone());
        e
    }

    /// The newest complete will (empty before the first).
    pub(crate) fn will(&self) -> &Will {
        &self.will
    }
}

impl Farewell {
    /// The virtual router it speaks for: (interface, family, VRID).
    fn router(&self) -> (u32, Family, u8) {
        (
            self.ifindex,
            Family::of(&self.source),
            self.packet.get(1).copied().unwrap_or(0),
        )
    }

    /// The advertisement interval it carries (v3: centiseconds, v2: seconds).
    fn interval(&self) -> Duration {
        match (self.packet.first().map(|b| b >> 4), self.packet.get(4..6)) {
            (Some(3), Some(&[hi, lo])) => {
                Duration::from_millis(u64::from(u16::from_be_bytes([hi & 0x0f, lo])) * 10)
            }
            (Some(2), Some(&[_, secs])) => Duration::from_secs(u64::from(secs)),
            _ => Duration::ZERO,
        }
    }
}

/// Make before break for a dead agent: after the farewells, the warden keeps the addresses
/// until every virtual router's successor is heard (an advertisement above priority 0), then
/// [`GRACE`] more for the successor's gratuitous ARP / NA, as the agent's own graceful stop
/// does; at most one advertisement interval plus the grace, and never past [`MAX_WAIT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Handover {
    waiting: BTreeSet<(u32, Family, u8)>,
    /// How long to wait for successors, from the farewells.
    pub deadline: Duration,
}

/// Time for a successor's bind and announcements to reach the clients.
pub(crate) const GRACE: Duration = Duration::from_millis(50);
/// The longest the warden keeps a dead agent's addresses: they are gone within a second.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(900);

impl Handover {
    pub(crate) fn new(farewells: &[Farewell]) -> Handover {
        let longest = farewells
            .iter()
            .map(Farewell::interval)
            .max()
            .unwrap_or_default();
        Handover {
            waiting: farewells.iter().map(Farewell::router).collect(),
            deadline: (longest + GRACE).min(MAX_WAIT),
        }
    }

    /// A VRRP message arrived on `ifindex`: a successor if it is above priority 0 for a
    /// router still waiting. Returns whether every router has its successor.
    pub(crate) fn heard(&mut self, ifindex: u32, family: Family, payload: &[u8]) -> bool {
        if let (Some(&vrid), Some(&priority)) = (payload.get(1), payload.get(2))
            && priority > 0
        {
            self.waiting.remove(&(ifindex, family, vrid));
        }
        self.done()
    }

    pub(crate) fn done(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The interfaces and families to listen on.
    pub(crate) fn listen_on(&self) -> BTreeSet<(u32, Family)> {
        self.waiting.iter().map(|(i, f, _)| (*i, *f)).collect()
    }
}

/// How the agent ended, as the warden saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal.
    Killed(i32),
}

/// What the warden does once the agent has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LastRites {
    /// Advertisements to send, in order.
    pub farewells: Vec<Farewell>,
    /// Whether to remove every address with our mark.
    pub remove_addresses: bool,
    /// The warden's own exit status (the container's: kubelet restarts it).
    pub exit_code: u8,
}

/// A graceful stop (status 0) released everything; any other end hands over what the will
/// says and removes our addresses. The warden exits as the agent did (128 + the signal for
/// a killed one, as a shell reports it).
pub(crate) fn last_rites(ended: Ended, will: &Will) -> LastRites {
    match ended {
        Ended::Exited(0) => LastRites {
            farewells: Vec::new(),
            remove_addresses: false,
            exit_code: 0,
        },
        Ended::Exited(code) => LastRites {
            farewells: will.farewells.clone(),
            remove_addresses: true,
            exit_code: u8::try_from(code).unwrap_or(1).max(1),
        },
        Ended::Killed(signal) => LastRites {
            farewells: will.farewells.clone(),
            remove_addresses: true,
            exit_code: u8::try_from(128 + signal).unwrap_or(255),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn will(n: u8) -> Will {
        Will {
            farewells: (0..n)
                .map(|i| Farewell {
                    ifindex: 2,
                    source: "198.51.100.11".parse().unwrap(),
                    destination: "224.0.0.18".parse().unwrap(),
                    packet: vec![0x31, i, 0, 1],
                })
                .collect(),
        }
    }

    #[test]
    fn the_newest_complete_frame_is_the_will_however_the_bytes_arrive() {
        let mut stream = will(1).frame();
        stream.extend(will(3).frame());
        let half = will(2).frame();
        stream.extend(&half[..half.len() / 2]);
        // Byte by byte: every split point of the stream.
        let mut r = Reader::default();
        assert_eq!(r.will(), &Will::default());
        for b in &stream {
            r.feed(std::slice::from_ref(b)).unwrap();
        }
        // The third frame is incomplete: the second one stands.
        assert_eq!(r.will(), &will(3));
        r.feed(&half[half.len() / 2..]).unwrap();
        assert_eq!(r.will(), &will(2));
        // An empty will replaces a full one (the agent is master of nothing any more).
        r.feed(&Will::default().frame()).unwrap();
        assert!(r.will().farewells.is_empty());
    }

    #[test]
    fn an_oversized_or_broken_frame_keeps_the_last_good_will() {
        let mut r = Reader::default();
        r.feed(&will(2).frame()).unwrap();
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert_eq!(r.feed(&huge), Err(ReadError::TooLarge(MAX_FRAME + 1)));
        // Nothing more is read, and nothing was buffered for the huge frame.
        assert!(r.feed(&will(1).frame()).is_err());
        assert!(r.buf.is_empty());
        assert_eq!(r.will(), &will(2));

        let mut r = Reader::default();
        r.feed(&will(1).frame()).unwrap();
        let mut bad = 3u32.to_be_bytes().to_vec();
        bad.extend(b"{x}");
        assert!(matches!(r.feed(&bad), Err(ReadError::Malformed(_))));
        assert_eq!(r.will(), &will(1));
    }

    fn farewell(ifindex: u32, source: &str, packet: Vec<u8>) -> Farewell {
        Farewell {
            ifindex,
            source: source.parse().unwrap(),
            destination: "224.0.0.18".parse().unwrap(),
            packet,
        }
    }

    #[test]
    fn addresses_stay_until_every_successor_is_heard_or_the_deadline() {
        // v3, VRID 51 at 100 ms (10 cs); v3 IPv6 VRID 52 at 1 s; the same VRID to two
        // unicast peers counts once.
        let v4 = farewell(2, "198.51.100.11", vec![0x31, 51, 0, 1, 0x00, 10, 0, 0]);
        let v6 = farewell(2, "fe80::1", vec![0x31, 52, 0, 1, 0x00, 100, 0, 0]);
        let mut h = Handover::new(&[v4.clone(), v4.clone(), v6]);
        assert_eq!(h.deadline, Duration::from_millis(1000 + 50).min(MAX_WAIT));
        assert_eq!(h.listen_on(), [(2, Family::V4), (2, Family::V6)].into());
        // A priority-0 message (our own farewell, or another router leaving) is no successor,
        // nor one of another router, interface or family.
        assert!(!h.heard(2, Family::V4, &[0x31, 51, 0]));
        assert!(!h.heard(3, Family::V4, &[0x31, 51, 150]));
        assert!(!h.heard(2, Family::V6, &[0x31, 51, 150]));
        assert!(!h.heard(2, Family::V4, &[0x31, 52, 150]));
        assert!(!h.heard(2, Family::V4, &[0x31]));
        assert!(!h.heard(2, Family::V4, &[0x31, 51, 150]));
        assert!(h.heard(2, Family::V6, &[0x31, 52, 150]));

        // v2 at 1 s; at 100 ms the deadline is one interval and the grace.
        let v2 = farewell(2, "198.51.100.11", vec![0x21, 7, 0, 1, 1, 1, 0, 0]);
        assert_eq!(Handover::new(&[v2]).deadline, MAX_WAIT);
        assert_eq!(
            Handover::new(&[v4]).deadline,
            Duration::from_millis(100) + GRACE
        );
        // Nothing to hand over: nothing to wait for.
        let none = Handover::new(&[]);
        assert!(none.done());
        assert_eq!(none.deadline, GRACE);
    }

    #[test]
    fn only_a_graceful_stop_leaves_nothing_to_do() {
        let w = will(2);
        let clean = last_rites(Ended::Exited(0), &w);
        assert!(clean.farewells.is_empty() && !clean.remove_addresses);
        assert_eq!(clean.exit_code, 0);

        let failed = last_rites(Ended::Exited(1), &w);
        assert_eq!(failed.farewells, w.farewells);
        assert!(failed.remove_addresses);
        assert_eq!(failed.exit_code, 1);

        let killed = last_rites(Ended::Killed(9), &w);
        assert_eq!(killed.farewells, w.farewells);
        assert!(killed.remove_addresses);
        assert_eq!(killed.exit_code, 137);

        // A status the shell cannot show is still a failure.
        assert_eq!(last_rites(Ended::Exited(300), &w).exit_code, 1);
        assert_eq!(last_rites(Ended::Exited(-1), &w).exit_code, 1);
    }
}
