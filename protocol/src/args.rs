//! Job arguments as Salt reads them (`salt/utils/args.py`, and
//! `load_args_and_kwargs` in `salt/minion.py`).
//!
//! Two sides handle arguments:
//!
//! - **The command line** (`salt '*' test.arg 1 two k=v`) — [`parse_input`]:
//!   every string is typed with YAML ([`yamlify_arg`]: `"1"` → 1, `"true"` →
//!   true, `"[1,2]"` → a list, `"{a: 1}"` → a map, plain words stay text), and
//!   `key=value` strings whose key is an identifier become keyword arguments
//!   ([`parse_kwarg`]), packed into a trailing `{"__kwarg__": true, …}` map by
//!   [`condition_input`]. An integer that looks like a job id goes back to
//!   text (a jid does not fit 64 bits anyway).
//! - **The minion** — [`load_args_and_kwargs`]: the publish's `arg` list is
//!   split into positional and keyword arguments against the function's
//!   [`Signature`]; a trailing `__kwarg__` map and any `key=value` string
//!   (value YAML-typed) become keywords, other positional strings are passed
//!   through **untouched** (the CLI typed them already); keywords the function
//!   does not take are refused with Salt's message ("The following keyword
//!   arguments are not valid: …"); a function that takes `**kwargs` also gets
//!   the publish fields as `__pub_<key>`. [`Signature::bind`] then checks the
//!   call like Python would and words a bad one as Python's `TypeError` does.

use std::borrow::Cow;

use crate::{Value, jid::is_jid};

use crate::pyfmt::py_str;
use crate::yaml;

/// Keyword arguments in the order they were given (a Python `dict`).
/// Inserting an existing key replaces its value in place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kwargs(Vec<(String, Value)>);

impl Kwargs {
    /// No keyword arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether `key` was given.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` (in place if present, appended otherwise) and returns the old value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                self.0.push((key, value));
                None
            }
        }
    }

    /// Removes `key`, keeping the order of the rest.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(at).1)
    }

    /// The keys and values in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many keyword arguments there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As a [`Value::Map`] with text keys, in order.
    pub fn to_value(&self) -> Value {
        Value::Map(
            self.0
                .iter()
                .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
                .collect(),
        )
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Kwargs {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut out = Kwargs::new();
        for (k, v) in iter {
            out.insert(k, v);
        }
        out
    }
}

/// Salt's `yamlify_arg`: types one command-line string with YAML, keeping the
/// original text wherever Salt does.
///
/// Kept as text: empty or blank strings, `---` and `...`; strings of only
/// digits and underscores (YAML would drop the underscores); strings with a
/// tab, CR or newline; maps not written in braces and lists not written in
/// brackets (`a: 1`, `- a`); `|`, `!` and strings starting with `#`; anything
/// YAML rejects. `"None"` is nil. With a `#` in it, the string is typed only
/// if that gives something other than text or nil (`#` starts a comment).
pub fn yamlify_arg(arg: &str) -> Value {
    let original = || Value::from(arg);
    let trimmed = arg.trim();
    if matches!(trimmed, "" | "---" | "...") {
        return original();
    }
    if arg.contains('_') && trimmed.bytes().all(|c| c.is_ascii_digit() || c == b'_') {
        return original();
    }
    if arg.contains(['\t', '\r', '\n']) {
        return original();
    }
    if arg.contains('#') {
        return match yaml::safe_load(arg) {
            Ok(Value::Str(_) | Value::Nil) | Err(_) => original(),
            Ok(parsed) => parsed,
        };
    }
    if arg == "None" {
        return Value::Nil;
    }
    let Ok(parsed) = yaml::safe_load(arg) else {
        return original();
    };
    match parsed {
        Value::Map(_) if !arg.starts_with('{') => original(),
        Value::Array(_) if !arg.starts_with('[') => original(),
        Value::Str(ref s) if s.is_empty() && matches!(arg, "|" | "!") => original(),
        Value::Nil if trimmed.starts_with('#') || arg == "!" => original(),
        Value::Bytes(_) | Value::Ext(..) => original(),
        parsed => parsed,
    }
}

/// Salt's `parse_kwarg`: splits `name=value` when `name` is an identifier
/// (a letter or `_`, then letters, digits, `_`, `.` or `-`) and the `=` is not
/// part of `==`. Like Salt's regex, the value may not span lines (a single
/// trailing newline is dropped).
pub fn parse_kwarg(arg: &str) -> Option<(&str, &str)> {
    let (name, value) = arg.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_alphabetic() || first == '_') {
        return None;
    }
    if !chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return None;
    }
    if value.starts_with('=') {
        return None;
    }
    let value = match value.find('\n') {
        None => value,
        Some(at) if at + 1 == value.len() => &value[..at],
        Some(_) => return None,
    };
    Some((name, value))
}

/// Salt's `parse_input(args, condition=False)`: the command line's strings
/// into typed positional and keyword arguments. Keys listed in `no_parse`
/// keep their value as text. A map carrying `__kwarg__: true` contributes its
/// other entries as keywords; anything else that is not a string passes as is.
pub fn parse_input(args: &[Value], no_parse: &[&str]) -> (Vec<Value>, Kwargs) {
    let mut out_args = Vec::new();
    let mut kwargs = Kwargs::new();
    for arg in args {
        match arg {
            Value::Str(s) => match parse_kwarg(s) {
                Some((name, value)) => {
                    let typed = if no_parse.contains(&name) {
                        Value::from(value)
                    } else {
                        yamlify_arg(value)
                    };
                    kwargs.insert(name, typed);
                }
                None => out_args.push(yamlify_arg(s)),
            },
            Value::Map(_) => match kwarg_map(arg) {
                Some(entries) => {
                    for (k, v) in entries {
                        kwargs.insert(k, v.clone());
                    }
                }
                None => out_args.push(without_kwarg_marker(arg)),
            },
            other => out_args.push(other.clone()),
        }
    }
    (out_args, kwargs)
}

/// Salt's `condition_input`: integer arguments that read as job ids become
/// text again, and keywords are appended as one `{"__kwarg__": true, …}` map
/// (the shape a publish's `arg` list carries).
pub fn condition_input(args: Vec<Value>, kwargs: &Kwargs) -> Vec<Value> {
    let mut out: Vec<Value> = args
        .into_iter()
        .map(|arg| match arg {
            Value::Int(i) if is_jid(&i.to_string()) => Value::from(i.to_string()),
            Value::UInt(u) if is_jid(&u.to_string()) => Value::from(u.to_string()),
            other => other,
        })
        .collect();
    if !kwargs.is_empty() {
        let mut packed = vec![(Value::from("__kwarg__"), Value::Bool(true))];
        packed.extend(kwargs.iter().map(|(k, v)| (Value::from(k), v.clone())));
        out.push(Value::Map(packed));
    }
    out
}

/// The command line's full treatment (`parse_input` with `condition=True`):
/// the `arg` list a publish carries for these strings.
pub fn parse_cli(args: &[&str]) -> Vec<Value> {
    let args: Vec<Value> = args.iter().map(|s| Value::from(*s)).collect();
    let (args, kwargs) = parse_input(&args, &[]);
    condition_input(args, &kwargs)
}

/// The entries of a map marked `__kwarg__: true` (the marker itself left
/// out), or `None` if `arg` is not such a map.
fn kwarg_map(arg: &Value) -> Option<Vec<(String, &Value)>> {
    let entries = arg.as_map()?;
    if arg.get("__kwarg__") != Some(&Value::Bool(true)) {
        return None;
    }
    Some(
        entries
            .iter()
            .filter(|(k, _)| !k.is_key("__kwarg__"))
            .map(|(k, v)| (key_text(k), v))
            .collect(),
    )
}

/// A map passed positionally loses a non-true `__kwarg__` entry, as Salt's
/// `pop` does.
fn without_kwarg_marker(arg: &Value) -> Value {
    let mut arg = arg.clone();
    arg.remove("__kwarg__");
    arg
}

fn key_text(key: &Value) -> String {
    py_str(key)
}

/// One parameter of a [`Signature`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Its name, as a keyword argument would give it.
    pub name: Cow<'static, str>,
    /// Whether it has no default.
    pub required: bool,
}

/// A function's parameters as Python declares them: named parameters in
/// order (the required ones first), then optionally `*args` and `**kwargs`.
///
/// ```
/// use brine_protocol::args::Signature;
/// // def get(key, default="", delimiter=":", ordered=True)
/// let sig = Signature::new()
///     .required("key")
///     .optional("default")
///     .optional("delimiter")
///     .optional("ordered");
/// assert!(sig.accepts_keyword("delimiter"));
/// assert!(!sig.accepts_keyword("nope"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signature {
    params: Vec<Param>,
    varargs: bool,
    varkw: bool,
}

impl Signature {
    /// A function without parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parameter without a default.
    #[must_use]
    pub fn required(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.params.push(Param {
            name: name.into(),
            required: true,
        });
        self
    }

    /// Adds a parameter with a default.
    #[must_use]
    pub fn optional(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.params.push(Param {
            name: name.into(),
            required: false,
        });
        self
    }

    /// Declares `*args`.
    #[must_use]
    pub fn varargs(mut self) -> Self {
        self.varargs = true;
        self
    }

    /// Declares `**kwargs`.
    #[must_use]
    pub fn varkw(mut self) -> Self {
        self.varkw = true;
        self
    }

    /// The named parameters, in order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Whether the function takes `*args`.
    pub fn has_varargs(&self) -> bool {
        self.varargs
    }

    /// Whether the function takes `**kwargs`.
    pub fn has_varkw(&self) -> bool {
        self.varkw
    }

    /// The position of the parameter `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == name)
    }

    /// Whether a keyword argument `key` is acceptable (Salt's test: the
    /// function takes `**kwargs` or has a parameter of that name).
    pub fn accepts_keyword(&self, key: &str) -> bool {
        self.varkw || self.position(key).is_some()
    }

    /// Checks a call as Python binds one, in Python's order: keywords that
    /// repeat a positional, too many positionals, missing required ones.
    ///
    /// # Errors
    /// The text of Python's `TypeError`, e.g. `echo() missing 1 required
    /// positional argument: 'text'`, with `name` as the function's name.
    pub fn bind(&self, name: &str, args: &[Value], kwargs: &Kwargs) -> Result<(), String> {
        let named = self.params.len();
        for (key, _) in kwargs.iter() {
            match self.position(key) {
                Some(at) if at < args.len() => {
                    return Err(format!("{name}() got multiple values for argument '{key}'"));
                }
                Some(_) => {}
                None if self.varkw => {}
                None => {
                    return Err(format!(
                        "{name}() got an unexpected keyword argument '{key}'"
                    ));
                }
            }
        }
        if args.len() > named && !self.varargs {
            let defaults = self.params.iter().filter(|p| !p.required).count();
            let takes = if defaults > 0 {
                format!("from {} to {named}", named - defaults)
            } else {
                named.to_string()
            };
            // CPython says "arguments" whenever defaults give a range
            let plural = if named == 1 && defaults == 0 { "" } else { "s" };
            let verb = if args.len() == 1 { "was" } else { "were" };
            return Err(format!(
                "{name}() takes {takes} positional argument{plural} but {} {verb} given",
                args.len()
            ));
        }
        let missing: Vec<&str> = self
            .params
            .iter()
            .enumerate()
            .filter(|(i, p)| p.required && *i >= args.len() && !kwargs.contains_key(&p.name))
            .map(|(_, p)| p.name.as_ref())
            .collect();
        if !missing.is_empty() {
            let plural = if missing.len() == 1 { "" } else { "s" };
            return Err(format!(
                "{name}() missing {} required positional argument{plural}: {}",
                missing.len(),
                python_name_list(&missing)
            ));
        }
        Ok(())
    }
}

/// `'a'`, `'a' and 'b'`, `'a', 'b', and 'c'` as CPython lists names.
fn python_name_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
    }
}

/// The message of Salt's `invalid_kwargs`.
pub fn invalid_kwargs_message(invalid: &[String]) -> String {
    format!(
        "The following keyword arguments are not valid: {}",
        invalid.join(", ")
    )
}

/// Salt's minion-side split of a publish's `arg` list for one function
/// (`load_args_and_kwargs`). `pub_data` is the publish load: when the
/// function takes `**kwargs`, each of its fields is added as `__pub_<key>`.
///
/// # Errors
/// The message of Salt's `SaltInvocationError` when keyword arguments were
/// given that the function does not take ("The following keyword arguments
/// are not valid: key=value, …").
pub fn load_args_and_kwargs(
    signature: &Signature,
    args: &[Value],
    pub_data: Option<&Value>,
) -> Result<(Vec<Value>, Kwargs), String> {
    let mut out_args = Vec::new();
    let mut kwargs = Kwargs::new();
    let mut invalid = Vec::new();
    for arg in args {
        if let Some(entries) = kwarg_map(arg) {
            for (key, value) in entries {
                if signature.accepts_keyword(&key) {
                    kwargs.insert(key, value.clone());
                } else {
                    invalid.push(format!("{key}={}", py_str(value)));
                }
            }
            continue;
        }
        match arg.as_str().and_then(parse_kwarg) {
            Some((key, value)) => {
                let value = yamlify_arg(value);
                if signature.accepts_keyword(key) {
                    kwargs.insert(key, value);
                } else {
                    invalid.push(format!("{key}={}", py_str(&value)));
                }
            }
            None => out_args.push(arg.clone()),
        }
    }
    if !invalid.is_empty() {
        return Err(invalid_kwargs_message(&invalid));
    }
    if signature.varkw
        && let Some(entries) = pub_data.and_then(Value::as_map)
    {
        for (key, value) in entries {
            kwargs.insert(format!("__pub_{}", key_text(key)), value.clone());
        }
    }
    Ok((out_args, kwargs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yamlify_keeps_text_where_salt_does() {
        assert_eq!(yamlify_arg("1"), Value::Int(1));
        assert_eq!(yamlify_arg("true"), Value::Bool(true));
        assert_eq!(yamlify_arg("hello"), Value::from("hello"));
        assert_eq!(yamlify_arg("1_000"), Value::from("1_000"));
        assert_eq!(yamlify_arg("a: 1"), Value::from("a: 1"));
        assert_eq!(yamlify_arg("- a"), Value::from("- a"));
        assert_eq!(yamlify_arg("None"), Value::Nil);
        assert_eq!(yamlify_arg("#"), Value::from("#"));
        assert_eq!(yamlify_arg("1 # one"), Value::Int(1));
        assert_eq!(yamlify_arg("|"), Value::from("|"));
        assert_eq!(yamlify_arg("{a: 1"), Value::from("{a: 1"));
        assert_eq!(
            yamlify_arg("[1, two]"),
            Value::Array(vec![Value::Int(1), Value::from("two")])
        );
    }

    #[test]
    fn kwarg_regex() {
        assert_eq!(parse_kwarg("a=1"), Some(("a", "1")));
        assert_eq!(parse_kwarg("a.b-c=x=y"), Some(("a.b-c", "x=y")));
        assert_eq!(parse_kwarg("_x="), Some(("_x", "")));
        assert_eq!(parse_kwarg("a==b"), None);
        assert_eq!(parse_kwarg("1a=b"), None);
        assert_eq!(parse_kwarg("a b=c"), None);
        assert_eq!(parse_kwarg("=x"), None);
        assert_eq!(parse_kwarg("a=b\n"), Some(("a", "b")));
        assert_eq!(parse_kwarg("a=b\nc"), None);
    }

    #[test]
    fn cli_packs_kwargs_and_jids() {
        let arg = parse_cli(&["1", "20261126001855078720", "k=v", "n=2"]);
        assert_eq!(
            arg,
            vec![
                Value::Int(1),
                Value::from("20261126001855078720"),
                Value::Map(vec![
                    (Value::from("__kwarg__"), Value::Bool(true)),
                    (Value::from("k"), Value::from("v")),
                    (Value::from("n"), Value::Int(2)),
                ]),
            ]
        );
    }

    #[test]
    fn minion_side_split_checks_keywords() {
        let echo = Signature::new().required("text");
        let packed = Value::Map(vec![
            (Value::from("__kwarg__"), Value::Bool(true)),
            (Value::from("text"), Value::from("hi")),
        ]);
        let (args, kwargs) = load_args_and_kwargs(&echo, &[packed], None).unwrap();
        assert!(args.is_empty());
        assert_eq!(kwargs.get("text"), Some(&Value::from("hi")));

        let err = load_args_and_kwargs(&echo, &[Value::from("foo=1")], None).unwrap_err();
        assert_eq!(err, "The following keyword arguments are not valid: foo=1");

        // positional strings are not typed on the minion
        let (args, _) = load_args_and_kwargs(&echo, &[Value::from("1")], None).unwrap();
        assert_eq!(args, vec![Value::from("1")]);

        let any = Signature::new().varargs().varkw();
        let load = Value::Map(vec![(Value::from("jid"), Value::from("1"))]);
        let (_, kwargs) = load_args_and_kwargs(&any, &[Value::from("a=1")], Some(&load)).unwrap();
        assert_eq!(
            kwargs.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["a", "__pub_jid"]
        );
    }

    #[test]
    fn bind_words_errors_as_python() {
        let echo = Signature::new().required("text");
        let none = Kwargs::new();
        assert_eq!(
            echo.bind("echo", &[], &none).unwrap_err(),
            "echo() missing 1 required positional argument: 'text'"
        );
        assert_eq!(
            echo.bind("echo", &[Value::Nil, Value::Nil], &none)
                .unwrap_err(),
            "echo() takes 1 positional argument but 2 were given"
        );
        let kw: Kwargs = [("text", Value::from("x"))].into_iter().collect();
        assert_eq!(
            echo.bind("echo", &[Value::Nil], &kw).unwrap_err(),
            "echo() got multiple values for argument 'text'"
        );
        let three = Signature::new().required("a").required("b").required("c");
        assert_eq!(
            three.bind("f", &[], &none).unwrap_err(),
            "f() missing 3 required positional arguments: 'a', 'b', and 'c'"
        );
        let ping = Signature::new();
        assert_eq!(
            ping.bind("ping", &[Value::Nil], &none).unwrap_err(),
            "ping() takes 0 positional arguments but 1 was given"
        );
    }
}
