//! Errors: a module function's failure, worded as Salt's minion words the
//! exception it caught, and the registry's own errors.

use std::time::Duration;

/// Salt's generic failure exit code (`EX_GENERIC`), the job retcode of every
/// error return.
pub const EX_GENERIC: i64 = 1;

/// Why a module function failed. Each variant stands for the Salt exception
/// class the minion catches in `_thread_return`, and [`ModuleError::salt_return`]
/// gives the text Salt puts in the job's `return` for it. The job's retcode
/// is [`ModuleError::retcode`] (Salt's `EX_GENERIC`, 1, for all of them) and
/// `success` is false.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleError {
    /// Salt's `CommandExecutionError`: the function ran but what it drove
    /// failed. Returned as `ERROR: <message>`.
    #[error("{0}")]
    CommandExecution(String),
    /// Salt's `SaltInvocationError`: the call itself was wrong (bad keyword
    /// arguments, a bad option value). Returned as
    /// `ERROR executing '<fun>': <message>`.
    #[error("{0}")]
    Invocation(String),
    /// Python's `TypeError` from calling the function with the wrong
    /// arguments. Returned as `Passed invalid arguments to <fun>: <message>`
    /// followed by the function's doc.
    #[error("{0}")]
    InvalidArguments(String),
    /// Salt's `CommandNotFoundError`: a program the function needs is
    /// missing. Returned as `Command required for '<fun>' not found: <message>`.
    #[error("{0}")]
    CommandNotFound(String),
    /// Any other exception (Salt: "The minion function caused an exception").
    /// `class` is the Python-style exception name (`Exception`, `ValueError`).
    #[error("{class}: {message}")]
    Exception {
        /// The exception's class name.
        class: String,
        /// Its message.
        message: String,
    },
    /// Brine only: the job ran past its timeout and was stopped.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl ModuleError {
    /// A `CommandExecutionError`.
    pub fn command(message: impl Into<String>) -> Self {
        Self::CommandExecution(message.into())
    }

    /// A `SaltInvocationError`.
    pub fn invocation(message: impl Into<String>) -> Self {
        Self::Invocation(message.into())
    }

    /// A generic exception of Python class `class`.
    pub fn exception(class: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Exception {
            class: class.into(),
            message: message.into(),
        }
    }

    /// The job retcode Salt gives this failure.
    pub fn retcode(&self) -> i64 {
        EX_GENERIC
    }

    /// The job's `return` text for this failure of function `fun`, whose
    /// documentation is `doc`, as Salt's minion words it.
    ///
    /// For [`ModuleError::Exception`] Salt appends a Python traceback; Brine
    /// has none and appends the traceback's last line (`Exception: <message>`)
    /// instead, so the text starts the same and ends with the same line.
    pub fn salt_return(&self, fun: &str, doc: &str) -> String {
        match self {
            Self::CommandExecution(msg) => format!("ERROR: {msg}"),
            Self::Invocation(msg) => format!("ERROR executing '{fun}': {msg}"),
            Self::InvalidArguments(msg) => {
                format!("Passed invalid arguments to {fun}: {msg}\n{doc}")
            }
            Self::CommandNotFound(msg) => format!("Command required for '{fun}' not found: {msg}"),
            Self::Exception { class, message } => {
                format!("The minion function caused an exception: {class}: {message}")
            }
            Self::Timeout(after) => format!(
                "ERROR: the job ran past its timeout of {} seconds and was stopped",
                after.as_secs_f64()
            ),
        }
    }
}

/// An error of the [`Modules`](crate::Modules) registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A module of that name is registered already.
    #[error("an execution module named {0:?} is registered already")]
    DuplicateModule(String),
    /// A module declared the same function twice.
    #[error("execution module function {0:?} is declared twice")]
    DuplicateFunction(String),
    /// A module or function name is empty or contains a `.` or whitespace.
    #[error("invalid execution module or function name {0:?}")]
    InvalidName(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_read_like_salt() {
        assert_eq!(
            ModuleError::command("boom").salt_return("cmd.run", ""),
            "ERROR: boom"
        );
        assert_eq!(
            ModuleError::invocation("bad").salt_return("test.echo", ""),
            "ERROR executing 'test.echo': bad"
        );
        assert_eq!(
            ModuleError::exception("Exception", "Test Exception").salt_return("test.exception", ""),
            "The minion function caused an exception: Exception: Test Exception"
        );
        assert_eq!(
            ModuleError::InvalidArguments("echo() missing".into()).salt_return("test.echo", "doc"),
            "Passed invalid arguments to test.echo: echo() missing\ndoc"
        );
        assert_eq!(ModuleError::command("x").retcode(), 1);
    }
}
