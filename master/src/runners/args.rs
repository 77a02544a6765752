//! A runner call's command-line arguments bound to the function's
//! parameters, as `salt-run` passes them: `key=value` strings are keyword
//! arguments, the rest positional, every value typed with YAML
//! ([`yamlify_arg`]); the call is checked as Python binds one.

use std::collections::BTreeMap;

use brine_protocol::Value;
use brine_protocol::args::{Kwargs, Signature, parse_kwarg, yamlify_arg};
use brine_protocol::pyfmt::{is_truthy, py_str};

use super::RunnerError;

/// One argument: the text as given and its YAML-typed value.
#[derive(Debug, Clone, PartialEq)]
struct Arg {
    text: String,
    value: Value,
}

/// The arguments of one call, by parameter name.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Bound {
    by_name: BTreeMap<String, Arg>,
}

impl Bound {
    /// Binds `args` (command-line strings) to `signature`.
    ///
    /// # Errors
    /// [`RunnerError::InvalidArguments`] with Python's `TypeError` text.
    pub(crate) fn bind(
        function: &str,
        signature: &Signature,
        args: &[String],
    ) -> Result<Bound, RunnerError> {
        let mut positional: Vec<Arg> = Vec::new();
        let mut keywords: Vec<(String, Arg)> = Vec::new();
        for text in args {
            match parse_kwarg(text) {
                Some((name, value)) => {
                    let arg = Arg {
                        text: value.to_owned(),
                        value: yamlify_arg(value),
                    };
                    match keywords.iter_mut().find(|(k, _)| k == name) {
                        Some(slot) => slot.1 = arg,
                        None => keywords.push((name.to_owned(), arg)),
                    }
                }
                None => positional.push(Arg {
                    text: text.clone(),
                    value: yamlify_arg(text),
                }),
            }
        }
        let short = function.rsplit('.').next().unwrap_or(function);
        let values: Vec<Value> = positional.iter().map(|a| a.value.clone()).collect();
        let mut kwargs = Kwargs::new();
        for (name, arg) in &keywords {
            kwargs.insert(name.clone(), arg.value.clone());
        }
        signature
            .bind(short, &values, &kwargs)
            .map_err(RunnerError::InvalidArguments)?;
        let mut by_name = BTreeMap::new();
        for (param, arg) in signature.params().iter().zip(positional) {
            by_name.insert(param.name.to_string(), arg);
        }
        for (name, arg) in keywords {
            by_name.insert(name, arg);
        }
        Ok(Bound { by_name })
    }

    /// Binds already typed values (a REST lowstate's `arg` and keyword
    /// arguments) to `signature`. Text stays text (a jid keeps its
    /// digits); numbers keep their decimal text for [`Bound::string`].
    ///
    /// # Errors
    /// [`RunnerError::InvalidArguments`] with Python's `TypeError` text.
    pub(crate) fn bind_values(
        function: &str,
        signature: &Signature,
        args: &[Value],
        kwargs: &[(String, Value)],
    ) -> Result<Bound, RunnerError> {
        let arg = |value: &Value| Arg {
            text: match value {
                Value::Str(s) => s.clone(),
                other => py_str(other),
            },
            value: value.clone(),
        };
        let short = function.rsplit('.').next().unwrap_or(function);
        let mut typed = Kwargs::new();
        for (name, value) in kwargs {
            typed.insert(name.clone(), value.clone());
        }
        signature
            .bind(short, args, &typed)
            .map_err(RunnerError::InvalidArguments)?;
        let mut by_name = BTreeMap::new();
        for (param, value) in signature.params().iter().zip(args) {
            by_name.insert(param.name.to_string(), arg(value));
        }
        for (name, value) in kwargs {
            by_name.insert(name.clone(), arg(value));
        }
        Ok(Bound { by_name })
    }

    /// The typed value of `name`, if given.
    pub(crate) fn value(&self, name: &str) -> Option<&Value> {
        self.by_name.get(name).map(|a| &a.value)
    }

    /// The text of `name` as given (a jid stays exactly as typed), if given.
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.by_name.get(name).map(|a| a.text.as_str())
    }

    /// Python's truth of `name`, or `default`.
    pub(crate) fn flag(&self, name: &str, default: bool) -> bool {
        self.value(name).map_or(default, is_truthy)
    }

    /// `name` as text: a string as YAML read it, a number exactly as typed
    /// (a jid keeps its 20 digits), anything else as Python's `str()`; nil
    /// and missing give `None`.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        match self.value(name)? {
            Value::Nil => None,
            Value::Str(s) => Some(s.clone()),
            Value::Int(_) | Value::UInt(_) | Value::Float(_) => self.text(name).map(str::to_owned),
            other => Some(py_str(other)),
        }
    }

    /// `name` as a list of strings: a list, or text split on commas (Salt's
    /// `split_input`).
    pub(crate) fn list(&self, name: &str) -> Option<Vec<String>> {
        match self.value(name)? {
            Value::Nil => None,
            Value::Array(items) => Some(items.iter().map(py_str).collect()),
            other => Some(
                py_str(other)
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
        }
    }

    /// `name` as a positive number of seconds (`timeout=5`); nil, missing
    /// or 0 give `None` (Salt's "not given").
    ///
    /// # Errors
    /// [`RunnerError::BadValue`] for anything else.
    pub(crate) fn seconds(&self, name: &str) -> Result<Option<f64>, RunnerError> {
        let Some(value) = self.value(name) else {
            return Ok(None);
        };
        let secs = match value {
            Value::Nil => return Ok(None),
            Value::Int(i) => *i as f64,
            Value::UInt(u) => *u as f64,
            Value::Float(f) => *f,
            other => {
                return Err(RunnerError::BadValue {
                    param: name.to_owned(),
                    reason: format!("expected a number of seconds, not {}", py_str(other)),
                });
            }
        };
        if !secs.is_finite() || secs < 0.0 {
            return Err(RunnerError::BadValue {
                param: name.to_owned(),
                reason: format!("expected a number of seconds, not {secs}"),
            });
        }
        Ok((secs > 0.0).then_some(secs))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sig() -> Signature {
        Signature::new()
            .required("jid")
            .optional("ext_source")
            .optional("returned")
            .optional("missing")
    }

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn positional_and_keyword_arguments_bind_by_name() {
        let bound = Bound::bind(
            "jobs.lookup_jid",
            &sig(),
            &strings(&["20261125201059974475", "missing=True"]),
        )
        .unwrap();
        // the jid keeps its digits although YAML reads a number
        assert_eq!(bound.text("jid"), Some("20261125201059974475"));
        assert_eq!(bound.string("jid").unwrap(), "20261125201059974475");
        assert!(bound.flag("missing", false));
        assert!(bound.flag("returned", true));
        assert!(bound.value("ext_source").is_none());
    }

    #[test]
    fn bad_calls_read_as_pythons_type_errors() {
        let err = Bound::bind("jobs.lookup_jid", &sig(), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "passed invalid arguments: lookup_jid() missing 1 required positional argument: 'jid'"
        );
        let err = Bound::bind("jobs.lookup_jid", &sig(), &strings(&["1", "nope=2"])).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("lookup_jid() got an unexpected keyword argument 'nope'"),
            "{err}"
        );
        let err = Bound::bind("manage.versions", &Signature::new(), &strings(&["x"])).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("versions() takes 0 positional arguments but 1 was given"),
            "{err}"
        );
    }

    #[test]
    fn lists_numbers_and_strings() {
        let sig = Signature::new()
            .optional("tgt")
            .optional("subset")
            .optional("timeout");
        let bound = Bound::bind(
            "manage.status",
            &sig,
            &strings(&["web*", "subset=[a, b]", "timeout=2.5"]),
        )
        .unwrap();
        assert_eq!(bound.string("tgt").unwrap(), "web*");
        assert_eq!(bound.list("subset").unwrap(), ["a", "b"]);
        assert_eq!(bound.seconds("timeout").unwrap(), Some(2.5));
        let bound = Bound::bind("f", &sig, &strings(&["subset=a,b", "timeout=soon"])).unwrap();
        assert_eq!(bound.list("subset").unwrap(), ["a", "b"]);
        assert!(bound.seconds("timeout").is_err());
    }
}
