//! Typed reads of raw options, with errors naming the key and the file.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::raw::{RawConfig, RawOption};
use super::{ConfigError, ConfigWarning};
use crate::Value;

/// Prefixes of options that belong to a transport backend.
pub(crate) const BACKEND_PREFIXES: [&str; 3] = ["zmq_", "tcp_", "quic_"];

/// Backend options without a backend prefix (Salt's names).
pub(crate) const BACKEND_KEYS: [&str; 2] = ["pub_hwm", "ipc_write_buffer"];

/// A short description of a value's type, for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Nil => "null",
        Value::Bool(_) => "a boolean",
        Value::Int(_) | Value::UInt(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Str(_) => "a string",
        Value::Bytes(_) => "bytes",
        Value::Array(_) => "a list",
        Value::Map(_) => "a mapping",
        Value::Ext(..) => "an extension value",
    }
}

/// YAML 1.1 booleans, as PyYAML (and so Salt) reads them unquoted; the
/// YAML 1.2 parser Brine uses hands them over as strings.
fn yaml11_bool(s: &str) -> Option<bool> {
    match s {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// Reads typed options out of a [`RawConfig`], remembering which keys were
/// consumed so the rest can be reported as unknown.
pub(crate) struct Fields<'a> {
    raw: &'a RawConfig,
    used: BTreeSet<String>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(raw: &'a RawConfig) -> Self {
        Fields {
            raw,
            used: BTreeSet::new(),
        }
    }

    /// Marks `key` as known without reading it.
    pub(crate) fn known(&mut self, key: &str) {
        self.used.insert(key.to_owned());
    }

    /// Every key read or marked known so far, sorted.
    pub(crate) fn used_keys(&self) -> Vec<String> {
        self.used.iter().cloned().collect()
    }

    /// The raw option, marked as known.
    pub(crate) fn take(&mut self, key: &str) -> Option<&'a RawOption> {
        self.known(key);
        self.raw.get(key)
    }

    /// The file `key` came from, if it was set.
    pub(crate) fn file_of(&self, key: &str) -> Option<PathBuf> {
        self.raw.get(key).map(|o| o.file.clone())
    }

    fn wrong(key: &str, opt: &RawOption, expected: &'static str) -> ConfigError {
        ConfigError::WrongType {
            key: key.to_owned(),
            file: opt.file.clone(),
            expected,
            found: kind(&opt.value),
        }
    }

    pub(crate) fn invalid(key: &str, opt: &RawOption, reason: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            key: key.to_owned(),
            file: opt.file.clone(),
            reason: reason.into(),
        }
    }

    /// A string; numbers are accepted and written out (Salt accepts
    /// `id: 1234`). `null` gives `None`.
    pub(crate) fn opt_string(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(opt) = self.take(key) else {
            return Ok(None);
        };
        match &opt.value {
            Value::Nil => Ok(None),
            Value::Str(s) => Ok(Some(s.clone())),
            Value::Int(i) => Ok(Some(i.to_string())),
            Value::UInt(u) => Ok(Some(u.to_string())),
            Value::Float(f) => Ok(Some(f.to_string())),
            _ => Err(Self::wrong(key, opt, "a string")),
        }
    }

    /// A string that must not be `null`.
    pub(crate) fn string(&mut self, key: &str, default: &str) -> Result<String, ConfigError> {
        self.required(key, default.to_owned(), Self::opt_string, "a string")
    }

    /// A path (a string); an empty string counts as unset.
    pub(crate) fn opt_path(&mut self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self
            .opt_string(key)?
            .filter(|s| !s.is_empty())
            .map(PathBuf::from))
    }

    /// A path that must not be `null` or empty.
    pub(crate) fn path(&mut self, key: &str, default: &str) -> Result<PathBuf, ConfigError> {
        self.required(key, PathBuf::from(default), Self::opt_path, "a path")
    }

    /// A boolean: `true`/`false`, or YAML 1.1's `yes`/`no`/`on`/`off`.
    pub(crate) fn opt_bool(&mut self, key: &str) -> Result<Option<bool>, ConfigError> {
        let Some(opt) = self.take(key) else {
            return Ok(None);
        };
        match &opt.value {
            Value::Nil => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            Value::Str(s) => yaml11_bool(s)
                .map(Some)
                .ok_or_else(|| Self::wrong(key, opt, "a boolean")),
            _ => Err(Self::wrong(key, opt, "a boolean")),
        }
    }

    /// A boolean that must not be `null`.
    pub(crate) fn bool(&mut self, key: &str, default: bool) -> Result<bool, ConfigError> {
        self.required(key, default, Self::opt_bool, "a boolean")
    }

    /// A non-negative integer that fits `T`; a string of digits is
    /// accepted (Salt's `int("5")`), a float is not.
    pub(crate) fn opt_uint<T: TryFrom<u64>>(
        &mut self,
        key: &str,
    ) -> Result<Option<T>, ConfigError> {
        let Some(opt) = self.take(key) else {
            return Ok(None);
        };
        let n = match &opt.value {
            Value::Nil => return Ok(None),
            Value::Int(i) => u64::try_from(*i)
                .map_err(|_| Self::invalid(key, opt, format!("{i} is negative")))?,
            Value::UInt(u) => *u,
            Value::Str(s) => s
                .trim()
                .parse::<u64>()
                .map_err(|_| Self::wrong(key, opt, "an integer"))?,
            _ => return Err(Self::wrong(key, opt, "an integer")),
        };
        T::try_from(n)
            .map(Some)
            .map_err(|_| Self::invalid(key, opt, format!("{n} is out of range")))
    }

    /// A non-negative integer that must not be `null`.
    pub(crate) fn uint<T: TryFrom<u64>>(
        &mut self,
        key: &str,
        default: T,
    ) -> Result<T, ConfigError> {
        self.required(key, default, Self::opt_uint, "an integer")
    }

    /// A non-negative number (integer or float, or a string of one) as a
    /// [`Duration`] of `unit` each.
    pub(crate) fn opt_duration(
        &mut self,
        key: &str,
        unit: Duration,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(opt) = self.take(key) else {
            return Ok(None);
        };
        let whole = |n: u64| {
            scale(unit, n)
                .map(Some)
                .ok_or_else(|| Self::invalid(key, opt, format!("{n} is out of range")))
        };
        let n = match &opt.value {
            Value::Nil => return Ok(None),
            Value::Int(i) => {
                return match u64::try_from(*i) {
                    Ok(n) => whole(n),
                    Err(_) => Err(Self::invalid(key, opt, format!("{i} is negative"))),
                };
            }
            Value::UInt(u) => return whole(*u),
            Value::Float(f) => *f,
            Value::Str(s) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| Self::wrong(key, opt, "a number"))?,
            _ => return Err(Self::wrong(key, opt, "a number")),
        };
        if !n.is_finite() || n < 0.0 {
            return Err(Self::invalid(
                key,
                opt,
                format!("{n} is not a non-negative number"),
            ));
        }
        Duration::try_from_secs_f64(n * unit.as_secs_f64())
            .map(Some)
            .map_err(|_| Self::invalid(key, opt, format!("{n} is out of range")))
    }

    /// Seconds (Salt's time options), not `null`.
    pub(crate) fn seconds(
        &mut self,
        key: &str,
        default_secs: u64,
    ) -> Result<Duration, ConfigError> {
        let default = Duration::from_secs(default_secs);
        self.required(
            key,
            default,
            |f, k| f.opt_duration(k, Duration::from_secs(1)),
            "a number",
        )
    }

    /// Milliseconds (Salt's `recon_*`), not `null`.
    pub(crate) fn millis(&mut self, key: &str, default_ms: u64) -> Result<Duration, ConfigError> {
        let default = Duration::from_millis(default_ms);
        self.required(
            key,
            default,
            |f, k| f.opt_duration(k, Duration::from_millis(1)),
            "a number",
        )
    }

    /// A string parsed with `FromStr`; a parse failure is
    /// [`ConfigError::InvalidValue`] with the parser's message.
    pub(crate) fn parsed<T>(&mut self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let Some(s) = self.opt_string(key)? else {
            return self.default_unless_null(key, default, "a string");
        };
        let opt = self.raw.get(key);
        s.parse::<T>().map_err(|e| match opt {
            Some(opt) => Self::invalid(key, opt, e.to_string()),
            None => ConfigError::InvalidValue {
                key: key.to_owned(),
                file: PathBuf::new(),
                reason: e.to_string(),
            },
        })
    }

    /// A string or a list of strings (Salt's `master: host` or
    /// `master: [a, b]`).
    pub(crate) fn string_list(
        &mut self,
        key: &str,
        default: &[&str],
    ) -> Result<Vec<String>, ConfigError> {
        let Some(opt) = self.take(key) else {
            return Ok(default.iter().map(|s| (*s).to_owned()).collect());
        };
        let scalar = |v: &Value| match v {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::UInt(u) => Some(u.to_string()),
            Value::Float(f) => Some(f.to_string()),
            _ => None,
        };
        match &opt.value {
            Value::Array(items) => items
                .iter()
                .map(|i| {
                    scalar(i).ok_or_else(|| Self::wrong(key, opt, "a string or a list of strings"))
                })
                .collect(),
            other => scalar(other)
                .map(|s| vec![s])
                .ok_or_else(|| Self::wrong(key, opt, "a string or a list of strings")),
        }
    }

    /// A mapping kept as a [`Value`] (`null` counts as unset).
    pub(crate) fn opt_map(&mut self, key: &str) -> Result<Option<Value>, ConfigError> {
        let Some(opt) = self.take(key) else {
            return Ok(None);
        };
        match &opt.value {
            Value::Nil => Ok(None),
            Value::Map(_) => Ok(Some(opt.value.clone())),
            _ => Err(Self::wrong(key, opt, "a mapping")),
        }
    }

    /// A mapping, empty if unset or `null`.
    pub(crate) fn map(&mut self, key: &str) -> Result<Value, ConfigError> {
        Ok(self.opt_map(key)?.unwrap_or_else(Value::map))
    }

    /// Any value, kept raw.
    pub(crate) fn raw_value(&mut self, key: &str) -> Option<Value> {
        self.take(key).map(|o| o.value.clone())
    }

    fn required<T>(
        &mut self,
        key: &str,
        default: T,
        read: impl FnOnce(&mut Self, &str) -> Result<Option<T>, ConfigError>,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        match read(self, key)? {
            Some(v) => Ok(v),
            None => self.default_unless_null(key, default, expected),
        }
    }

    /// `default` if `key` is unset; an error if it is set to `null` (Salt
    /// rejects `None` for options whose type does not allow it).
    fn default_unless_null<T>(
        &self,
        key: &str,
        default: T,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        match self.raw.get(key) {
            Some(opt) if opt.value.is_nil() => Err(Self::wrong(key, opt, expected)),
            Some(opt) if opt.value.as_str() == Some("") => {
                Err(Self::invalid(key, opt, "must not be empty"))
            }
            _ => Ok(default),
        }
    }

    /// Backend settings (every `zmq_*`, `tcp_*`, `quic_*` and
    /// `<transport>_*` option, plus `pub_hwm` and `ipc_write_buffer`) as
    /// strings, and warnings for the remaining unknown keys.
    pub(crate) fn finish(
        mut self,
        transport: &str,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Vec<(String, String)> {
        let own_prefix = format!("{transport}_");
        let mut settings = Vec::new();
        for (key, opt) in self.raw.options() {
            let is_backend = BACKEND_PREFIXES.iter().any(|p| key.starts_with(p))
                || key.starts_with(&own_prefix)
                || BACKEND_KEYS.contains(&key);
            if is_backend {
                match setting_string(&opt.value) {
                    Some(s) => settings.push((key.to_owned(), s)),
                    None => warnings.push(ConfigWarning::NonScalarSetting {
                        key: key.to_owned(),
                        file: opt.file.clone(),
                    }),
                }
                self.used.insert(key.to_owned());
            } else if !self.used.contains(key) {
                warnings.push(ConfigWarning::UnknownKey {
                    key: key.to_owned(),
                    file: opt.file.clone(),
                });
            }
        }
        settings
    }
}

/// `n` times `unit`, if it fits a [`Duration`].
fn scale(unit: Duration, n: u64) -> Option<Duration> {
    let nanos = unit.as_nanos().checked_mul(u128::from(n))?;
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    let sub = u32::try_from(nanos % 1_000_000_000).ok()?;
    Some(Duration::new(secs, sub))
}

fn setting_string(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Str(s) => Some(s.clone()),
        _ => None,
    }
}
