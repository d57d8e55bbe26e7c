//! Field-level validation shared by every part of the model: what a field error is, and
//! durations within bounds.

use std::time::Duration;

use crate::units::{format_duration, parse_duration};

/// A field path and what is wrong with it.
pub(crate) type FieldError = (&'static str, String);

/// A duration field within `min..=max`, or what is wrong with it.
pub(crate) fn bounded(
    field: &'static str,
    text: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, FieldError> {
    let d = parse_duration(text).map_err(|e| (field, e))?;
    if d < min || d > max {
        return Err((
            field,
            format!(
                "{text:?} is out of range: use {} to {}",
                format_duration(min),
                format_duration(max)
            ),
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_durations_name_the_field_and_the_range() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(3600));
        assert_eq!(
            bounded("spec.x", "1s", min, max),
            Ok(Duration::from_secs(1))
        );
        let (field, why) = bounded("spec.x", "10ms", min, max).unwrap_err();
        assert_eq!(field, "spec.x");
        assert_eq!(why, "\"10ms\" is out of range: use 100ms to 3600s");
        let (_, why) = bounded("spec.x", "10", min, max).unwrap_err();
        assert!(
            why.contains("is not a duration: write numbers each with a unit"),
            "{why}"
        );
    }
}
