//! [`DurationText`]: a duration field as the user wrote it, with its one schema.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::units::DURATION_PATTERN;

/// A duration as the user wrote it ("1s", "100ms"): a string matching
/// [`DURATION_PATTERN`], parsed by validation (which names the field when it is wrong). A bare
/// number is read as text so that validation can say the unit is missing, instead of a bare
/// type error.
///
/// The schema is a string with the pattern, inlined where the field is, so a field's doc
/// comment stays its description; bounds such as `length(max = 32)` stay on the field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DurationText(String);

impl DurationText {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For fields that refuse a bare number with serde's type error (the pool's, as before
    /// this type): `#[serde(deserialize_with = "DurationText::strict")]`.
    pub(super) fn strict<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DurationText>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(DurationText))
    }
}

/// For duration fields whose schema has no pattern (the GARP timings, as before this type):
/// read like a [`DurationText`], kept as a plain string so the CRD does not change.
pub(super) fn duration_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    Ok(Option::<DurationText>::deserialize(d)?.map(|t| t.0))
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            S(String),
            I(i64),
            F(f64),
        }
        Ok(DurationText(match Text::deserialize(d)? {
            Text::S(s) => s,
            Text::I(i) => i.to_string(),
            Text::F(f) => f.to_string(),
        }))
    }
}

impl JsonSchema for DurationText {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "DurationText".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // A rule rather than a bare pattern: the API server then refuses with the sentence
        // every reader uses (`units::NOT_A_DURATION`), not with the regular expression.
        let message = format!("'\"' + self + '\" {}'", crate::units::NOT_A_DURATION);
        json_schema!({
            "type": "string",
            "x-kubernetes-validations": [{
                "rule": format!("self.matches('{}')", DURATION_PATTERN.replace('\\', "\\\\")),
                "messageExpression": message,
            }],
        })
    }
}

impl Deref for DurationText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for DurationText {
    fn from(s: String) -> Self {
        DurationText(s)
    }
}

impl From<&str> for DurationText {
    fn from(s: &str) -> Self {
        DurationText(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Lenient {
        d: Option<DurationText>,
    }

    #[derive(Deserialize)]
    struct Strict {
        #[serde(default, deserialize_with = "DurationText::strict")]
        d: Option<DurationText>,
    }

    #[test]
    fn bare_numbers_are_read_as_text_for_validation_to_refuse() {
        let read = |json: &str| serde_json::from_str::<Lenient>(json).unwrap().d;
        assert_eq!(read(r#"{"d": "1s"}"#).as_deref(), Some("1s"));
        assert_eq!(read(r#"{"d": 2}"#).as_deref(), Some("2"));
        assert_eq!(read(r#"{"d": 1.5}"#).as_deref(), Some("1.5"));
        assert_eq!(read(r#"{"d": null}"#), None);
        assert_eq!(read("{}"), None);
        assert!(serde_json::from_str::<Lenient>(r#"{"d": [1]}"#).is_err());
    }

    #[test]
    fn strict_fields_refuse_a_bare_number() {
        let read = |json: &str| serde_json::from_str::<Strict>(json).map(|s| s.d);
        assert_eq!(read(r#"{"d": "1s"}"#).unwrap().as_deref(), Some("1s"));
        assert_eq!(read("{}").unwrap(), None);
        let e = read(r#"{"d": 2}"#).unwrap_err().to_string();
        assert!(
            e.contains("invalid type: integer `2`, expected a string"),
            "{e}"
        );
    }

    #[test]
    fn serializes_as_the_text() {
        let d = DurationText::from("100ms");
        assert_eq!(serde_json::to_string(&d).unwrap(), r#""100ms""#);
        assert_eq!(d.to_string(), "100ms");
    }
}
