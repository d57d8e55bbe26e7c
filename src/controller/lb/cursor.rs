//! A cursor that walks a pool's ranges of one family forward in search of a free address.

use std::net::IpAddr;

use crate::model::pool::{Range, from_int};
use crate::vrrp::Family;

/// A place among a pool's ranges of one family that only moves forward: within one plan,
/// every address behind it is taken or unusable, so the next search starts here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    range: usize,
    at: u128,
}

impl Cursor {
    /// At the first address of `ranges`; past the end when there are none (a pool without
    /// addresses of this family), so `find` answers `None` instead of panicking.
    pub(super) fn start(ranges: &[&Range]) -> Cursor {
        Cursor {
            range: 0,
            at: ranges.first().map_or(0, |r| r.start),
        }
    }

    /// The first address from here on that `usable` accepts, or `None` past the last range.
    /// The cursor stays on the address found: once it is taken, the next search steps over it.
    pub(super) fn find(
        &mut self,
        family: Family,
        ranges: &[&Range],
        mut usable: impl FnMut(IpAddr) -> bool,
    ) -> Option<IpAddr> {
        while self.range < ranges.len() {
            let r = ranges[self.range];
            if self.at > r.end {
                self.range += 1;
                if self.range < ranges.len() {
                    self.at = ranges[self.range].start;
                }
                continue;
            }
            let ip = from_int(family, self.at);
            if usable(ip) {
                return Some(ip);
            }
            self.at += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pool::parse_range;
    use crate::model::pool::tests::ip;

    #[test]
    fn the_cursor_walks_forward_across_ranges_and_stays_on_what_it_found() {
        let a = parse_range("198.51.100.0-198.51.100.1").unwrap();
        let b = parse_range("198.51.100.10").unwrap();
        let ranges = [&a, &b];
        let mut cur = Cursor::start(&ranges);
        let mut taken = vec![ip("198.51.100.0")];
        let next = |cur: &mut Cursor, taken: &mut Vec<IpAddr>| {
            let found = cur.find(Family::V4, &ranges, |ip| !taken.contains(&ip));
            taken.extend(found);
            found
        };
        assert_eq!(next(&mut cur, &mut taken), Some(ip("198.51.100.1")));
        assert_eq!(next(&mut cur, &mut taken), Some(ip("198.51.100.10")));
        assert_eq!(next(&mut cur, &mut taken), None);
        // Forward only: an address freed behind the cursor is not seen again.
        taken.clear();
        assert_eq!(cur.find(Family::V4, &ranges, |_| true), None);
        // Unusable addresses are stepped over.
        let mut cur = Cursor::start(&ranges);
        assert_eq!(
            cur.find(Family::V4, &ranges, |ip| ip
                == "198.51.100.10".parse::<IpAddr>().unwrap()),
            Some(ip("198.51.100.10"))
        );
    }
}
