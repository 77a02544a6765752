//! eauth permissions, as Salt's `CkMinions` (`salt/utils/minions.py`):
//! which entries of `external_auth[<eauth>]` apply to a user
//! ([`fill_auth_list`]), whether they allow an execution function on a
//! target ([`auth_check`]) or a runner/wheel function ([`spec_check`]),
//! and the list `/login` reports ([`login_perms`]).
//!
//! Matching is Salt's:
//! - a user key applies when Salt's `expr_match(key, username)` holds:
//!   the key matched by the *username* as a shell glob, or by
//!   `\A<username>\Z` as a regular expression (Salt passes the arguments in
//!   this order; a plain name matches itself). `name%` keys are groups;
//!   `*` applies only to users no other key matched.
//! - function entries are regular expressions matched from the start of
//!   the name only (Python's `re.match`): `test.` allows `test.ping`.
//! - `{target: [funs]}` also requires every minion the job targets to be
//!   within the compound expression `target`; function entries may be
//!   `{fun: {args: [re…], kwargs: {k: re}}}` (a `null` pattern allows any).
//! - `@runner`/`@runners`, `@wheel`/`@wheels` allow the whole class,
//!   `@<module>` one module; `{"@runner": ["jobs.*"]}` matches the full
//!   name, `{"@jobs": ["lookup_jid"]}` the function part.

use std::collections::BTreeSet;

use brine_protocol::Value;
use brine_protocol::config::fnmatch;
use brine_protocol::pyfmt::py_str;
use regex::RegexBuilder;
use tracing::warn;

/// How large a compiled pattern may grow (user-supplied patterns).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles `pattern` anchored as asked; `None` (logged) when invalid.
fn compile(pattern: &str, whole: bool) -> Option<regex::Regex> {
    let anchored = if whole {
        format!(r"\A(?:{pattern})\z")
    } else {
        format!(r"\A(?:{pattern})")
    };
    RegexBuilder::new(&anchored)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .ok()
}

/// Salt's `expr_match(line, expr)`: `expr` as a glob over `line`, or as a
/// whole-string regular expression.
pub(crate) fn expr_match(line: &str, expr: &str) -> bool {
    fnmatch(line, expr) || compile(expr, true).is_some_and(|re| re.is_match(line))
}

/// Salt's `match_check`: `re.match(regex, fun)`.
pub(crate) fn match_check(regex: &str, fun: &str) -> bool {
    match compile(regex, false) {
        Some(re) => re.is_match(fun),
        None => {
            warn!(regex, "invalid regular expression in external_auth");
            false
        }
    }
}

/// Salt's `fill_auth_list`: the entries of `provider` (one eauth section)
/// that apply to `name` in `groups`. `^` keys are backend options.
pub(crate) fn fill_auth_list(provider: &Value, name: &str, groups: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    let Some(entries) = provider.as_map() else {
        return out;
    };
    let mut name_matched = false;
    let mut star: Option<&Value> = None;
    for (key, perms) in entries {
        let Some(key) = key.as_str() else { continue };
        if key.starts_with('^') {
            continue;
        }
        if key == "*" {
            star = Some(perms);
            continue;
        }
        if let Some(group) = key.strip_suffix('%') {
            if groups.iter().any(|g| g == group) {
                extend(&mut out, perms);
            }
        } else if expr_match(key, name) {
            name_matched = true;
            extend(&mut out, perms);
        }
    }
    if !name_matched && let Some(perms) = star {
        extend(&mut out, perms);
    }
    out
}

fn extend(out: &mut Vec<Value>, perms: &Value) {
    match perms {
        Value::Array(items) => out.extend(items.iter().cloned()),
        Value::Nil => {}
        other => out.push(other.clone()),
    }
}

/// What `/login` reports, Salt's `sum_permissions` then
/// `sorted_permissions`: the user's own entry (exact name), `*`, and the
/// groups', de-duplicated, strings sorted first, then the rest.
pub(crate) fn login_perms(provider: &Value, name: &str, groups: &[String]) -> Vec<Value> {
    let mut perms = Vec::new();
    if let Some(own) = provider.get(name) {
        extend(&mut perms, own);
    }
    if let Some(star) = provider.get("*") {
        extend(&mut perms, star);
    }
    for group in groups {
        if let Some(entry) = provider.get(&format!("{group}%")) {
            extend(&mut perms, entry);
        }
    }
    let mut strings: Vec<String> = Vec::new();
    let mut others: Vec<Value> = Vec::new();
    for perm in perms {
        match perm {
            Value::Str(s) => {
                if !strings.contains(&s) {
                    strings.push(s);
                }
            }
            other => {
                if !others.contains(&other) {
                    others.push(other);
                }
            }
        }
    }
    strings.sort();
    others.sort_by_key(py_str);
    strings.into_iter().map(Value::Str).chain(others).collect()
}

/// The minions a target expression reaches, for `{target: [...]}` entries.
pub(crate) trait TargetExpander {
    /// The minions `tgt` of `tgt_type` matches; `None` if it cannot be read.
    fn expand(&self, tgt: &Value, tgt_type: &str) -> Option<BTreeSet<String>>;
}

/// One execution request to check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Execution<'a> {
    pub(crate) fun: &'a str,
    pub(crate) args: &'a [Value],
    pub(crate) kwargs: &'a [(String, Value)],
    pub(crate) tgt: &'a Value,
    pub(crate) tgt_type: &'a str,
}

/// Salt's `auth_check` (without expanded matching): whether `auth_list`
/// allows `call`. `saltutil.find_job` is always allowed (Salt's publish
/// whitelist).
pub(crate) fn auth_check(
    auth_list: &[Value],
    call: &Execution<'_>,
    targets: &dyn TargetExpander,
) -> bool {
    if call.fun == "saltutil.find_job" {
        return true;
    }
    let mut requested: Option<Option<BTreeSet<String>>> = None;
    for entry in auth_list {
        match entry {
            Value::Str(pattern) if match_check(pattern, call.fun) => return true,
            Value::Map(one) if one.len() == 1 => {
                let Some((valid, funs)) = one.first() else {
                    continue;
                };
                let Some(valid) = valid.as_str() else {
                    continue;
                };
                let minions = requested
                    .get_or_insert_with(|| targets.expand(call.tgt, call.tgt_type))
                    .as_ref();
                let Some(minions) = minions else { continue };
                let Some(allowed) = targets.expand(&Value::from(valid), "compound") else {
                    continue;
                };
                if minions.is_subset(&allowed)
                    && fun_check(funs, call.fun, Some(call.args), Some(call.kwargs))
                {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// A runner or wheel name without exactly one dot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadSyntax;

/// Salt's `spec_check` for `form` `runner` or `wheel`.
///
/// # Errors
/// [`BadSyntax`] ("A command invocation error occurred: Check syntax.")
/// when `fun` is not `module.function`.
pub(crate) fn spec_check(
    auth_list: &[Value],
    fun: &str,
    args: &[Value],
    kwargs: &[(String, Value)],
    form: &str,
) -> Result<bool, BadSyntax> {
    if auth_list.is_empty() {
        return Ok(false);
    }
    let mut parts = fun.split('.');
    let (Some(module), Some(function), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(BadSyntax);
    };
    let plural = format!("@{form}s");
    let is_class = |name: &str| name.strip_prefix('@') == Some(form) || name == plural;
    for entry in auth_list {
        match entry {
            Value::Str(name)
                if name.strip_prefix('@') == Some(module)
                    || (name.starts_with('@') && is_class(name)) =>
            {
                return Ok(true);
            }
            Value::Map(one) if one.len() == 1 => {
                let Some((valid, funs)) = one.first() else {
                    continue;
                };
                let Some(valid) = valid.as_str().filter(|v| v.starts_with('@')) else {
                    continue;
                };
                if valid.strip_prefix('@') == Some(module)
                    && fun_check(funs, function, Some(args), Some(kwargs))
                {
                    return Ok(true);
                }
                if is_class(valid) && fun_check(funs, fun, Some(args), Some(kwargs)) {
                    return Ok(true);
                }
            }
            _ => {}
        }
    }
    Ok(false)
}

/// Salt's `__fun_check`: a function pattern, or `{pattern: arg conditions}`,
/// or a list of those.
fn fun_check(
    valid: &Value,
    fun: &str,
    args: Option<&[Value]>,
    kwargs: Option<&[(String, Value)]>,
) -> bool {
    let conditions: &[Value] = match valid {
        Value::Array(items) => items,
        other => std::slice::from_ref(other),
    };
    for cond in conditions {
        match cond {
            Value::Str(pattern) if match_check(pattern, fun) => return true,
            Value::Map(one) if one.len() == 1 => {
                let Some((pattern, arg_conds)) = one.first() else {
                    continue;
                };
                let Some(pattern) = pattern.as_str() else {
                    continue;
                };
                if match_check(pattern, fun) && args_check(arg_conds, args, kwargs) {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// Salt's `__args_check`: `{args: [re…], kwargs: {k: re}}` or a list of
/// them; any one that matches allows the call.
fn args_check(valid: &Value, args: Option<&[Value]>, kwargs: Option<&[(String, Value)]>) -> bool {
    let conditions: &[Value] = match valid {
        Value::Array(items) => items,
        other => std::slice::from_ref(other),
    };
    'cond: for cond in conditions {
        if !matches!(cond, Value::Map(_)) {
            continue;
        }
        if let Some(cond_args) = cond.get("args").and_then(Value::as_array) {
            for (i, pattern) in cond_args.iter().enumerate() {
                let Some(arg) = args.and_then(|a| a.get(i)) else {
                    continue 'cond;
                };
                if pattern.is_nil() {
                    continue;
                }
                if !match_check(&py_str(pattern), &py_str(arg)) {
                    continue 'cond;
                }
            }
        }
        if let Some(cond_kwargs) = cond.get("kwargs").and_then(Value::as_map) {
            for (key, pattern) in cond_kwargs {
                let key = py_str(key);
                let Some((_, given)) = kwargs.and_then(|k| k.iter().find(|(name, _)| *name == key))
                else {
                    continue 'cond;
                };
                if pattern.is_nil() {
                    continue;
                }
                if !match_check(&py_str(pattern), &py_str(given)) {
                    continue 'cond;
                }
            }
        }
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn s(v: &str) -> Value {
        Value::from(v)
    }

    fn list(items: &[Value]) -> Value {
        Value::Array(items.to_vec())
    }

    fn map1(k: &str, v: Value) -> Value {
        Value::Map(vec![(s(k), v)])
    }

    /// Targets: `web*` reaches web1, web2; `db1` itself; compound `web*`
    /// the same as glob.
    struct Fixed;
    impl TargetExpander for Fixed {
        fn expand(&self, tgt: &Value, _tgt_type: &str) -> Option<BTreeSet<String>> {
            let all = ["web1", "web2", "db1"];
            let pattern = tgt.as_str()?;
            Some(
                all.iter()
                    .filter(|m| fnmatch(m, pattern))
                    .map(|m| (*m).to_owned())
                    .collect(),
            )
        }
    }

    fn exec<'a>(fun: &'a str, tgt: &'a Value, args: &'a [Value]) -> Execution<'a> {
        Execution {
            fun,
            args,
            kwargs: &[],
            tgt,
            tgt_type: "glob",
        }
    }

    #[test]
    fn user_keys_match_as_salt_expr_match() {
        let provider: Value = [
            ("^filename", s("/x")),
            ("admin", list(&[s(".*")])),
            ("dev.*", list(&[s("test.*")])),
            ("ops%", list(&[s("@runner")])),
            ("*", list(&[s("grains.items")])),
        ]
        .into_iter()
        .collect();
        assert_eq!(fill_auth_list(&provider, "admin", &[]), [s(".*")]);
        // no key matched: '*' applies
        assert_eq!(fill_auth_list(&provider, "bob", &[]), [s("grains.items")]);
        // the username is the pattern over the key, as Salt's argument order has it
        assert_eq!(fill_auth_list(&provider, "dev.*", &[]), [s("test.*")]);
        assert_eq!(fill_auth_list(&provider, "dev1", &[]), [s("grains.items")]);
        assert_eq!(fill_auth_list(&provider, "adm*", &[]), [s(".*")]);
        assert_eq!(
            fill_auth_list(&provider, "carol", &["ops".to_owned()]),
            [s("@runner"), s("grains.items")]
        );
        assert_eq!(
            login_perms(&provider, "admin", &[]),
            [s(".*"), s("grains.items")]
        );
        assert!(login_perms(&Value::map(), "x", &[]).is_empty());
    }

    #[test]
    fn functions_match_from_the_start_only() {
        let star = s("*");
        let list1 = [s("test.")];
        assert!(auth_check(&list1, &exec("test.ping", &star, &[]), &Fixed));
        assert!(!auth_check(&list1, &exec("cmd.run", &star, &[]), &Fixed));
        assert!(!auth_check(
            &[s("ping")],
            &exec("test.ping", &star, &[]),
            &Fixed
        ));
        assert!(auth_check(&[s(".*")], &exec("cmd.run", &star, &[]), &Fixed));
        // find_job always
        assert!(auth_check(
            &[],
            &exec("saltutil.find_job", &star, &[]),
            &Fixed
        ));
        assert!(!auth_check(&[], &exec("test.ping", &star, &[]), &Fixed));
        // an invalid pattern allows nothing
        assert!(!auth_check(
            &[s("(")],
            &exec("test.ping", &star, &[]),
            &Fixed
        ));
    }

    #[test]
    fn targets_and_arguments_narrow_dict_entries() {
        let perms = [map1(
            "web*",
            list(&[s("test.*"), map1("cmd.run", map1("args", list(&[s("ls")])))]),
        )];
        let web = s("web*");
        let web1 = s("web1");
        let all = s("*");
        assert!(auth_check(&perms, &exec("test.ping", &web, &[]), &Fixed));
        assert!(auth_check(&perms, &exec("test.ping", &web1, &[]), &Fixed));
        assert!(!auth_check(&perms, &exec("test.ping", &all, &[]), &Fixed));
        assert!(auth_check(
            &perms,
            &exec("cmd.run", &web, &[s("ls -l")]),
            &Fixed
        ));
        assert!(!auth_check(
            &perms,
            &exec("cmd.run", &web, &[s("rm -rf /")]),
            &Fixed
        ));
        assert!(!auth_check(&perms, &exec("cmd.run", &web, &[]), &Fixed));
        let kw = [map1(
            "*",
            list(&[map1("test.arg", map1("kwargs", map1("x", s("1.*"))))]),
        )];
        let call = Execution {
            kwargs: &[("x".to_owned(), Value::from(12))],
            ..exec("test.arg", &all, &[])
        };
        assert!(auth_check(&kw, &call, &Fixed));
        let call = Execution {
            kwargs: &[("x".to_owned(), Value::from(2))],
            ..exec("test.arg", &all, &[])
        };
        assert!(!auth_check(&kw, &call, &Fixed));
    }

    #[test]
    fn runner_and_wheel_classes_and_modules() {
        let check = |perms: &[Value], fun: &str, form: &str| spec_check(perms, fun, &[], &[], form);
        assert_eq!(
            check(&[s("@runner")], "jobs.lookup_jid", "runner"),
            Ok(true)
        );
        assert_eq!(
            check(&[s("@runners")], "jobs.lookup_jid", "runner"),
            Ok(true)
        );
        assert_eq!(check(&[s("@runner")], "key.list_all", "wheel"), Ok(false));
        assert_eq!(check(&[s("@wheel")], "key.list_all", "wheel"), Ok(true));
        assert_eq!(check(&[s("@jobs")], "jobs.list_jobs", "runner"), Ok(true));
        assert_eq!(check(&[s("@jobs")], "manage.up", "runner"), Ok(false));
        assert_eq!(check(&[s(".*")], "manage.up", "runner"), Ok(false));
        let full = [map1("@runner", list(&[s("jobs.*")]))];
        assert_eq!(check(&full, "jobs.active", "runner"), Ok(true));
        assert_eq!(check(&full, "manage.up", "runner"), Ok(false));
        let part = [map1("@key", list(&[s("list_all")]))];
        assert_eq!(check(&part, "key.list_all", "wheel"), Ok(true));
        assert_eq!(check(&part, "key.accept", "wheel"), Ok(false));
        assert_eq!(
            check(&[s("@runner")], "lookup_jid", "runner"),
            Err(BadSyntax)
        );
        assert_eq!(check(&[], "lookup_jid", "runner"), Ok(false));
    }
}
