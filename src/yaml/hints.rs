//! The error texts every reader of VirtualIP YAML shares: what a number out of range means
//! for that field, which field a misspelt one probably is (from the CRD schema).

use crate::api::VirtualIP;

/// A deserialization error in words for the field it is about.
pub(crate) fn explain(path: &str, message: &str) -> String {
    let field = path.rsplit('.').next().unwrap_or(path);
    let field = field.split('[').next().unwrap_or(field);
    let number = message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("invalid value: integer"));
    let range = match field {
        "priority" | "defaultPriority" => {
            Some("priorities are 1 to 255 (255 makes the node the address owner)")
        }
        "virtualRouterID" => Some("virtual router IDs are 1 to 255 (0 is reserved)"),
        "version" => Some("the VRRP version is 2 or 3"),
        "weight" => Some("weights are -253 to 253"),
        "port" => Some("ports are 1 to 65535"),
        "fall" | "rise" => Some("use 1 to 100"),
        "masterRepeat" => Some("use 1 to 100"),
        _ => None,
    };
    match (number, range) {
        (Some(n), Some(r)) => format!("{n} is out of range: {r}"),
        (Some(n), None) => format!("{n} is out of range ({message})"),
        (None, _) if message.starts_with("invalid type: string") => {
            let what = message
                .split(", expected ")
                .nth(1)
                .unwrap_or("another type");
            let value = message.split('"').nth(1).unwrap_or("");
            let wanted = if what.starts_with('u') || what.starts_with('i') {
                "a number"
            } else {
                what
            };
            format!("{value:?} is text: expected {wanted}")
        }
        _ => message.to_string(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (
        a.to_lowercase().chars().collect(),
        b.to_lowercase().chars().collect(),
    );
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The field a misspelt one (a path such as `spec.healthCheck` or
/// `spec.healthChecks[0].intervall`) probably is, from the VirtualIP schema.
pub(crate) fn suggest(path: &str) -> Option<String> {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(VirtualIP::crd()).ok()?;
    let mut schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let segments: Vec<&str> = path.split('.').collect();
    let (last, parents) = segments.split_last()?;
    for seg in parents {
        // `healthChecks.0` (serde_ignored) or `healthChecks[0]` (serde_path_to_error).
        if seg.parse::<usize>().is_ok() {
            schema = &schema["items"];
            continue;
        }
        let name = seg.split('[').next().unwrap_or(seg);
        schema = &schema["properties"][name];
        if seg.contains('[') {
            schema = &schema["items"];
        }
    }
    let last = last.split('[').next().unwrap_or(last);
    schema["properties"]
        .as_object()?
        .keys()
        .map(|k| (edit_distance(k, last), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) || k.eq_ignore_ascii_case(last))
        .min()
        .map(|(_, k)| k.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_out_of_range_are_explained_for_their_field() {
        assert_eq!(
            explain(
                "spec.priorities[0].priority",
                "invalid value: integer `300`, expected u8"
            ),
            "300 is out of range: priorities are 1 to 255 (255 makes the node the address owner)"
        );
        assert_eq!(
            explain("spec.foo", "invalid value: integer `-1`, expected u32"),
            "-1 is out of range (invalid value: integer `-1`, expected u32)"
        );
        assert_eq!(
            explain(
                "spec.version",
                "invalid type: string \"three\", expected u8"
            ),
            "\"three\" is text: expected a number"
        );
        assert_eq!(explain("spec.x", "anything else"), "anything else");
    }

    #[test]
    fn misspelt_fields_find_their_schema_name() {
        assert_eq!(suggest("spec.healthCheck").as_deref(), Some("healthChecks"));
        assert_eq!(
            suggest("spec.healthChecks[0].intervall").as_deref(),
            Some("interval")
        );
        assert_eq!(
            suggest("spec.healthChecks.0.intervall").as_deref(),
            Some("interval")
        );
        assert_eq!(suggest("spec.zzzzzzzzzzzz"), None);
    }

    #[test]
    fn edit_distance_ignores_case() {
        assert_eq!(edit_distance("VirtualMac", "virtualMAC"), 0);
        assert_eq!(edit_distance("abc", "abd"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
