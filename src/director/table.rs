//! Lookup tables that spread connections by weight: [`SLOTS`] slots, each naming one real
//! server. Pure and deterministic: every director computes the same table from the same
//! servers, so a backup that takes over sends a flow where the master sent it.
//!
//! - [`maglev`]: for hashed scheduling (source hash, and every direct-routing flow). Each
//!   server holds exactly its weight's share of the slots (largest remainder, so within one
//!   slot of it and never fewer than a lighter server), and a server that leaves or comes
//!   back moves little more than its own slots (Maglev, Eisenbud et al., NSDI 2016, §3.4,
//!   with weighted turns).
//! - [`round_robin`]: for the counter (`numgen inc`): the slots in smooth weighted round-robin
//!   order, so consecutive connections go to servers in turn, in proportion to weight.

use std::net::SocketAddr;

/// Slots of a table: a prime (Maglev's permutations need one), large enough that a slot is
/// 0.025 % of the traffic, small enough that a whole table loads in one `nft` run in tens of
/// milliseconds.
pub const SLOTS: u32 = 4093;

/// How many slots each server holds: proportional to weight, by largest remainder (ties to
/// the earlier server). `weights` are all > 0. Monotone: a heavier server never holds fewer.
pub(crate) fn quotas(weights: &[u32]) -> Vec<u32> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return vec![0; weights.len()];
    }
    let slots = u64::from(SLOTS);
    let mut q: Vec<u32> = weights
        .iter()
        .map(|w| (u64::from(*w) * slots / total) as u32)
        .collect();
    let mut left = SLOTS - q.iter().sum::<u32>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Largest remainder first; among equal remainders, the heavier, then the earlier.
    order.sort_by(|a, b| {
        let ra = u64::from(weights[*a]) * slots % total;
        let rb = u64::from(weights[*b]) * slots % total;
        rb.cmp(&ra)
            .then(weights[*b].cmp(&weights[*a]))
            .then(a.cmp(b))
    });
    for i in order {
        if left == 0 {
            break;
        }
        q[i] += 1;
        left -= 1;
    }
    q
}

/// A Maglev table over `servers` (address, weight > 0): slot → index into `servers`. Empty
/// when there are none.
pub(crate) fn maglev(servers: &[(SocketAddr, u32)]) -> Vec<u16> {
    if servers.is_empty() {
        return Vec::new();
    }
    // By address, so the order the servers are written in changes nothing.
    let mut order: Vec<usize> = (0..servers.len()).collect();
    order.sort_by_key(|i| servers[*i].0);
    let sorted: Vec<(SocketAddr, u32)> = order.iter().map(|i| servers[*i]).collect();
    maglev_sorted(&sorted)
        .into_iter()
        .map(|i| order[i as usize] as u16)
        .collect()
}

fn maglev_sorted(servers: &[(SocketAddr, u32)]) -> Vec<u16> {
    let m = u64::from(SLOTS);
    let quota = quotas(&servers.iter().map(|s| s.1).collect::<Vec<_>>());
    // Each server's preference: offset, offset + skip, offset + 2 skip, ... (mod a prime: a
    // permutation of the slots).
    let perm: Vec<(u64, u64)> = servers
        .iter()
        .map(|(a, _)| {
            let name = a.to_string();
            let offset = fnv1a(name.as_bytes(), 0) % m;
            let skip = fnv1a(name.as_bytes(), 1) % (m - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; servers.len()];
    let mut held = vec![0u32; servers.len()];
    let mut table = vec![u16::MAX; SLOTS as usize];
    let mut filled = 0;
    // Weighted turns: in each round a server claims its share of the round (credit grows by
    // its quota, a claim costs the largest quota), so heavy and light servers interleave as
    // they fill, which keeps a change local.
    let most = *quota.iter().max().expect("not empty");
    let mut credit = vec![0u64; servers.len()];
    while filled < SLOTS {
        for i in 0..servers.len() {
            if held[i] >= quota[i] {
                continue;
            }
            credit[i] += u64::from(quota[i]);
            while credit[i] >= u64::from(most) && held[i] < quota[i] {
                credit[i] -= u64::from(most);
                let (offset, skip) = perm[i];
                let slot = loop {
                    let c = ((offset + next[i] * skip) % m) as usize;
                    next[i] += 1;
                    if table[c] == u16::MAX {
                        break c;
                    }
                };
                table[slot] = i as u16;
                held[i] += 1;
                filled += 1;
            }
        }
    }
    table
}

/// Round-robin order over `servers` (address, weight > 0): slot → index, in smooth weighted
/// round-robin order (nginx's: each turn every server gains its weight, the richest is chosen
/// and pays the total), so a counter walking the slots visits servers in turn.
pub(crate) fn round_robin(servers: &[(SocketAddr, u32)]) -> Vec<u16> {
    if servers.is_empty() {
        return Vec::new();
    }
    let total: i64 = servers.iter().map(|s| i64::from(s.1)).sum();
    let mut current = vec![0i64; servers.len()];
    (0..SLOTS)
        .map(|_| {
            for (c, s) in current.iter_mut().zip(servers) {
                *c += i64::from(s.1);
            }
            let best = (0..servers.len())
                .max_by(|a, b| current[*a].cmp(&current[*b]).then(b.cmp(a)))
                .expect("not empty");
            current[best] -= total;
            best as u16
        })
        .collect()
}

/// FNV-1a, 64 bits, with a seed byte: stable across agents, versions and restarts.
fn fnv1a(bytes: &[u8], seed: u8) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::iter::once(&seed).chain(bytes) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(weights: &[u32]) -> Vec<(SocketAddr, u32)> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("198.51.100.{}:80", 21 + i).parse().unwrap(), *w))
            .collect()
    }

    fn counts(table: &[u16], n: usize) -> Vec<u32> {
        let mut c = vec![0; n];
        for s in table {
            c[*s as usize] += 1;
        }
        c
    }

    #[test]
    fn every_server_holds_its_weights_share_within_one_slot() {
        for weights in [
            vec![1; 10],
            (1..=8).collect::<Vec<u32>>(),
            vec![3, 2, 1],
            vec![1, 1000],
            vec![7],
        ] {
            let s = servers(&weights);
            let t = maglev(&s);
            assert_eq!(t.len(), SLOTS as usize);
            let total: u32 = weights.iter().sum();
            for (i, c) in counts(&t, s.len()).into_iter().enumerate() {
                let exact = f64::from(weights[i]) * f64::from(SLOTS) / f64::from(total);
                assert!(
                    (f64::from(c) - exact).abs() < 1.0,
                    "{weights:?}: server {i} holds {c}, its share is {exact:.1}"
                );
            }
        }
    }

    #[test]
    fn a_heavier_server_never_holds_fewer_slots() {
        for weights in [(1..=8).collect::<Vec<u32>>(), vec![5, 4, 4, 3, 1, 1, 2]] {
            let q = quotas(&weights);
            for i in 0..weights.len() {
                for j in 0..weights.len() {
                    if weights[i] > weights[j] {
                        assert!(q[i] >= q[j], "{weights:?} -> {q:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_same_servers_give_the_same_table_in_any_order() {
        let s = servers(&[1, 2, 3, 4]);
        let t = maglev(&s);
        assert_eq!(t, maglev(&s), "deterministic");
        let mut r = s.clone();
        r.reverse();
        let back: Vec<SocketAddr> = maglev(&r).iter().map(|i| r[*i as usize].0).collect();
        let fwd: Vec<SocketAddr> = t.iter().map(|i| s[*i as usize].0).collect();
        assert_eq!(back, fwd, "the order they are written in changes nothing");
    }

    #[test]
    fn a_server_that_leaves_moves_little_more_than_its_own_slots() {
        let s = servers(&[1; 10]);
        let before: Vec<SocketAddr> = maglev(&s).iter().map(|i| s[*i as usize].0).collect();
        let gone = s[3].0;
        let rest: Vec<(SocketAddr, u32)> = s.iter().copied().filter(|x| x.0 != gone).collect();
        let after: Vec<SocketAddr> = maglev(&rest).iter().map(|i| rest[*i as usize].0).collect();
        let own = before.iter().filter(|a| **a == gone).count();
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        assert!(after.iter().all(|a| *a != gone));
        // The minimum is its own slots (10 %); Maglev moves a little more.
        assert!(
            moved >= own && moved as f64 <= 1.6 * own as f64,
            "moved {moved} of {SLOTS}, its own {own}"
        );
        // And back: the same table as before.
        let again: Vec<SocketAddr> = maglev(&s).iter().map(|i| s[*i as usize].0).collect();
        assert_eq!(again, before);
    }

    #[test]
    fn round_robin_takes_servers_in_turn_by_weight() {
        let s = servers(&[1, 1, 1]);
        let t = round_robin(&s);
        assert_eq!(&t[..6], &[0, 1, 2, 0, 1, 2]);
        let s = servers(&[5, 1, 1]);
        let t = round_robin(&s);
        // Smooth: the heavy server's turns are spread, not five in a row.
        assert_eq!(&t[..7], &[0, 0, 1, 0, 2, 0, 0]);
        let c = counts(&t, 3);
        assert!((c[0] as i64 - 5 * c[1] as i64).abs() <= 5, "{c:?}");
        assert!(round_robin(&[]).is_empty() && maglev(&[]).is_empty());
    }
}
