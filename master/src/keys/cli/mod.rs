//! `brine-key` as a library: Salt's `KeyCLI` over a [`KeyStore`].
//!
//! | action | flag | what it prints |
//! | --- | --- | --- |
//! | [`KeyAction::List`] | `-L`, `-l <state>` | the ids under Salt's headings |
//! | [`KeyAction::Accept`] | `-a <glob>`, `-A` | the keys, `Proceed? [n/Y]`, `Key for minion <id> accepted.` |
//! | [`KeyAction::Reject`] | `-r <glob>`, `-R` | as accept |
//! | [`KeyAction::Delete`] | `-d <glob>`, `-D` | as accept, `Proceed? [N/y]` |
//! | [`KeyAction::Finger`] | `-f <glob>`, `-F` | `<id>:  <fingerprint>`, with the master's own keys under `Local Keys:` |
//! | [`KeyAction::Print`] | `-p <glob>`, `-P` | `<id>:  <PEM>` |
//! | [`KeyAction::GenKeys`] | `--gen-keys <name>` | `return:` and the new key's fingerprint |
//!
//! A glob is Salt's: one shell pattern or several separated by commas.
//! Accept, reject and delete show the matching keys first and ask (unless
//! `yes`), then change exactly the keys shown. Data goes through
//! [`Printer`], so `--out json` prints the same data as JSON.
//!
//! brine-key only changes files; a running master notices the change
//! (Maintenance polls `pki_dir`), fires `salt/key` and, after a reject or
//! delete, rotates its session key (also asked for through `.dfn`).

mod printer;
mod report;

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::str::FromStr;

use brine_protocol::Value;
use brine_protocol::keys::KeyState;
use thiserror::Error;

pub use printer::{Out, Printer, parse_outputter};

use super::{HashType, KeyChanges, KeyList, KeyStore, KeyStoreError, gen_keys, pem_finger};

/// What `-l` lists (Salt accepts any word starting with these prefixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListWhich {
    /// `acc…`.
    Accepted,
    /// `pre…`, `un…`.
    Pending,
    /// `rej…`.
    Rejected,
    /// `den…`.
    Denied,
    /// `all…` (and `-L`).
    All,
}

impl FromStr for ListWhich {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let which = if s.starts_with("acc") {
            ListWhich::Accepted
        } else if s.starts_with("pre") || s.starts_with("un") {
            ListWhich::Pending
        } else if s.starts_with("rej") {
            ListWhich::Rejected
        } else if s.starts_with("den") {
            ListWhich::Denied
        } else if s.starts_with("all") {
            ListWhich::All
        } else {
            return Err(format!(
                "'{s}' is not a valid argument to '--list' (use acc, un, rej, den or all)"
            ));
        };
        Ok(which)
    }
}

/// One `brine-key` action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAction {
    /// `-L` / `-l <state>`.
    List(ListWhich),
    /// `-a <glob>` / `-A` (glob `*`).
    Accept(String),
    /// `-r <glob>` / `-R`.
    Reject(String),
    /// `-d <glob>` / `-D`.
    Delete(String),
    /// `-f <glob>` / `-F`.
    Finger(String),
    /// `-p <glob>` / `-P`.
    Print(String),
    /// `--gen-keys <name> --gen-keys-dir <dir> --keysize <bits>`.
    GenKeys {
        /// The file stem (`<name>.pem`, `<name>.pub`).
        name: String,
        /// Where to write them.
        dir: PathBuf,
        /// RSA modulus size.
        keysize: usize,
    },
}

/// Extra states accept/reject may take keys from (Salt's `--include-*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Include {
    /// `--include-accepted` (reject, delete's message).
    pub accepted: bool,
    /// `--include-rejected` (accept, delete's message).
    pub rejected: bool,
    /// `--include-denied`.
    pub denied: bool,
    /// `--include-all`: rejected keys when accepting, accepted keys when
    /// rejecting.
    pub all: bool,
}

/// The terminal a run talks to.
pub struct Terminal<'a> {
    /// Data, headings, prompts.
    pub out: &'a mut dyn Write,
    /// Warnings (keys that could not be accepted).
    pub err: &'a mut dyn Write,
    /// Answers to `Proceed?`.
    pub input: &'a mut dyn BufRead,
}

impl std::fmt::Debug for Terminal<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Terminal")
    }
}

/// Why a `brine-key` run failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyCliError {
    /// Reading or changing keys failed.
    #[error(transparent)]
    Store(#[from] KeyStoreError),
    /// Writing to the terminal or reading an answer failed.
    #[error("terminal i/o failed")]
    Terminal(#[from] io::Error),
    /// Input ended before `Proceed?` was answered.
    #[error(
        "no answer to the prompt (input closed); nothing was changed, pass -y to skip the prompt"
    )]
    NoAnswer,
    /// A `--keysize` outside what Salt allows.
    #[error("the keysize must be between 2048 and 32768, not {0}")]
    Keysize(usize),
}

/// Salt's `--keysize` bounds.
pub const KEYSIZE_RANGE: std::ops::RangeInclusive<usize> = 2048..=32768;

/// `salt-key` over one [`KeyStore`].
#[derive(Debug, Clone)]
pub struct KeyCli {
    store: KeyStore,
    hash: HashType,
    include: Include,
    yes: bool,
    printer: Printer,
}

impl KeyCli {
    /// A run over `store`, printing with `printer`, fingerprints in Salt's
    /// default `sha256`, asking before changes.
    pub fn new(store: KeyStore, printer: Printer) -> Self {
        KeyCli {
            store,
            hash: HashType::default(),
            include: Include::default(),
            yes: false,
            printer,
        }
    }

    /// Fingerprints with `hash` (the master's `hash_type`).
    pub fn with_hash(mut self, hash: HashType) -> Self {
        self.hash = hash;
        self
    }

    /// The `--include-*` flags.
    pub fn with_include(mut self, include: Include) -> Self {
        self.include = include;
        self
    }

    /// Answers yes to every prompt (`-y`).
    pub fn with_yes(mut self, yes: bool) -> Self {
        self.yes = yes;
        self
    }

    /// Runs `action`.
    ///
    /// # Errors
    /// [`KeyCliError`]; a glob that matches nothing is not an error (a
    /// message says so, as Salt does).
    pub fn run(&self, action: &KeyAction, term: &mut Terminal<'_>) -> Result<(), KeyCliError> {
        match action {
            KeyAction::List(which) => {
                let data = self.list(*which)?;
                self.show(term, &data, Out::Key)
            }
            KeyAction::Accept(glob) => self.change(Change::Accept, glob, term),
            KeyAction::Reject(glob) => self.change(Change::Reject, glob, term),
            KeyAction::Delete(glob) => self.change(Change::Delete, glob, term),
            KeyAction::Finger(glob) => {
                let data = self.finger(glob)?;
                self.show(term, &data, Out::Key)
            }
            KeyAction::Print(glob) => {
                let data = self.print(glob)?;
                self.show(term, &data, Out::Key)
            }
            KeyAction::GenKeys { name, dir, keysize } => {
                if !KEYSIZE_RANGE.contains(keysize) {
                    return Err(KeyCliError::Keysize(*keysize));
                }
                let finger = gen_keys(dir, name, *keysize)?;
                let data: Value = [("return", Value::from(finger))].into_iter().collect();
                self.show(term, &data, Out::NESTED)
            }
        }
    }

    fn show(&self, term: &mut Terminal<'_>, data: &Value, default: Out) -> Result<(), KeyCliError> {
        term.out
            .write_all(self.printer.format(data, default).as_bytes())?;
        term.out.flush()?;
        Ok(())
    }

    /// `-l`/`-L`: one state's ids, or all four (Salt's `list_status`).
    fn list(&self, which: ListWhich) -> Result<Value, KeyCliError> {
        let keys = self.store.list()?;
        let states: &[KeyState] = match which {
            ListWhich::Accepted => &[KeyState::Accepted],
            ListWhich::Pending => &[KeyState::Pending],
            ListWhich::Rejected => &[KeyState::Rejected],
            ListWhich::Denied => &[KeyState::Denied],
            ListWhich::All => &KeyState::ALL,
        };
        Ok(Value::Map(
            states
                .iter()
                .map(|&s| (Value::from(s.dir_name()), ids_value(keys.get(s))))
                .collect(),
        ))
    }

    /// `-f`/`-F`: fingerprints of the matching minion keys and of the
    /// master's own `.pem`/`.pub` files (Salt's `name_match(full=True)`).
    fn finger(&self, glob: &str) -> Result<Value, KeyCliError> {
        let mut data = entries_value(self.store.finger(glob, self.hash)?);
        let locals = self.local_keys(glob)?;
        if !locals.is_empty()
            && let Value::Map(entries) = &mut data
        {
            let pairs = locals
                .into_iter()
                .map(|(name, text)| (Value::from(name), Value::from(text)))
                .collect();
            entries.push((Value::from("local"), Value::Map(pairs)));
        }
        Ok(data)
    }

    fn local_keys(&self, glob: &str) -> Result<Vec<(String, String)>, KeyCliError> {
        let dir = self.store.pki().dir();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(KeyStoreError::io("listing", dir, e).into()),
        };
        let globs: Vec<&str> = glob.split(',').collect();
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".pem") || n.ends_with(".pub"))
            .filter(|n| globs.iter().any(|g| brine_protocol::config::fnmatch(n, g)))
            .collect();
        sort_ignorecase(&mut names);
        let mut out = Vec::new();
        for name in names {
            let path = dir.join(&name);
            match std::fs::read(&path) {
                Ok(bytes) => out.push((name, pem_finger(&bytes, self.hash))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(KeyStoreError::io("reading", path, e).into()),
            }
        }
        Ok(out)
    }

    /// `-p`/`-P`: the key text of the matching keys.
    fn print(&self, glob: &str) -> Result<Value, KeyCliError> {
        Ok(entries_value(self.store.print(glob)?))
    }

    fn change(
        &self,
        change: Change,
        glob: &str,
        term: &mut Terminal<'_>,
    ) -> Result<(), KeyCliError> {
        let include = self.effective_include(change);
        let matches = self.store.name_match(glob)?;
        let (shown, from) = change.select(&matches, include);
        if shown.is_empty() {
            writeln!(
                term.out,
                "The key glob '{glob}' does not match any {} keys.",
                no_match_states(include)
            )?;
            return Ok(());
        }
        writeln!(
            term.out,
            "The following keys are going to be {}:",
            change.past()
        )?;
        self.show(term, &change.shown_value(&shown), Out::Key)?;
        if !self.yes && !confirm(term, change.default_yes())? {
            return Ok(());
        }
        let changes: KeyChanges = match change {
            Change::Accept => self.store.accept_keys(&shown, &from)?,
            Change::Reject => self.store.reject_keys(&shown, &from)?,
            Change::Delete => self.store.delete_keys(&shown)?,
        };
        for (id, _) in &changes.skipped {
            writeln!(term.err, "Unable to accept invalid key for {id}.")?;
        }
        for id in changes.ids() {
            writeln!(term.out, "Key for minion {id} {}.", change.past())?;
        }
        term.out.flush()?;
        Ok(())
    }

    /// Salt's `_update_opts`: accepting never takes accepted keys,
    /// rejecting never takes rejected ones; `--include-all` adds the other.
    fn effective_include(&self, change: Change) -> Include {
        let mut include = self.include;
        match change {
            Change::Accept => {
                include.rejected |= include.all;
                include.accepted = false;
            }
            Change::Reject => {
                include.accepted |= include.all;
                include.rejected = false;
            }
            Change::Delete => {}
        }
        include
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Accept,
    Reject,
    Delete,
}

impl Change {
    fn past(self) -> &'static str {
        match self {
            Change::Accept => "accepted",
            Change::Reject => "rejected",
            Change::Delete => "deleted",
        }
    }

    fn default_yes(self) -> bool {
        self != Change::Delete
    }

    /// The keys to show and act on, and the states they may leave
    /// (Salt's `_filter_ret` and the `keydirs` of `accept`/`reject`).
    fn select(self, matches: &KeyList, include: Include) -> (KeyList, Vec<KeyState>) {
        if self == Change::Delete {
            return (matches.clone(), KeyState::ALL.to_vec());
        }
        let mut from = vec![KeyState::Pending];
        if include.accepted {
            from.push(KeyState::Accepted);
        }
        if include.rejected {
            from.push(KeyState::Rejected);
        }
        if include.denied {
            from.push(KeyState::Denied);
        }
        let mut shown = KeyList::default();
        for &state in &from {
            let ids = matches.get(state).to_vec();
            match state {
                KeyState::Accepted => shown.accepted = ids,
                KeyState::Pending => shown.pending = ids,
                KeyState::Rejected => shown.rejected = ids,
                KeyState::Denied => shown.denied = ids,
            }
        }
        (shown, from)
    }

    /// The shown keys as Salt builds the dict: for accept/reject pending
    /// first, then accepted, rejected, denied; for delete in listing order;
    /// empty states left out.
    fn shown_value(self, shown: &KeyList) -> Value {
        let order: [KeyState; 4] = if self == Change::Delete {
            KeyState::ALL
        } else {
            [
                KeyState::Pending,
                KeyState::Accepted,
                KeyState::Rejected,
                KeyState::Denied,
            ]
        };
        Value::Map(
            order
                .into_iter()
                .filter(|&s| !shown.get(s).is_empty())
                .map(|s| (Value::from(s.dir_name()), ids_value(shown.get(s))))
                .collect(),
        )
    }
}

/// "unaccepted", "unaccepted or rejected", "unaccepted, rejected or denied".
fn no_match_states(include: Include) -> String {
    let mut states = vec!["unaccepted"];
    if include.accepted {
        states.push("accepted");
    }
    if include.rejected {
        states.push("rejected");
    }
    if include.denied {
        states.push("denied");
    }
    match states.split_last() {
        Some((last, init)) if !init.is_empty() => format!("{} or {last}", init.join(", ")),
        _ => "unaccepted".to_owned(),
    }
}

/// Asks `Proceed?`; an empty answer takes the default.
fn confirm(term: &mut Terminal<'_>, default_yes: bool) -> Result<bool, KeyCliError> {
    let prompt = if default_yes {
        "Proceed? [n/Y] "
    } else {
        "Proceed? [N/y] "
    };
    term.out.write_all(prompt.as_bytes())?;
    term.out.flush()?;
    let mut answer = String::new();
    if term.input.read_line(&mut answer)? == 0 {
        writeln!(term.out)?;
        return Err(KeyCliError::NoAnswer);
    }
    let answer = answer.trim();
    Ok(if answer.is_empty() {
        default_yes
    } else {
        answer.to_ascii_lowercase().starts_with('y')
    })
}

fn sort_ignorecase(ids: &mut [String]) {
    ids.sort_by_key(|id| id.to_lowercase());
}

fn ids_value(ids: &[String]) -> Value {
    let mut ids = ids.to_vec();
    sort_ignorecase(&mut ids);
    Value::Array(ids.into_iter().map(Value::from).collect())
}

/// `{state dir: {id: text}}` in listing order, empty states left out.
fn entries_value(entries: Vec<super::KeyEntry>) -> Value {
    let mut out: Vec<(Value, Value)> = Vec::new();
    for state in KeyState::ALL {
        let mut pairs: Vec<(String, String)> = entries
            .iter()
            .filter(|e| e.state == state)
            .map(|e| (e.id.clone(), e.value.clone()))
            .collect();
        if pairs.is_empty() {
            continue;
        }
        pairs.sort_by_key(|(id, _)| id.to_lowercase());
        out.push((
            Value::from(state.dir_name()),
            Value::Map(
                pairs
                    .into_iter()
                    .map(|(id, text)| (Value::from(id), Value::from(text)))
                    .collect(),
            ),
        ));
    }
    Value::Map(out)
}

#[cfg(test)]
mod tests;
