//! `sys`: what the minion can run, as Salt's `salt/modules/sysmod.py`.

use std::collections::BTreeSet;

use async_trait::async_trait;
use brine_protocol::Value;

use super::glob::fnmatch;
use super::{Call, FunctionSpec, Module, Modules};
use crate::args::Signature;
use crate::error::ModuleError;
use brine_protocol::pyfmt::py_str;

/// The `sys` module.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sys;

#[async_trait]
impl Module for Sys {
    fn name(&self) -> &str {
        "sys"
    }

    fn functions(&self) -> Vec<FunctionSpec> {
        vec![
            FunctionSpec::new(
                "doc",
                "Return the docs of all functions as {function: doc}, or of those named: a \
                 module ('sys' matches sys.* but not sysctl.*), a function, or a glob.\n\nCLI \
                 Example:\n\n    brine '*' sys.doc\n    brine '*' sys.doc test\n    brine '*' \
                 sys.doc test.ping\n    brine '*' sys.doc 'sys.list_*'",
                Signature::new().varargs(),
            ),
            FunctionSpec::new(
                "list_functions",
                "List the functions of all modules, or of the modules named (globs allowed, \
                 and names with a '.' are matched as globs), sorted.\n\nCLI Example:\n\n    \
                 brine '*' sys.list_functions\n    brine '*' sys.list_functions sys",
                Signature::new().varargs().varkw(),
            ),
            FunctionSpec::new(
                "list_modules",
                "List the modules loaded on the minion, or those matching the names or globs \
                 given, sorted.\n\nCLI Example:\n\n    brine '*' sys.list_modules\n    brine '*' \
                 sys.list_modules 's*'",
                Signature::new().varargs(),
            ),
        ]
    }

    async fn call(&self, call: Call<'_>) -> Result<Value, ModuleError> {
        let modules = call.ctx.modules;
        let names: Vec<String> = call.args.iter().map(py_str).collect();
        match call.function() {
            "doc" => Ok(doc(modules, &names)),
            "list_functions" => Ok(strings(list_functions(modules, &names))),
            "list_modules" => Ok(strings(list_modules(modules, &names))),
            other => Err(ModuleError::command(format!(
                "'sys.{other}' is not available."
            ))),
        }
    }
}

fn strings(items: impl IntoIterator<Item = String>) -> Value {
    Value::Array(items.into_iter().map(Value::from).collect())
}

/// `sys.doc`: `{function: doc}` for every function, or for those the
/// arguments select.
pub(crate) fn doc(modules: &Modules, names: &[String]) -> Value {
    let mut selected: Vec<(&str, &FunctionSpec)> = Vec::new();
    fn add<'m>(
        selected: &mut Vec<(&'m str, &'m FunctionSpec)>,
        name: &'m str,
        spec: &'m FunctionSpec,
    ) {
        if !selected.iter().any(|(n, _)| *n == name) {
            selected.push((name, spec));
        }
    }
    if names.is_empty() {
        for (name, spec) in modules.functions() {
            add(&mut selected, name, spec);
        }
    }
    for target in names {
        if target.contains('*') {
            for (name, spec) in modules.functions().filter(|(n, _)| fnmatch(n, target)) {
                add(&mut selected, name, spec);
            }
        } else {
            let prefix = if target.is_empty() || target.ends_with('.') {
                target.clone()
            } else {
                format!("{target}.")
            };
            for (name, spec) in modules
                .functions()
                .filter(|(n, _)| *n == target || n.starts_with(&prefix))
            {
                add(&mut selected, name, spec);
            }
        }
    }
    Value::Map(
        selected
            .into_iter()
            .map(|(name, spec)| (Value::from(name), Value::from(spec.doc.as_ref())))
            .collect(),
    )
}

fn list_functions(modules: &Modules, names: &[String]) -> BTreeSet<String> {
    let all = modules.functions().map(|(n, _)| n.to_owned());
    if names.is_empty() {
        return all.collect();
    }
    let mut out = BTreeSet::new();
    for target in names {
        if target.contains('*') || target.contains('.') {
            out.extend(
                modules
                    .functions()
                    .filter(|(n, _)| fnmatch(n, target))
                    .map(|(n, _)| n.to_owned()),
            );
        } else {
            let prefix = format!("{target}.");
            out.extend(
                modules
                    .functions()
                    .filter(|(n, _)| n.starts_with(&prefix))
                    .map(|(n, _)| n.to_owned()),
            );
        }
    }
    out
}

fn list_modules(modules: &Modules, names: &[String]) -> BTreeSet<String> {
    let module_of = |f: &str| f.split('.').next().unwrap_or(f).to_owned();
    if names.is_empty() {
        return modules.functions().map(|(n, _)| module_of(n)).collect();
    }
    let mut out = BTreeSet::new();
    for target in names {
        for (name, _) in modules.functions() {
            let matches = if target.contains('*') {
                fnmatch(name, target)
            } else {
                module_of(name) == *target
            };
            if matches {
                out.insert(module_of(name));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn listings_follow_salts_matching() {
        let m = Modules::builtin();
        let sys = list_functions(&m, &names(&["sys"]));
        assert_eq!(
            sys.into_iter().collect::<Vec<_>>(),
            ["sys.doc", "sys.list_functions", "sys.list_modules"]
        );
        assert!(list_functions(&m, &names(&["test.p*"])).contains("test.ping"));
        assert!(list_functions(&m, &names(&["sy"])).is_empty());
        assert_eq!(
            list_modules(&m, &names(&["s*"]))
                .into_iter()
                .collect::<Vec<_>>(),
            ["saltutil", "sys"]
        );
        assert_eq!(list_modules(&m, &[]).len(), 5);
    }

    #[test]
    fn doc_selects_modules_functions_and_globs() {
        let m = Modules::builtin();
        let d = doc(&m, &names(&["test.ping"]));
        assert_eq!(d.as_map().unwrap().len(), 1);
        let d = doc(&m, &names(&["sys"]));
        assert_eq!(d.as_map().unwrap().len(), 3);
        let d = doc(&m, &names(&["test.pin*"]));
        assert!(d.get("test.ping").is_some());
        assert_eq!(doc(&m, &[]).as_map().unwrap().len(), m.functions().count());
    }
}
