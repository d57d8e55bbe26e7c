//! Receiving: one task per (interface, family) reads its socket, decodes, and hands the
//! engine a [`FromReceiver`] message; the engine demultiplexes it to an instance by VRID and
//! feeds it in. Malformed packets are only counted ([`MalformedTally`]), so a flood costs the
//! engine one message a second and the log one line per ten seconds.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::warn;

use super::Engine;
use super::conflict::ForeignSigns;
use crate::agent::messages::{FromReceiver, SocketKey};
use crate::net::socket::VrrpReceiver;
use crate::vrrp::{Advertisement, DecodeError, Input};

/// Malformed packets are summed up in the log at most this often.
pub(super) const LOG_SUMMARY: Duration = Duration::from_secs(10);
/// Receivers hand their malformed-packet counts over this often.
const MALFORMED_FLUSH: Duration = Duration::from_secs(1);

/// Undecodable packets of one receiver since its last flush, by (VRID octet, error kind).
#[derive(Debug, Default)]
pub(super) struct MalformedTally(HashMap<(Option<u8>, String), (DecodeError, u64)>);

impl MalformedTally {
    /// Counts one packet: its payload (for the VRID octet) and why it did not decode.
    pub(super) fn add(&mut self, payload: &[u8], e: DecodeError) {
        let vrid = payload.get(1).copied();
        self.0
            .entry((vrid, e.kind().to_string()))
            .or_insert((e, 0))
            .1 += 1;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The counts for the engine: (VRID octet, error, count).
    pub(super) fn drain(&mut self) -> Vec<(Option<u8>, DecodeError, u64)> {
        self.0
            .drain()
            .map(|((vrid, _), (e, n))| (vrid, e, n))
            .collect()
    }
}

/// The log line's totals: (packets, "kind: count, …"); `None` when nothing was dropped.
pub(super) fn summary(counts: &BTreeMap<String, u64>) -> Option<(u64, String)> {
    if counts.is_empty() {
        return None;
    }
    let kinds = counts
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    Some((counts.values().sum(), kinds))
}

/// One receiver: read → decode → message, until the engine is gone.
async fn receive(key: SocketKey, rx: VrrpReceiver, tx: mpsc::Sender<FromReceiver>) {
    let mut malformed = MalformedTally::default();
    let mut flush = tokio::time::interval(MALFORMED_FLUSH);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(p) => match Advertisement::decode(&p.payload, p.src, p.dst) {
                    Ok(advertisement) => {
                        let msg = FromReceiver::Advert {
                            socket: key,
                            src: p.src,
                            ttl: p.ttl,
                            advertisement,
                        };
                        if tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => malformed.add(&p.payload, e),
                },
                Err(e) => {
                    warn!(error = %e, "VRRP receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = flush.tick(), if !malformed.is_empty() => {
                let counts = malformed.drain();
                if tx
                    .send(FromReceiver::Malformed { socket: key, counts })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

impl Engine {
    /// One receiver task per (interface, family), shared by every instance there.
    pub(super) fn ensure_receiver(&mut self, key: SocketKey, socket: socket2::Socket) {
        if self.receivers.contains_key(&key) {
            return; // a duplicate from a concurrent setup: closing a raw IP socket is cheap
        }
        let rx = match VrrpReceiver::from_socket(key.1, socket) {
            Ok(rx) => rx,
            Err(e) => {
                warn!(error = %e, "cannot register a VRRP receive socket");
                return;
            }
        };
        let task = tokio::spawn(receive(key, rx, self.from_receivers.clone()));
        self.receivers.insert(key, task);
    }

    /// Closes the receive sockets of an interface that is gone.
    pub(super) fn close_receivers(&mut self, ifindex: u32) {
        self.receivers.retain(|(i, _), task| {
            if *i == ifindex {
                task.abort();
            }
            *i != ifindex
        });
    }

    pub(super) fn on_packet(&mut self, p: FromReceiver) {
        match p {
            FromReceiver::Advert {
                socket,
                src,
                ttl,
                advertisement,
            } => self.on_advert(socket, src, ttl, advertisement),
            FromReceiver::Malformed { socket, counts } => self.on_malformed(socket, counts),
        }
    }

    fn on_malformed(&mut self, socket: SocketKey, counts: Vec<(Option<u8>, DecodeError, u64)>) {
        for (vrid, e, n) in counts {
            *self
                .malformed_since_log
                .entry(e.kind().to_string())
                .or_default() += n;
            match vrid.and_then(|v| self.demux.get(&(socket, v)).copied()) {
                Some(id) => {
                    let now = self.now();
                    let slot = self.slots.get_mut(&id).expect("slot");
                    for _ in 0..n {
                        // Counted only: no actions come of it.
                        slot.instance.handle(now, Input::Malformed(e.clone()));
                    }
                }
                None => {
                    *self
                        .global
                        .malformed
                        .entry(e.kind().to_string())
                        .or_default() += n
                }
            }
        }
    }

    pub(super) fn log_malformed_summary(&mut self) {
        if let Some((total, kinds)) = summary(&std::mem::take(&mut self.malformed_since_log)) {
            warn!(total, %kinds, "malformed VRRP packets dropped in the last {}s", LOG_SUMMARY.as_secs());
        }
    }

    fn on_advert(&mut self, socket: SocketKey, src: IpAddr, ttl: u8, adv: Advertisement) {
        let now = self.now();
        // A leaving master waits for its successor's first advertisement, then a short grace:
        // the successor binds the addresses and sends its gratuitous ARP / NA beside its
        // advertisement, and clients follow only once that has landed.
        if !self.leaving.is_empty() {
            self.successor_heard_by_leaving(socket, src, adv.vrid, adv.priority, now);
        }
        let Some(&id) = self.demux.get(&(socket, adv.vrid)) else {
            self.global.unknown_vrid += 1;
            return;
        };
        let slot = self.slots.get_mut(&id).expect("slot");
        if src == slot.resolved.config.primary_address {
            return; // our own advertisement, looped back by a misbehaving driver
        }
        self.successor_heard_by_slot(id, src, adv.priority, now);
        let slot = self.slots.get_mut(&id).expect("slot");
        let before = ForeignSigns::of(slot.instance.counters());
        let vrid = adv.vrid;
        let actions = slot.instance.handle(
            now,
            Input::Advertisement {
                src,
                ttl,
                advertisement: adv,
            },
        );
        self.note_conflict(id, before, src, vrid, now);
        self.after_handle(id, actions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_by_vrid_and_kind() {
        let mut t = MalformedTally::default();
        assert!(t.is_empty());
        t.add(&[0x31, 7, 0], DecodeError::NoAddresses);
        t.add(&[0x31, 7, 0], DecodeError::NoAddresses);
        t.add(&[0x31, 8, 0], DecodeError::NoAddresses);
        t.add(&[0x31], DecodeError::ZeroInterval);
        let mut counts = t.drain();
        counts.sort_by_key(|(vrid, _, _)| *vrid);
        assert_eq!(
            counts,
            vec![
                (None, DecodeError::ZeroInterval, 1),
                (Some(7), DecodeError::NoAddresses, 2),
                (Some(8), DecodeError::NoAddresses, 1),
            ]
        );
        assert!(t.is_empty(), "drained");
    }

    #[test]
    fn the_summary_sums_every_kind() {
        assert_eq!(summary(&BTreeMap::new()), None);
        let counts = BTreeMap::from([("checksum".to_string(), 3), ("length".to_string(), 2)]);
        assert_eq!(
            summary(&counts),
            Some((5, "checksum: 3, length: 2".to_string()))
        );
    }
}
