//! The text forms of an address family this room reads and writes: the `ipv4`/`ipv6` in
//! router names (`p-ipv4-0`) and the `IPv4`/`IPv6` of a Service's `spec.ipFamilies`. Kept in
//! one place until the crate has a single family vocabulary.

use crate::vrrp::Family;

/// The family as it appears in router names and rendezvous seeds: `ipv4`, `ipv6`.
pub(crate) fn router_name_part(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

/// A `spec.ipFamilies` entry of a Service (`IPv4`, `IPv6`); anything else is no family.
pub(crate) fn from_service_spec(text: &str) -> Option<Family> {
    match text {
        "IPv4" => Some(Family::V4),
        "IPv6" => Some(Family::V6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_names_use_lower_case_and_service_specs_kubernetes_spelling() {
        assert_eq!(router_name_part(Family::V4), "ipv4");
        assert_eq!(router_name_part(Family::V6), "ipv6");
        assert_eq!(from_service_spec("IPv4"), Some(Family::V4));
        assert_eq!(from_service_spec("IPv6"), Some(Family::V6));
        assert_eq!(from_service_spec("ipv4"), None);
        assert_eq!(from_service_spec(""), None);
    }
}
