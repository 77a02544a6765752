//! Execution modules: the [`Module`] trait, the [`Modules`] registry and the
//! built-in modules.
//!
//! A module is a trait object named like Salt's (`test`, `cmd`); it declares
//! its functions ([`FunctionSpec`]: name, doc, Python-style [`Signature`])
//! and runs one when called. The registry maps `module.function` to it. It is
//! a value, not a global: [`Modules::builtin`] gives Brine's modules, and a
//! downstream crate adds its own exactly as it adds a transport:
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use brine_minion::{Call, FunctionSpec, Module, ModuleError, Modules, args::Signature};
//! use brine_protocol::Value;
//!
//! #[derive(Debug)]
//! struct Hello;
//!
//! #[async_trait]
//! impl Module for Hello {
//!     fn name(&self) -> &str {
//!         "hello"
//!     }
//!     fn functions(&self) -> Vec<FunctionSpec> {
//!         vec![FunctionSpec::new("world", "Say hello to NAME.", Signature::new().required("name"))]
//!     }
//!     async fn call(&self, call: Call<'_>) -> Result<Value, ModuleError> {
//!         let name = call.param("name").and_then(Value::as_str).unwrap_or("?");
//!         Ok(Value::from(format!("hello {name}")))
//!     }
//! }
//!
//! let mut modules = Modules::builtin();
//! modules.register(Arc::new(Hello)).unwrap();
//! assert!(modules.function("hello.world").is_some());
//! assert!(modules.register(Arc::new(Hello)).is_err()); // names are unique
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use brine_protocol::Value;

use crate::args::{Kwargs, Signature};
use crate::context::JobContext;
use crate::error::{ModuleError, RegistryError};

pub mod cmd;
pub mod grains;
pub mod saltutil;
pub mod sys;
pub mod test;

mod glob;
mod process;
mod shlex;

/// One function of a module: its name (without the module), its doc (what
/// `sys.doc` shows) and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The function's name, e.g. `echo`.
    pub name: Cow<'static, str>,
    /// Its documentation.
    pub doc: Cow<'static, str>,
    /// Its parameters.
    pub signature: Signature,
}

impl FunctionSpec {
    /// Declares a function.
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        doc: impl Into<Cow<'static, str>>,
        signature: Signature,
    ) -> Self {
        Self {
            name: name.into(),
            doc: doc.into(),
            signature,
        }
    }
}

/// One call of a module function, with its arguments already split and
/// checked against the function's [`Signature`] (so a required parameter is
/// always there, and an unknown keyword only reaches a `**kwargs` function).
#[derive(Debug)]
pub struct Call<'a> {
    /// The full function name, `module.function`.
    pub fun: &'a str,
    /// The positional arguments.
    pub args: Vec<Value>,
    /// The keyword arguments (with `__pub_*` entries for `**kwargs` functions).
    pub kwargs: Kwargs,
    /// The job id.
    pub jid: &'a str,
    /// The job's hard deadline, if it has one: a function that runs
    /// something it can stop cleanly (a command) should stop it by then.
    pub timeout: Option<Duration>,
    /// The job's context.
    pub ctx: &'a JobContext<'a>,
    /// The function's declaration.
    pub spec: &'a FunctionSpec,
}

impl Call<'_> {
    /// The function name without the module (`echo` for `test.echo`).
    pub fn function(&self) -> &str {
        self.fun.split_once('.').map_or(self.fun, |(_, f)| f)
    }

    /// The value of the named parameter `name`, given by position or keyword.
    pub fn param(&self, name: &str) -> Option<&Value> {
        match self.spec.signature.position(name) {
            Some(at) if at < self.args.len() => self.args.get(at),
            _ => self.kwargs.get(name),
        }
    }

    /// The positional arguments beyond the named parameters (`*args`).
    pub fn extra_args(&self) -> &[Value] {
        self.args
            .get(self.spec.signature.params().len()..)
            .unwrap_or_default()
    }

    /// The keyword arguments that are not named parameters (`**kwargs`).
    pub fn extra_kwargs(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.kwargs
            .iter()
            .filter(|(k, _)| self.spec.signature.position(k).is_none())
    }
}

/// An execution module.
///
/// # Note for implementers
/// - [`Module::functions`] is called once, when the module is registered;
///   [`Module::call`] is only ever called for those functions, with
///   arguments that fit the declared signature.
/// - The future returned by `call` may be dropped at any `.await` (the job
///   was killed with `saltutil.kill_job`, or ran past its timeout): own
///   everything it starts so that dropping cleans up (child processes killed,
///   tasks aborted).
/// - Never block the runtime: run blocking work with
///   `tokio::task::spawn_blocking`.
/// - Return `Ok(value)` for Salt's return value; set a non-zero job retcode
///   with [`JobContext::set_retcode`]; return a [`ModuleError`] where a Salt
///   function raises.
#[async_trait]
pub trait Module: Send + Sync + fmt::Debug {
    /// The module's name, e.g. `test`.
    fn name(&self) -> &str;

    /// The functions the module offers.
    fn functions(&self) -> Vec<FunctionSpec>;

    /// Runs one of them.
    async fn call(&self, call: Call<'_>) -> Result<Value, ModuleError>;
}

fn _dyn_compatible(_: &dyn Module) {}

#[derive(Clone)]
struct Entry {
    module: Arc<dyn Module>,
    spec: Arc<FunctionSpec>,
}

/// The execution modules of a minion, by `module.function`.
#[derive(Clone, Default)]
pub struct Modules {
    modules: BTreeMap<String, Arc<dyn Module>>,
    functions: BTreeMap<String, Entry>,
}

impl fmt::Debug for Modules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Modules")
            .field("modules", &self.modules.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('.') && !name.contains(char::is_whitespace)
}

impl Modules {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Brine's built-in modules: `test`, `cmd`, `grains`, `sys`, `saltutil`.
    pub fn builtin() -> Self {
        let mut modules = Self::new();
        let builtin: [Arc<dyn Module>; 5] = [
            Arc::new(test::Test),
            Arc::new(cmd::Cmd),
            Arc::new(grains::Grains),
            Arc::new(sys::Sys),
            Arc::new(saltutil::Saltutil),
        ];
        for module in builtin {
            if let Err(e) = modules.register(module) {
                // the built-in names are distinct and valid; a unit test pins it
                tracing::error!(error = %e, "built-in module not registered");
            }
        }
        modules
    }

    /// Adds a module and its functions.
    ///
    /// # Errors
    /// [`RegistryError::DuplicateModule`] if a module of that name is
    /// registered; [`RegistryError::DuplicateFunction`] if it declares a
    /// function twice; [`RegistryError::InvalidName`] for an empty name or
    /// one with a `.` or whitespace. Nothing is added on error.
    pub fn register(&mut self, module: Arc<dyn Module>) -> Result<(), RegistryError> {
        let name = module.name().to_owned();
        if !valid_name(&name) {
            return Err(RegistryError::InvalidName(name));
        }
        if self.modules.contains_key(&name) {
            return Err(RegistryError::DuplicateModule(name));
        }
        let mut added = BTreeMap::new();
        for spec in module.functions() {
            if !valid_name(&spec.name) {
                return Err(RegistryError::InvalidName(spec.name.into_owned()));
            }
            let full = format!("{name}.{}", spec.name);
            let entry = Entry {
                module: Arc::clone(&module),
                spec: Arc::new(spec),
            };
            if added.insert(full.clone(), entry).is_some() {
                return Err(RegistryError::DuplicateFunction(full));
            }
        }
        self.functions.extend(added);
        self.modules.insert(name, module);
        Ok(())
    }

    /// The declaration of `module.function`.
    pub fn function(&self, fun: &str) -> Option<&FunctionSpec> {
        self.functions.get(fun).map(|e| e.spec.as_ref())
    }

    /// The module serving `module.function`.
    pub fn module_for(&self, fun: &str) -> Option<&Arc<dyn Module>> {
        self.functions.get(fun).map(|e| &e.module)
    }

    /// Every function as `(module.function, declaration)`, sorted by name.
    pub fn functions(&self) -> impl Iterator<Item = (&str, &FunctionSpec)> {
        self.functions
            .iter()
            .map(|(name, e)| (name.as_str(), e.spec.as_ref()))
    }

    /// The module names, sorted.
    pub fn module_names(&self) -> impl Iterator<Item = &str> {
        self.modules.keys().map(String::as_str)
    }
}

/// Reads an optional integer parameter that Salt would pass through
/// `int(...)`: integers, integral floats and decimal text.
pub(crate) fn int_like(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(i64::from(*b)),
        // Python's int() truncates toward zero
        Value::Float(f) if f.is_finite() => format!("{:.0}", f.trunc()).parse().ok(),
        other => other.as_str().and_then(|s| s.trim().parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Named(&'static str, Vec<&'static str>);

    #[async_trait]
    impl Module for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn functions(&self) -> Vec<FunctionSpec> {
            self.1
                .iter()
                .map(|f| FunctionSpec::new(*f, "", Signature::new()))
                .collect()
        }
        async fn call(&self, _call: Call<'_>) -> Result<Value, ModuleError> {
            Ok(Value::Nil)
        }
    }

    #[test]
    fn builtin_registers_every_module() {
        let modules = Modules::builtin();
        assert_eq!(
            modules.module_names().collect::<Vec<_>>(),
            ["cmd", "grains", "saltutil", "sys", "test"]
        );
        for fun in [
            "test.ping",
            "test.echo",
            "test.arg",
            "test.sleep",
            "test.version",
            "test.fib",
            "test.exception",
            "cmd.run",
            "cmd.run_all",
            "cmd.retcode",
            "cmd.run_stdout",
            "cmd.run_stderr",
            "cmd.shell",
            "grains.items",
            "grains.item",
            "grains.get",
            "grains.ls",
            "sys.list_functions",
            "sys.list_modules",
            "sys.doc",
            "saltutil.find_job",
            "saltutil.running",
            "saltutil.kill_job",
            "saltutil.sync_grains",
            "saltutil.refresh_pillar",
        ] {
            assert!(modules.function(fun).is_some(), "{fun} missing");
            assert!(
                !modules.function(fun).unwrap().doc.is_empty(),
                "{fun} undocumented"
            );
        }
    }

    #[test]
    fn registration_errors() {
        let mut modules = Modules::builtin();
        assert_eq!(
            modules.register(Arc::new(Named("test", vec!["x"]))),
            Err(RegistryError::DuplicateModule("test".into()))
        );
        assert_eq!(
            modules.register(Arc::new(Named("dup", vec!["a", "a"]))),
            Err(RegistryError::DuplicateFunction("dup.a".into()))
        );
        assert!(modules.function("dup.a").is_none());
        assert_eq!(
            modules.register(Arc::new(Named("a.b", vec![]))),
            Err(RegistryError::InvalidName("a.b".into()))
        );
        modules
            .register(Arc::new(Named("extra", vec!["go"])))
            .unwrap();
        assert!(modules.function("extra.go").is_some());
        assert_eq!(modules.module_for("extra.go").unwrap().name(), "extra");
    }

    #[test]
    fn int_like_reads_what_python_int_reads() {
        assert_eq!(int_like(&Value::Int(3)), Some(3));
        assert_eq!(int_like(&Value::from("10")), Some(10));
        assert_eq!(int_like(&Value::Float(2.9)), Some(2));
        assert_eq!(int_like(&Value::from("x")), None);
    }
}
