//! Object metadata: accessors of `metadata` in stored JSON objects, the values the server
//! generates (timestamps, UIDs, `generateName` suffixes), name rules, what a write must change to
//! count as one, and the type strategies of built-in types.

use rand::Rng;
use serde_json::{Map, Value, json};

use crate::resources::ResourceType;

pub(super) fn now() -> String {
    let now = jiff::Timestamp::now();
    match jiff::Timestamp::from_second(now.as_second()) {
        Ok(ts) => ts.to_string(),
        Err(_) => now.to_string(),
    }
}

pub(super) fn new_uid() -> String {
    let mut bytes: [u8; 16] = rand::thread_rng().r#gen();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub(super) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A DNS-1123 subdomain, the rule for most object names.
pub(super) fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 253
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

pub(super) fn meta(object: &Value) -> Option<&Map<String, Value>> {
    object.get("metadata").and_then(Value::as_object)
}

pub(super) fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    meta(object)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

pub(super) fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    let Value::Object(root) = object else {
        // Invariant: made an object just above.
        unreachable!("object was just made a map")
    };
    let entry = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    let Value::Object(meta) = entry else {
        unreachable!("metadata was just made a map")
    };
    meta
}

pub(super) fn finalizers(object: &Value) -> Vec<Value> {
    meta(object)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

pub(super) fn is_deleting(object: &Value) -> bool {
    meta(object)
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|v| !v.is_null())
}

pub(super) fn owner_uids(object: &Value) -> Vec<String> {
    meta(object)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The object without the fields the server maintains, to decide whether a write changed
/// anything.
pub(super) fn content(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(m) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
        m.remove("generation");
    }
    copy
}

/// The parts of an object whose change bumps `metadata.generation`: everything except
/// `metadata` (and `status` when it is a subresource).
pub(super) fn generation_relevant(object: &Value, status_subresource: bool) -> Value {
    let mut copy = object.clone();
    if let Some(m) = copy.as_object_mut() {
        m.remove("metadata");
        if status_subresource {
            m.remove("status");
        }
    }
    copy
}

/// What the real server's type strategies do on every write of a built-in type: a Secret's
/// `stringData` is merged into `data` (base64) and dropped.
pub(super) fn normalize(rt: &ResourceType, object: &mut Value) {
    if !(rt.group.is_empty() && rt.plural == "secrets") {
        return;
    }
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    use base64::Engine as _;
    if !map.get("data").is_some_and(Value::is_object) {
        map.insert("data".into(), Value::Object(Map::new()));
    }
    if let Some(Value::Object(data)) = map.get_mut("data") {
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or_default();
            data.insert(
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}
