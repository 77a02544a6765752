//! `grains`: read the minion's grains, as Salt's `salt/modules/grains.py`.
//! (Setting grains is not offered yet.)

use async_trait::async_trait;
use brine_protocol::Value;

use super::{Call, FunctionSpec, Module};
use crate::args::{Signature, yamlify_arg};
use crate::error::ModuleError;
use brine_protocol::pyfmt::py_str;

/// The `grains` module.
#[derive(Debug, Clone, Copy, Default)]
pub struct Grains;

/// Salt's `DEFAULT_TARGET_DELIM`.
const DEFAULT_DELIMITER: &str = ":";

#[async_trait]
impl Module for Grains {
    fn name(&self) -> &str {
        "grains"
    }

    fn functions(&self) -> Vec<FunctionSpec> {
        vec![
            FunctionSpec::new(
                "items",
                "Return all of the minion's grains. (sanitize is accepted and ignored.)\n\n\
                 CLI Example:\n\n    brine '*' grains.items",
                Signature::new().optional("sanitize"),
            ),
            FunctionSpec::new(
                "item",
                "Return one or more grains as a dict. Nested values are reached with \
                 'key:subkey'; default= (default '') and delimiter= (default ':') apply to \
                 each.\n\nCLI Example:\n\n    brine '*' grains.item os osrelease",
                Signature::new().varargs().varkw(),
            ),
            FunctionSpec::new(
                "get",
                "Return the grain KEY, or DEFAULT (default '') if it is not set. A nested \
                 value is reached with 'key:subkey', or with another DELIMITER.\n\nCLI \
                 Example:\n\n    brine '*' grains.get pkg:apache",
                Signature::new()
                    .required("key")
                    .optional("default")
                    .optional("delimiter")
                    .optional("ordered"),
            ),
            FunctionSpec::new(
                "ls",
                "Return the names of all grains, sorted.\n\nCLI Example:\n\n    brine '*' grains.ls",
                Signature::new(),
            ),
        ]
    }

    async fn call(&self, call: Call<'_>) -> Result<Value, ModuleError> {
        let grains = call.ctx.grains;
        match call.function() {
            "items" => Ok(grains.clone()),
            "ls" => {
                let mut names: Vec<String> = grains
                    .as_map()
                    .unwrap_or_default()
                    .iter()
                    .map(|(k, _)| py_str(k))
                    .collect();
                names.sort();
                Ok(Value::Array(names.into_iter().map(Value::from).collect()))
            }
            "get" => {
                let key = call.param("key").map(py_str).unwrap_or_default();
                let default = call.param("default").cloned().unwrap_or(Value::from(""));
                let delimiter = call
                    .param("delimiter")
                    .map_or_else(|| DEFAULT_DELIMITER.to_owned(), py_str);
                Ok(traverse(grains, &key, default, &delimiter))
            }
            "item" => {
                let default = call
                    .kwargs
                    .get("default")
                    .cloned()
                    .unwrap_or(Value::from(""));
                let delimiter = call
                    .kwargs
                    .get("delimiter")
                    .map_or_else(|| DEFAULT_DELIMITER.to_owned(), py_str);
                let out = call
                    .args
                    .iter()
                    .map(|arg| {
                        let key = py_str(arg);
                        (
                            arg.clone(),
                            traverse(grains, &key, default.clone(), &delimiter),
                        )
                    })
                    .collect();
                Ok(Value::Map(out))
            }
            other => Err(ModuleError::command(format!(
                "'grains.{other}' is not available."
            ))),
        }
    }
}

/// Salt's `traverse_dict_and_list`: follows `key` split on `delimiter`
/// through maps and lists (a list takes an index, or the key of a map inside
/// it); a map key that is not found is tried again YAML-typed (so `1` finds
/// an integer key). Anything unreachable gives `default`.
pub(crate) fn traverse(data: &Value, key: &str, default: Value, delimiter: &str) -> Value {
    let mut ptr = data;
    let parts: Vec<&str> = if delimiter.is_empty() {
        vec![key]
    } else {
        key.split(delimiter).collect()
    };
    for part in parts {
        let next = match ptr {
            Value::Array(items) => match part.parse::<i64>() {
                Err(_) => items
                    .iter()
                    .filter(|x| x.as_map().is_some())
                    .find_map(|m| m.get(part)),
                Ok(idx) => items
                    .iter()
                    .filter(|x| x.as_map().is_some())
                    .find_map(|m| map_get(m, &Value::Int(idx)))
                    .or_else(|| list_index(items, idx)),
            },
            Value::Map(_) => ptr.get(part).or_else(|| {
                let typed = yamlify_arg(part);
                if typed == Value::from(part) {
                    None
                } else {
                    map_get(ptr, &typed)
                }
            }),
            _ => None,
        };
        match next {
            Some(v) => ptr = v,
            None => return default,
        }
    }
    ptr.clone()
}

fn map_get<'a>(map: &'a Value, key: &Value) -> Option<&'a Value> {
    map.as_map()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Python list indexing, negative indices from the end.
fn list_index(items: &[Value], idx: i64) -> Option<&Value> {
    let len = i64::try_from(items.len()).ok()?;
    let at = if idx < 0 { len + idx } else { idx };
    usize::try_from(at).ok().and_then(|i| items.get(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Value {
        Value::Map(vec![
            (
                Value::from("pkg"),
                Value::Map(vec![(Value::from("apache"), Value::from("httpd"))]),
            ),
            (
                Value::from("list"),
                Value::Array(vec![
                    Value::from("a"),
                    Value::Map(vec![(Value::from("k"), Value::from("v"))]),
                ]),
            ),
            (
                Value::from("nums"),
                Value::Map(vec![(Value::Int(1), Value::from("one"))]),
            ),
        ])
    }

    #[test]
    fn traverses_like_salt() {
        let d = data();
        let dflt = || Value::from("");
        assert_eq!(
            traverse(&d, "pkg:apache", dflt(), ":"),
            Value::from("httpd")
        );
        assert_eq!(
            traverse(&d, "pkg|apache", dflt(), "|"),
            Value::from("httpd")
        );
        assert_eq!(traverse(&d, "list:0", dflt(), ":"), Value::from("a"));
        assert_eq!(traverse(&d, "list:-1:k", dflt(), ":"), Value::from("v"));
        assert_eq!(traverse(&d, "list:k", dflt(), ":"), Value::from("v"));
        assert_eq!(traverse(&d, "nums:1", dflt(), ":"), Value::from("one"));
        assert_eq!(traverse(&d, "pkg:nope", Value::Nil, ":"), Value::Nil);
        assert_eq!(traverse(&d, "list:5", dflt(), ":"), dflt());
        assert_eq!(traverse(&d, "pkg:apache:x", dflt(), ":"), dflt());
    }
}
