//! One config file: YAML text → an ordered list of top-level options.

use std::fs;
use std::path::Path;

use serde_norway::Value as Yaml;

use super::ConfigError;
use crate::Value;

/// Largest config file read (a config is a few KiB; this only guards
/// against pointing `-c` at something huge).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The top-level options of one file, in file order.
pub(crate) type Options = Vec<(String, Value)>;

/// Reads and parses `path`. An empty file or one holding only comments is
/// an empty mapping (Salt's `safe_load(...) or {}`).
pub(crate) fn read_file(path: &Path) -> Result<Options, ConfigError> {
    let meta = fs::metadata(path).map_err(|e| ConfigError::io("reading", path, e))?;
    if meta.len() > MAX_FILE_BYTES {
        let too_big = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("file is larger than {MAX_FILE_BYTES} bytes"),
        );
        return Err(ConfigError::io("reading", path, too_big));
    }
    let text = fs::read_to_string(path).map_err(|e| ConfigError::io("reading", path, e))?;
    parse(&text, path)
}

/// Parses `text` as the content of `path`.
pub(crate) fn parse(text: &str, path: &Path) -> Result<Options, ConfigError> {
    let yaml_error = |e: serde_norway::Error| {
        let location = e.location();
        ConfigError::Yaml {
            path: path.to_owned(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            message: e.to_string(),
        }
    };
    let mut doc: Yaml = if text.trim().is_empty() {
        Yaml::Null
    } else {
        serde_norway::from_str(text).map_err(yaml_error)?
    };
    doc.apply_merge().map_err(yaml_error)?;
    let mapping = match doc {
        Yaml::Null => return Ok(Vec::new()),
        Yaml::Mapping(m) => m,
        other => {
            return Err(ConfigError::NotAMapping {
                path: path.to_owned(),
                found: yaml_kind(&other),
            });
        }
    };
    let mut options = Vec::with_capacity(mapping.len());
    for (key, value) in mapping {
        let key = match key {
            Yaml::String(s) => s,
            Yaml::Number(n) => n.to_string(),
            Yaml::Bool(b) => b.to_string(),
            other => {
                return Err(ConfigError::Yaml {
                    path: path.to_owned(),
                    line: None,
                    column: None,
                    message: format!("a top-level key is {}, not a name", yaml_kind(&other)),
                });
            }
        };
        options.push((key, to_value(value)));
    }
    Ok(options)
}

/// Converts a YAML value into a [`Value`]; tags are dropped, keeping the
/// tagged value.
pub(crate) fn to_value(yaml: Yaml) -> Value {
    match yaml {
        Yaml::Null => Value::Nil,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Yaml::String(s) => Value::Str(s),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(to_value).collect()),
        Yaml::Mapping(m) => Value::Map(
            m.into_iter()
                .map(|(k, v)| (to_value(k), to_value(v)))
                .collect(),
        ),
        Yaml::Tagged(tagged) => to_value(tagged.value),
    }
}

fn yaml_kind(v: &Yaml) -> &'static str {
    match v {
        Yaml::Null => "null",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_top_level_options_in_order() {
        let text = "# a comment\nret_port: 4506\ninterface: 0.0.0.0\nnodegroups:\n  web: 'L@a,b'\n1234: x\n";
        let opts = parse(text, Path::new("master")).unwrap();
        let keys: Vec<_> = opts.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["ret_port", "interface", "nodegroups", "1234"]);
        assert_eq!(opts[0].1, Value::Int(4506));
        assert_eq!(opts[2].1.get("web").and_then(Value::as_str), Some("L@a,b"));
    }

    #[test]
    fn empty_and_comment_only_files_are_empty() {
        assert!(parse("", Path::new("m")).unwrap().is_empty());
        assert!(parse("# nothing\n\n", Path::new("m")).unwrap().is_empty());
        assert!(parse("~\n", Path::new("m")).unwrap().is_empty());
    }

    #[test]
    fn bad_yaml_and_non_mappings_name_the_file() {
        let err = parse("a: [1, 2\n", Path::new("/etc/brine/master")).unwrap_err();
        assert!(
            matches!(err, ConfigError::Yaml { line: Some(_), .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("/etc/brine/master"), "{err}");
        let err = parse("- a\n- b\n", Path::new("/etc/brine/master")).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::NotAMapping {
                    found: "a list",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn merge_keys_are_applied() {
        let text = "base: &b\n  x: 1\nother:\n  <<: *b\n  y: 2\n";
        let opts = parse(text, Path::new("m")).unwrap();
        assert_eq!(opts[1].1.get("x"), Some(&Value::Int(1)));
    }
}
