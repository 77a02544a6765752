use std::fmt;

/// Why a target could not be parsed or expanded.
///
/// A minion treats any of these as "this publish is not for me"; the master
/// refuses to publish a job whose target fails to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The `tgt_type` string names no target type Salt knows.
    #[error("unknown target type {name:?}")]
    UnknownType {
        /// The string as received.
        name: String,
    },
    /// The target type (or compound engine) exists in Salt but Brine does
    /// not implement it yet (pillar, range).
    #[error("{what} is not supported")]
    Unsupported {
        /// What is missing, e.g. "pillar targeting".
        what: &'static str,
    },
    /// The `tgt` value has the wrong shape for its type (a list for a glob,
    /// nil, a list holding something other than strings).
    #[error("invalid target expression: {reason}")]
    InvalidExpression {
        /// What is wrong with it.
        reason: String,
    },
    /// A regular expression (`pcre`, `grain_pcre`, `E@`, `P@`) does not compile.
    #[error("invalid regular expression {pattern:?}: {reason}")]
    InvalidRegex {
        /// The pattern as given.
        pattern: String,
        /// The compiler's complaint.
        reason: String,
    },
    /// A grain target has no delimiter, so it names no key (`role` instead of `role:web`).
    #[error("grain target {expr:?} has no {delimiter:?} between key and value")]
    MissingDelimiter {
        /// The grain expression.
        expr: String,
        /// The delimiter in force.
        delimiter: String,
    },
    /// An `ipcidr` / `S@` target is neither an IP address nor a network.
    #[error("invalid IP address or CIDR network {expr:?}")]
    InvalidIp {
        /// The expression as given.
        expr: String,
    },
    /// A compound expression is malformed.
    #[error("invalid compound target at word {word} ({token:?}): {fault}")]
    Compound {
        /// What is wrong.
        fault: CompoundFault,
        /// 1-based index of the offending word in the expression as given
        /// (one past the last word when the expression ends too early; the
        /// `N@` word for faults inside an expanded nodegroup).
        word: usize,
        /// The offending word (empty at the end of the expression).
        token: String,
    },
    /// A nodegroup name is not defined in the master's `nodegroups`.
    #[error("unknown nodegroup {name:?}")]
    UnknownNodegroup {
        /// The name looked up.
        name: String,
    },
    /// A nodegroup includes itself, directly or through others.
    #[error("nodegroup {name:?} includes itself (via {path})")]
    NodegroupCycle {
        /// The nodegroup met twice.
        name: String,
        /// The chain of inclusions, `a -> b -> a`.
        path: String,
    },
    /// A nodegroup definition is neither a string nor a list of words.
    #[error("nodegroup {name:?} is neither a string nor a list")]
    InvalidNodegroup {
        /// The nodegroup's name.
        name: String,
    },
}

/// What is wrong with a compound expression; see [`TargetError::Compound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompoundFault {
    /// The expression has no words.
    Empty,
    /// `and` or `or` where an operand (a match or `(`) was expected:
    /// at the start, after `(`, after another operator.
    ExpectedOperand,
    /// Two operands in a row, or `(` right after an operand.
    ExpectedOperator,
    /// The expression ends after an operator or inside parentheses.
    UnexpectedEnd,
    /// A `)` with no matching `(`.
    UnmatchedClose,
    /// `( )` with nothing inside.
    EmptyGroup,
    /// `not not`: Salt accepts one `not` per operand.
    DoubleNot,
    /// An `X@` prefix that is no target engine.
    UnknownEngine,
    /// Parentheses nested deeper than the parser allows.
    TooDeep,
}

impl fmt::Display for CompoundFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompoundFault::Empty => "the expression is empty",
            CompoundFault::ExpectedOperand => "expected a match or `(`",
            CompoundFault::ExpectedOperator => "expected `and`, `or` or `)`",
            CompoundFault::UnexpectedEnd => "the expression ends too early",
            CompoundFault::UnmatchedClose => "`)` without a matching `(`",
            CompoundFault::EmptyGroup => "empty parentheses",
            CompoundFault::DoubleNot => "`not` directly after `not`",
            CompoundFault::UnknownEngine => "unknown target engine",
            CompoundFault::TooDeep => "parentheses nested too deeply",
        })
    }
}
