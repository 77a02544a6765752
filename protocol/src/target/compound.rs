//! Compound targets: matches joined by `and`, `or`, `not` and parentheses.
//!
//! Salt splits the expression on whitespace (so `(` and `)` must stand
//! alone; `(web*` is a glob), evaluates each word to `True`/`False`, joins
//! the words back and hands the string to Python's `eval`; the master does
//! the same with sets of minion ids. Both give `not` precedence over `and`
//! over `or`, and both read `a not b` as `a and not b`. This module parses
//! the same grammar into a tree once and evaluates it per minion, and it
//! reports what Salt's `eval` would choke on (`a and`, `( a`, `a b`, `( )`,
//! `not not a`) as a [`TargetError::Compound`] naming the word.
//!
//! Words are a match with an engine prefix (`G@`, `P@`, `L@`, `E@`, `S@`;
//! `G` and `P` take an optional one-character delimiter, `G;@os;Ubuntu`), a
//! nodegroup `N@name` (expanded when nodegroups are given), or a bare glob.
//! `I@`/`J@` (pillar) and `R@` (range) are [`TargetError::Unsupported`]; any
//! other `X@` prefix is an error rather than Salt's literal glob.

use std::borrow::Cow;

use super::matcher::{IdList, Leaf, Subject};
use super::nodegroup::nodegroup_word;
use super::{CompoundFault, Nodegroups, TargetError, TargetExpr};

/// The words Salt treats as operators.
pub(crate) const OPERATORS: [&str; 5] = ["and", "or", "not", "(", ")"];

/// How deep parentheses may nest (the tree is evaluated recursively).
const MAX_NESTING: usize = 64;

/// A parsed compound expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Leaf {
        leaf: Leaf,
        /// Right after `not`: the master then does not report the ids of an
        /// `L@` list as missing.
        negated: bool,
    },
    Not(Box<Node>),
    All(Vec<Node>),
    Any(Vec<Node>),
}

impl Node {
    pub(crate) fn eval(&self, s: &Subject<'_>) -> bool {
        match self {
            Node::Leaf { leaf, .. } => leaf.eval(s),
            Node::Not(inner) => !inner.eval(s),
            Node::All(nodes) => nodes.iter().all(|n| n.eval(s)),
            Node::Any(nodes) => nodes.iter().any(|n| n.eval(s)),
        }
    }

    /// The `L@` lists whose absent ids the master reports as missing.
    pub(crate) fn reported_lists<'a>(&'a self, out: &mut Vec<&'a IdList>) {
        match self {
            Node::Leaf {
                leaf: Leaf::List(list),
                negated: false,
            } => out.push(list),
            Node::Leaf { .. } => {}
            Node::Not(inner) => inner.reported_lists(out),
            Node::All(nodes) | Node::Any(nodes) => {
                nodes.iter().for_each(|n| n.reported_lists(out));
            }
        }
    }
}

struct Word<'a> {
    text: Cow<'a, str>,
    /// 1-based position in the expression as given.
    pos: usize,
}

/// Parses a compound expression, expanding `N@` words with `nodegroups`.
///
/// # Errors
/// [`TargetError::Compound`] for a malformed expression, the errors of the
/// leaf matches (bad regex, grain without delimiter, unsupported engine),
/// and [`TargetError::UnknownNodegroup`] for an `N@` word when `nodegroups`
/// is `None` or lacks the group.
pub(crate) fn parse(
    expr: &TargetExpr,
    nodegroups: Option<&Nodegroups>,
) -> Result<Node, TargetError> {
    let mut words = Vec::new();
    let mut count = 0;
    for (i, w) in expr.words().enumerate() {
        let pos = i + 1;
        count = pos;
        match nodegroup_word(w) {
            Some(name) => {
                let ng = nodegroups.ok_or_else(|| TargetError::UnknownNodegroup {
                    name: name.to_owned(),
                })?;
                words.extend(ng.expand_operand(name)?.into_iter().map(|text| Word {
                    text: Cow::Owned(text),
                    pos,
                }));
            }
            None => words.push(Word {
                text: Cow::Borrowed(w),
                pos,
            }),
        }
    }
    let mut parser = Parser {
        words,
        next: 0,
        end: count + 1,
    };
    if parser.words.is_empty() {
        return Err(parser.fault(CompoundFault::Empty, None));
    }
    let node = parser.parse_or(0)?;
    match parser.words.get(parser.next) {
        None => Ok(node),
        Some(w) if w.text == ")" => Err(parser.fault(CompoundFault::UnmatchedClose, Some(w))),
        Some(w) => Err(parser.fault(CompoundFault::ExpectedOperator, Some(w))),
    }
}

struct Parser<'a> {
    words: Vec<Word<'a>>,
    next: usize,
    /// The position reported when the expression ends too early.
    end: usize,
}

impl<'a> Parser<'a> {
    fn peek_is(&self, op: &str) -> bool {
        self.words.get(self.next).is_some_and(|w| w.text == op)
    }

    fn fault(&self, fault: CompoundFault, at: Option<&Word<'_>>) -> TargetError {
        TargetError::Compound {
            fault,
            word: at.map_or(self.end, |w| w.pos),
            token: at.map(|w| w.text.to_string()).unwrap_or_default(),
        }
    }

    fn parse_or(&mut self, depth: usize) -> Result<Node, TargetError> {
        let mut terms = vec![self.parse_and(depth)?];
        while self.peek_is("or") {
            self.next += 1;
            terms.push(self.parse_and(depth)?);
        }
        Ok(collapse(terms, Node::Any))
    }

    fn parse_and(&mut self, depth: usize) -> Result<Node, TargetError> {
        let mut factors = vec![self.parse_unary(depth)?];
        loop {
            if self.peek_is("and") {
                self.next += 1;
            } else if !self.peek_is("not") {
                break;
            }
            factors.push(self.parse_unary(depth)?);
        }
        Ok(collapse(factors, Node::All))
    }

    fn parse_unary(&mut self, depth: usize) -> Result<Node, TargetError> {
        if !self.peek_is("not") {
            return self.parse_primary(depth, false);
        }
        self.next += 1;
        if self.peek_is("not") {
            let w = self.words.get(self.next);
            return Err(self.fault(CompoundFault::DoubleNot, w));
        }
        Ok(Node::Not(Box::new(self.parse_primary(depth, true)?)))
    }

    fn parse_primary(&mut self, depth: usize, negated: bool) -> Result<Node, TargetError> {
        let Some(word) = self.words.get(self.next) else {
            return Err(self.fault(CompoundFault::UnexpectedEnd, None));
        };
        self.next += 1;
        match word.text.as_ref() {
            "(" => {
                if depth >= MAX_NESTING {
                    return Err(self.fault(CompoundFault::TooDeep, Some(word)));
                }
                if self.peek_is(")") {
                    let close = self.words.get(self.next);
                    return Err(self.fault(CompoundFault::EmptyGroup, close));
                }
                let inner = self.parse_or(depth + 1)?;
                let close = self.next;
                self.next += 1;
                match self.words.get(close) {
                    Some(w) if w.text == ")" => Ok(inner),
                    Some(w) => Err(self.fault(CompoundFault::ExpectedOperator, Some(w))),
                    None => Err(self.fault(CompoundFault::UnexpectedEnd, None)),
                }
            }
            "and" | "or" | ")" => Err(self.fault(CompoundFault::ExpectedOperand, Some(word))),
            text => match Leaf::from_word(text) {
                Ok(leaf) => Ok(Node::Leaf { leaf, negated }),
                Err(None) => Err(self.fault(CompoundFault::UnknownEngine, Some(word))),
                Err(Some(e)) => Err(e),
            },
        }
    }
}

fn collapse(mut nodes: Vec<Node>, join: fn(Vec<Node>) -> Node) -> Node {
    match nodes.pop() {
        Some(only) if nodes.is_empty() => only,
        Some(last) => {
            nodes.push(last);
            join(nodes)
        }
        None => join(nodes),
    }
}
