//! `test`: connectivity and argument-passing checks, as Salt's
//! `salt/modules/test.py`.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use brine_protocol::Value;

use super::{Call, FunctionSpec, Module, int_like};
use crate::args::Signature;
use crate::error::ModuleError;
use brine_protocol::pyfmt::{py_repr, py_str};

/// The `test` module.
#[derive(Debug, Clone, Copy, Default)]
pub struct Test;

/// The largest `n` whose Fibonacci number fits msgpack's 64-bit integers.
const MAX_FIB: i64 = 93;

#[async_trait]
impl Module for Test {
    fn name(&self) -> &str {
        "test"
    }

    fn functions(&self) -> Vec<FunctionSpec> {
        vec![
            FunctionSpec::new(
                "ping",
                "Used to make sure the minion is up and responding. Not an ICMP ping.\n\n\
                 Returns True.\n\nCLI Example:\n\n    brine '*' test.ping",
                Signature::new(),
            ),
            FunctionSpec::new(
                "echo",
                "Return TEXT unchanged: used for testing the connection.\n\nCLI Example:\n\n    \
                 brine '*' test.echo 'foo bar baz quo qux'",
                Signature::new().required("text"),
            ),
            FunctionSpec::new(
                "arg",
                "Return the arguments passed to the function: {\"args\": args, \"kwargs\": \
                 kwargs}. The kwargs include the publish data as __pub_* entries.\n\nCLI \
                 Example:\n\n    brine '*' test.arg 1 \"two\" 3.1 txt=\"hello\" wow='{a: 1, b: \"hello\"}'",
                Signature::new().varargs().varkw(),
            ),
            FunctionSpec::new(
                "sleep",
                "Sleep for LENGTH seconds without blocking the minion, then return True.\n\n\
                 CLI Example:\n\n    brine '*' test.sleep 20",
                Signature::new().required("length"),
            ),
            FunctionSpec::new(
                "version",
                "Return the version of Brine on the minion.\n\nCLI Example:\n\n    brine '*' test.version",
                Signature::new(),
            ),
            FunctionSpec::new(
                "fib",
                "Return the NUM-th Fibonacci number and the time it took to compute, in \
                 seconds: [number, seconds]. NUM may be at most 93 (the result must fit 64 \
                 bits).\n\nCLI Example:\n\n    brine '*' test.fib 3",
                Signature::new().required("num"),
            ),
            FunctionSpec::new(
                "exception",
                "Raise an exception with MESSAGE (default 'Test Exception'): the job fails \
                 with retcode 1.\n\nCLI Example:\n\n    brine '*' test.exception 'Oh noes!'",
                Signature::new().optional("message"),
            ),
        ]
    }

    async fn call(&self, call: Call<'_>) -> Result<Value, ModuleError> {
        match call.function() {
            "ping" => {
                tracing::debug!(jid = call.jid, "test.ping received");
                Ok(Value::Bool(true))
            }
            "echo" => Ok(call.param("text").cloned().unwrap_or(Value::Nil)),
            "arg" => Ok(Value::Map(vec![
                (Value::from("args"), Value::Array(call.args.clone())),
                (Value::from("kwargs"), call.kwargs.to_value()),
            ])),
            "sleep" => {
                let length = int_param(&call, "length")?;
                let secs = u64::try_from(length).map_err(|_| {
                    ModuleError::exception("ValueError", "sleep length must be non-negative")
                })?;
                tokio::time::sleep(Duration::from_secs(secs)).await;
                Ok(Value::Bool(true))
            }
            "version" => Ok(Value::from(crate::VERSION)),
            "fib" => fib(int_param(&call, "num")?),
            "exception" => {
                let message = call
                    .param("message")
                    .map_or_else(|| "Test Exception".to_owned(), py_str);
                Err(ModuleError::exception("Exception", message))
            }
            other => Err(ModuleError::command(format!(
                "'test.{other}' is not available."
            ))),
        }
    }
}

/// `int(value)` as Python does it, or its `ValueError`.
fn int_param(call: &Call<'_>, name: &str) -> Result<i64, ModuleError> {
    let value = call.param(name).unwrap_or(&Value::Nil);
    int_like(value).ok_or_else(|| {
        ModuleError::exception(
            "ValueError",
            format!("invalid literal for int() with base 10: {}", py_repr(value)),
        )
    })
}

fn fib(num: i64) -> Result<Value, ModuleError> {
    if num < 0 {
        return Err(ModuleError::exception(
            "ValueError",
            "Negative number is not allowed!",
        ));
    }
    if num > MAX_FIB {
        return Err(ModuleError::exception(
            "OverflowError",
            "Integer value out of range",
        ));
    }
    let start = Instant::now();
    let (mut prev, mut curr): (u64, u64) = (0, 1);
    let value = if num < 2 {
        u64::try_from(num).unwrap_or(0)
    } else {
        for _ in 1..num {
            let next = prev.saturating_add(curr);
            prev = curr;
            curr = next;
        }
        curr
    };
    Ok(Value::Array(vec![
        Value::from(value),
        Value::Float(start.elapsed().as_secs_f64()),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fib_matches_salt() {
        let first = |n| fib(n).unwrap().as_array().unwrap()[0].clone();
        assert_eq!(first(0), Value::Int(0));
        assert_eq!(first(1), Value::Int(1));
        assert_eq!(first(2), Value::Int(1));
        assert_eq!(first(10), Value::Int(55));
        assert_eq!(first(93), Value::UInt(12_200_160_415_121_876_738));
        assert!(fib(-1).is_err());
        assert!(fib(94).is_err());
    }
}
