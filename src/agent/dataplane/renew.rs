//! Address lifetimes, the last resort behind the warden: every address we bind lives the
//! lifetime its configuration sets ([`renewal`] of the addresses it may bind: 90 s, longer
//! beyond [`RENEWALS_PER_SECOND`] × 30), and this task renews what a live instance holds and
//! the kernel shows as ours, once a third of that lifetime has passed. If the agent and its
//! warden both die, nothing renews, and the addresses go by themselves; an address no running
//! instance holds is never renewed. Off the VRRP path: the engine never waits on it.
//!
//! [`RENEWALS_PER_SECOND`]: crate::model::host::RENEWALS_PER_SECOND

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tracing::warn;

use super::Ctx;
use super::kernel::Kernel;
use crate::model::host::renewal;
use crate::net::netlink::{Address, RENEW_EVERY};
use crate::vrrp::VirtualAddress;

/// Renewals in flight at once.
const PARALLEL: usize = 64;

/// Renews until aborted.
pub(crate) async fn run<K: Kernel>(ctx: Arc<Ctx<K>>) {
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    // The last round, and the shortest lifetime an address held may have had since.
    let mut last: Option<(tokio::time::Instant, Duration)> = None;
    loop {
        tick.tick().await;
        let wanted = ctx.ledger.lock().expect("ledger").renewable();
        if wanted.is_empty() {
            last = None;
            continue;
        }
        let now = tokio::time::Instant::now();
        let bound_with = ctx.kernel.lifetime();
        // The first addresses were bound since the last tick (none were held then), with the
        // lifetime the configuration set.
        let (since, given) =
            *last.get_or_insert((now.checked_sub(RENEW_EVERY).unwrap_or(now), bound_with));
        let round = plan(wanted.len(), bound_with, given, now - since);
        if round.raise {
            ctx.kernel.set_lifetime(round.lifetime);
        }
        if !round.due {
            last = Some((since, given.min(bound_with)));
            continue;
        }
        last = Some((now, round.lifetime));
        let present = match ctx.kernel.addresses(None).await {
            Ok(p) => p,
            Err(e) => {
                ctx.count_netlink_errors(1);
                if !failing {
                    warn!(error = %e, "cannot list addresses to renew their lifetimes");
                }
                failing = true;
                continue;
            }
        };
        let failed = renew_all(&ctx.kernel, ours_present(wanted, &present)).await;
        ctx.count_netlink_errors(failed);
        if failed > 0 && !failing {
            warn!(failed, "cannot renew the lifetime of virtual addresses");
        }
        failing = failed > 0;
    }
}

/// One tick's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Round {
    /// Renew every address held now.
    pub due: bool,
    /// The lifetime to give.
    pub lifetime: Duration,
    /// The lifetime is raised (more held than the configuration said).
    pub raise: bool,
}

/// `held` addresses, bound with `bound_with` (the configuration's lifetime), the shortest of
/// them given `given` at the last round `ago`: a round is due once a third of that lifetime
/// has passed (two may be missed), or at once when more are held than the lifetime was made
/// for (the period grows beyond what the shorter lifetimes last). Never more often than
/// [`renewal`] allows for `held`.
pub(crate) fn plan(held: usize, bound_with: Duration, given: Duration, ago: Duration) -> Round {
    let (_, needed) = renewal(held);
    let lifetime = needed.max(bound_with);
    let raise = needed > bound_with;
    // A third of the lifetime given (never shorter than `every`: lifetimes are at least
    // three periods), due at 90%: a tick's jitter must not skip a renewal.
    let due = raise || ago >= (given / 3).mul_f32(0.9);
    Round {
        due,
        lifetime,
        raise,
    }
}

/// Those of `wanted` the kernel shows with our mark: never renew someone else's address (the
/// kernel's replace would rewrite it as ours), nor one that is gone (it would add it back
/// behind the data plane's back: the watch puts back what was removed).
pub(crate) fn ours_present(
    wanted: Vec<(u32, VirtualAddress)>,
    present: &[Address],
) -> Vec<(u32, VirtualAddress)> {
    let ours: std::collections::HashSet<(u32, std::net::IpAddr)> = present
        .iter()
        .filter(|a| a.is_ours())
        .map(|a| (a.index, a.address))
        .collect();
    wanted
        .into_iter()
        .filter(|(link, a)| ours.contains(&(*link, a.address)))
        .collect()
}

/// Renews addresses concurrently; returns how many failed.
pub(crate) async fn renew_all<K: Kernel>(
    kernel: &K,
    addresses: Vec<(u32, VirtualAddress)>,
) -> usize {
    futures::stream::iter(addresses)
        .map(|(link, a)| async move { kernel.renew_address(link, a).await.is_err() })
        .buffer_unordered(PARALLEL)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::netlink::ADDRESS_PROTO;

    fn addr(index: u32, s: &str, proto: Option<u8>) -> Address {
        Address {
            index,
            address: s.parse().unwrap(),
            prefix_len: 24,
            proto,
        }
    }

    fn va(s: &str) -> VirtualAddress {
        VirtualAddress {
            address: s.parse().unwrap(),
            prefix_len: 24,
        }
    }

    #[test]
    fn renewals_follow_the_lifetime_addresses_were_bound_with() {
        let s = Duration::from_secs;
        // 1,000 addresses bound with the lifetime their configuration set (750 s): nothing
        // to do until a third of it has passed, then a round.
        let r = plan(1000, s(750), s(750), s(30));
        assert_eq!((r.due, r.raise, r.lifetime), (false, false, s(750)));
        assert!(plan(1000, s(750), s(750), s(240)).due);
        // Ten addresses: every 30 s with 90 s.
        assert!(!plan(10, s(90), s(90), s(20)).due);
        assert!(plan(10, s(90), s(90), s(30)).due);
        // The configuration grew to 1,000 while 10 were held with 90 s: they are renewed
        // at the next tick for 90 s still, not 250 s later.
        assert!(plan(10, s(750), s(90), s(30)).due);
        assert!(!plan(10, s(750), s(90), s(20)).due);
        // More held than the configuration said: raised, and renewed at once.
        let r = plan(1000, s(90), s(90), s(1));
        assert_eq!((r.due, r.raise, r.lifetime), (true, true, s(750)));
        // A round never comes more often than the budget allows.
        for (n, ago) in [(1000usize, 200u64), (121, 20)] {
            let (every, life) = renewal(n);
            assert!(!plan(n, life, life, s(ago)).due, "{n}");
            assert!(plan(n, life, life, every).due, "{n}");
        }
    }

    #[test]
    fn only_what_is_there_and_ours_is_renewed() {
        let present = [
            addr(2, "198.51.100.50", Some(ADDRESS_PROTO)),
            // Someone replaced ours with theirs: never rewritten.
            addr(2, "198.51.100.51", None),
            // Ours, on another interface than the ledger says.
            addr(3, "198.51.100.52", Some(ADDRESS_PROTO)),
        ];
        let wanted = vec![
            (2, va("198.51.100.50")),
            (2, va("198.51.100.51")),
            (2, va("198.51.100.52")),
            (2, va("198.51.100.53")), // gone
        ];
        assert_eq!(
            ours_present(wanted, &present),
            vec![(2, va("198.51.100.50"))]
        );
    }
}
