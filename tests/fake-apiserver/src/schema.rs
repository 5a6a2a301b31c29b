//! What the real API server does with a custom resource's structural schema on every write
//! ("Extend the Kubernetes API with CustomResourceDefinitions" → "Validation", "Defaulting",
//! "Field pruning", "Validation rules"):
//!
//! 1. prune: fields the schema does not know are dropped (unless
//!    `x-kubernetes-preserve-unknown-fields`), and so are `null` values of fields that are not
//!    `nullable`;
//! 2. default: absent properties with a `default` get it, recursively;
//! 3. validate: `type`, `enum`, `pattern`, `format: date-time`, `minLength`/`maxLength`,
//!    `minItems`/`maxItems`, `minimum`/`maximum`, `required`, `x-kubernetes-int-or-string`;
//! 4. evaluate the `x-kubernetes-validations` CEL rules with `self` bound to each node
//!    (transition rules, which use `oldSelf`, are not evaluated).
//!
//! Every violation is reported at once, as the real server does, in one 422 `Invalid` status.
//! Updates are ratcheted (CRDValidationRatcheting, on by default since Kubernetes 1.30): a
//! violation in a value the update leaves unchanged is not an error.

use std::sync::Arc;

use serde_json::Value;

use crate::error::{ApiError, Reason};

/// One violation: the field path (`spec.redirectURIs[0]`) and what is wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Violation {
    /// Path of the field.
    pub(crate) field: String,
    /// `metav1.CauseType`, e.g. `FieldValueInvalid`.
    pub(crate) cause: &'static str,
    /// Message, phrased like the real server's.
    pub(crate) message: String,
    /// JSON pointer of the value whose check failed (for ratcheting).
    pub(crate) node: String,
}

/// Prunes unknown fields and non-nullable nulls, in place.
pub(crate) fn prune(schema: &Value, value: &mut Value, root: bool) {
    let Value::Object(map) = value else {
        if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
            for item in items {
                prune(item_schema, item, false);
            }
        }
        return;
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if root && (key == "apiVersion" || key == "kind" || key == "metadata") {
            continue;
        }
        let sub = properties.and_then(|p| p.get(&key)).or(additional);
        match sub {
            Some(sub) => {
                let nullable = sub
                    .get("nullable")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if map.get(&key).is_some_and(Value::is_null) && !nullable {
                    map.remove(&key);
                    continue;
                }
                if let Some(child) = map.get_mut(&key) {
                    prune(sub, child, false);
                }
            }
            None if preserve => {}
            None => {
                map.remove(&key);
            }
        }
    }
}

/// Applies `default`s to absent properties, recursively.
pub(crate) fn default(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, sub) in properties {
                    if !map.contains_key(key)
                        && let Some(d) = sub.get("default")
                    {
                        map.insert(key.clone(), d.clone());
                    }
                    if let Some(child) = map.get_mut(key) {
                        default(sub, child);
                    }
                }
            }
            if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                let known = schema.get("properties").and_then(Value::as_object);
                for (key, child) in map.iter_mut() {
                    if known.is_none_or(|k| !k.contains_key(key)) {
                        default(additional, child);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    default(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// Evaluates CEL rules, compiling each rule once.
pub(crate) struct Validator {
    env: Arc<cel::Env>,
    programs: std::sync::Mutex<std::collections::HashMap<String, Arc<cel::Program>>>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Validator")
    }
}

impl Default for Validator {
    fn default() -> Self {
        Validator {
            env: Arc::new(cel::Env::stdlib()),
            programs: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

/// A violation's field: `path`, or `<root>`.
fn at(path: &str) -> String {
    if path.is_empty() {
        "<root>".to_owned()
    } else {
        path.to_owned()
    }
}

/// `minimum` and `maximum` (with their `exclusive…` flags).
fn number(schema: &Value, n: &serde_json::Number, path: &str, out: &mut Vec<Violation>) {
    let x = n.as_f64().unwrap_or(0.0);
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let exclusive = schema.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
        if x < min || (exclusive && x == min) {
            out.push(Violation {
                field: at(path),
                cause: "FieldValueInvalid",
                message: format!(
                    "Invalid value: {n}: {path} in body should be greater than or equal to {min}"
                ),
                node: String::new(),
            });
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let exclusive = schema.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
        if x > max || (exclusive && x == max) {
            out.push(Violation {
                field: at(path),
                cause: "FieldValueInvalid",
                message: format!(
                    "Invalid value: {n}: {path} in body should be less than or equal to {max}"
                ),
                node: String::new(),
            });
        }
    }
}

impl Validator {
    /// Every violation of `schema` by `value` (the whole object; `path` is "" at the root).
    pub(crate) fn validate(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        out: &mut Vec<Violation>,
    ) {
        self.validate_at(schema, value, path, "", out);
    }

    fn validate_at(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        pointer: &str,
        out: &mut Vec<Violation>,
    ) {
        let first = out.len();
        self.check_node(schema, value, path, pointer, out);
        for violation in &mut out[first..] {
            if violation.node.is_empty() {
                violation.node = pointer.to_owned();
            }
        }
    }

    fn check_node(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        pointer: &str,
        out: &mut Vec<Violation>,
    ) {
        if value.is_null() {
            if !schema
                .get("nullable")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                out.push(Violation {
                    field: at(path),
                    cause: "FieldValueTypeInvalid",
                    message: "Invalid value: \"null\": must not be null".into(),
                    node: String::new(),
                });
            }
            return;
        }
        let int_or_string = schema
            .get("x-kubernetes-int-or-string")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if let Some(expected) = schema.get("type").and_then(Value::as_str) {
            let actual = json_type(value);
            let ok = actual == expected
                || (expected == "number" && actual == "integer")
                || (int_or_string && (actual == "integer" || actual == "string"));
            if !ok {
                out.push(Violation {
                    field: at(path),
                    cause: "FieldValueTypeInvalid",
                    message: format!(
                        "Invalid value: \"{actual}\": {path} in body must be of type {expected}: \"{actual}\""
                    ),
                    node: String::new(),
                });
                return;
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            let listed: Vec<String> = allowed.iter().map(Value::to_string).collect();
            out.push(Violation {
                field: at(path),
                cause: "FieldValueNotSupported",
                message: format!(
                    "Unsupported value: {}: supported values: {}",
                    value,
                    listed.join(", ")
                ),
                node: String::new(),
            });
        }
        match value {
            Value::String(s) => self.string(schema, s, value, &at(path), out),
            Value::Number(n) => number(schema, n, path, out),
            Value::Array(items) => self.array(schema, items, path, pointer, out),
            Value::Object(map) => self.object(schema, map, path, pointer, out),
            _ => {}
        }
        if let Some(rules) = schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        {
            for rule in rules {
                self.rule(rule, value, path, out);
            }
        }
    }

    /// `minItems`, `maxItems`, and each item against `items`.
    fn array(
        &self,
        schema: &Value,
        items: &[Value],
        path: &str,
        pointer: &str,
        out: &mut Vec<Violation>,
    ) {
        let len = items.len() as u64;
        if schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            out.push(Violation {
                field: at(path),
                cause: "FieldValueTooMany",
                message: format!(
                    "Too many: {len}: must have at most {} items",
                    schema["maxItems"]
                ),
                node: String::new(),
            });
        }
        if schema
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            out.push(Violation {
                field: at(path),
                cause: "FieldValueInvalid",
                message: format!(
                    "Invalid value: {len}: {path} in body should have at least {} items",
                    schema["minItems"]
                ),
                node: String::new(),
            });
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                let item_pointer = format!("{pointer}/{i}");
                self.validate_at(item_schema, item, &item_path, &item_pointer, out);
            }
        }
    }

    /// `required`, and each property against `properties` or `additionalProperties` (the type
    /// meta and metadata of the root are the server's).
    fn object(
        &self,
        schema: &Value,
        map: &serde_json::Map<String, Value>,
        path: &str,
        pointer: &str,
        out: &mut Vec<Violation>,
    ) {
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for key in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(key) {
                    out.push(Violation {
                        field: join(path, key),
                        cause: "FieldValueRequired",
                        message: "Required value".into(),
                        node: String::new(),
                    });
                }
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        for (key, child) in map {
            if path.is_empty() && (key == "apiVersion" || key == "kind" || key == "metadata") {
                continue;
            }
            if let Some(sub) = properties.and_then(|p| p.get(key)).or(additional) {
                let child_pointer =
                    format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                self.validate_at(sub, child, &join(path, key), &child_pointer, out);
            }
        }
    }

    fn string(
        &self,
        schema: &Value,
        s: &str,
        value: &Value,
        field: &str,
        out: &mut Vec<Violation>,
    ) {
        let len = s.chars().count() as u64;
        if schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            out.push(Violation {
                field: field.to_owned(),
                cause: "FieldValueTooLong",
                message: format!(
                    "Too long: may not be more than {} bytes",
                    schema["maxLength"]
                ),
                node: String::new(),
            });
        }
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            out.push(Violation {
                field: field.to_owned(),
                cause: "FieldValueInvalid",
                message: format!(
                    "Invalid value: {value}: {field} in body should be at least {} chars long",
                    schema["minLength"]
                ),
                node: String::new(),
            });
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            match regex::Regex::new(pattern) {
                Ok(re) if re.is_match(s) => {}
                Ok(_) => out.push(Violation {
                    field: field.to_owned(),
                    cause: "FieldValueInvalid",
                    message: format!(
                        "Invalid value: {value}: {field} in body should match '{pattern}'"
                    ),
                    node: String::new(),
                }),
                Err(e) => out.push(Violation {
                    field: field.to_owned(),
                    cause: "FieldValueInvalid",
                    message: format!("the schema's pattern does not compile: {e}"),
                    node: String::new(),
                }),
            }
        }
        if schema.get("format").and_then(Value::as_str) == Some("date-time")
            && s.parse::<jiff::Timestamp>().is_err()
        {
            out.push(Violation {
                field: field.to_owned(),
                cause: "FieldValueInvalid",
                message: format!(
                    "Invalid value: {value}: {field} in body must be of type date-time"
                ),
                node: String::new(),
            });
        }
    }

    fn program(&self, text: &str) -> Result<Arc<cel::Program>, String> {
        let mut cache = self.programs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(program) = cache.get(text) {
            return Ok(program.clone());
        }
        let program = Arc::new(self.env.compile(text).map_err(|e| format!("{e:?}"))?);
        cache.insert(text.to_owned(), program.clone());
        Ok(program)
    }

    fn rule(&self, rule: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
        let Some(text) = rule.get("rule").and_then(Value::as_str) else {
            return;
        };
        if text.contains("oldSelf") {
            return;
        }
        let field = match rule.get("fieldPath").and_then(Value::as_str) {
            Some(extra) => format!("{path}{extra}"),
            None if path.is_empty() => "<root>".to_owned(),
            None => path.to_owned(),
        };
        let cause = match rule.get("reason").and_then(Value::as_str) {
            Some("FieldValueRequired") => "FieldValueRequired",
            Some("FieldValueForbidden") => "FieldValueForbidden",
            Some("FieldValueDuplicate") => "FieldValueDuplicate",
            _ => "FieldValueInvalid",
        };
        let message = rule
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| format!("failed rule: {text}"), str::to_owned);
        let outcome = (|| {
            let program = self.program(text)?;
            let mut ctx = cel::Context::with_env(self.env.clone());
            let this = cel::to_value(value).map_err(|e| e.to_string())?;
            ctx.add_variable_from_value("self", this);
            program.execute(&ctx).map_err(|e| format!("{e:?}"))
        })();
        match outcome {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => out.push(Violation {
                field,
                cause,
                message: format!("Invalid value: {}: {message}", shown(value)),
                node: String::new(),
            }),
            Ok(other) => out.push(Violation {
                field,
                cause: "FieldValueInvalid",
                message: format!("rule {text:?} did not evaluate to a bool: {other:?}"),
                node: String::new(),
            }),
            Err(e) => out.push(Violation {
                field,
                cause: "FieldValueInvalid",
                message: format!("rule {text:?} could not be evaluated: {e}"),
                node: String::new(),
            }),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The 422 the real server answers with for violations of a custom resource's schema.
pub(crate) fn invalid(group: &str, kind: &str, name: &str, violations: &[Violation]) -> ApiError {
    let summary: Vec<String> = violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.message))
        .collect();
    let qualified = format!("{kind}.{group}");
    let message = if summary.len() == 1 {
        format!("{qualified} \"{name}\" is invalid: {}", summary[0])
    } else {
        format!(
            "{qualified} \"{name}\" is invalid: [{}]",
            summary.join(", ")
        )
    };
    let mut error = ApiError::about(Reason::Invalid, group, kind, name, message);
    if let Some(details) = error.details.as_mut() {
        details.causes = violations
            .iter()
            .map(|v| (v.cause.to_owned(), v.message.clone(), v.field.clone()))
            .collect();
    }
    error
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
                        "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "opt": {"type": "string", "nullable": true}
                    },
                    "x-kubernetes-validations": [
                        {"rule": "self.mode != 'b' || size(self.tags) > 0", "message": "mode b needs tags", "fieldPath": ".tags"}
                    ]
                }
            }
        })
    }

    #[test]
    fn prunes_unknown_fields_and_nulls_keeps_preserved_ones() {
        let mut v = json!({"apiVersion": "x", "kind": "K", "metadata": {"name": "n"},
            "spec": {"name": "ab", "extra": 1, "tags": null, "opt": null, "free": {"any": {"thing": 1}}},
            "junk": true});
        prune(&schema(), &mut v, true);
        assert_eq!(
            v,
            json!({"apiVersion": "x", "kind": "K", "metadata": {"name": "n"},
            "spec": {"name": "ab", "opt": null, "free": {"any": {"thing": 1}}}})
        );
    }

    #[test]
    fn defaults_absent_fields() {
        let mut v = json!({"spec": {"name": "ab"}});
        default(&schema(), &mut v);
        assert_eq!(v["spec"]["mode"], "a");
    }

    #[test]
    fn reports_every_violation_with_its_field() {
        let v = json!({"spec": {"name": "ABCDEFG", "mode": "b", "tags": ["x", "y", "z"]}});
        let mut out = Vec::new();
        Validator::default().validate(&schema(), &v, "", &mut out);
        let fields: Vec<&str> = out.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["spec.name", "spec.name", "spec.tags"], "{out:#?}");
        let mut out = Vec::new();
        let v = json!({"spec": {"mode": "b", "tags": []}});
        Validator::default().validate(&schema(), &v, "", &mut out);
        let fields: Vec<&str> = out.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["spec.name", "spec.tags"], "{out:#?}");
        assert!(out[1].message.contains("mode b needs tags"));
    }
}
