//! Noticing key changes made by another process (`brine-key`) without
//! inotify: Maintenance calls [`KeyWatch::poll`] every `loop_interval`.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::time::SystemTime;

use brine_protocol::keys::{KeyState, MasterPki, validate_minion_id};

use super::KeyStoreError;

/// What changed in one state directory since the last poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// A key appeared in `state`.
    Added {
        /// Where.
        state: KeyState,
        /// The minion id.
        id: String,
    },
    /// A key left `state` (moved or deleted).
    Removed {
        /// Where from.
        state: KeyState,
        /// The minion id.
        id: String,
    },
    /// A key in `state` was rewritten (modification time or size changed).
    Modified {
        /// Where.
        state: KeyState,
        /// The minion id.
        id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

type Snapshot = BTreeMap<(u8, String), Stamp>;

/// A poll-based change detector over the four key directories.
#[derive(Debug)]
pub struct KeyWatch {
    pki: MasterPki,
    last: Snapshot,
}

fn state_index(state: KeyState) -> u8 {
    match state {
        KeyState::Accepted => 0,
        KeyState::Pending => 1,
        KeyState::Rejected => 2,
        KeyState::Denied => 3,
    }
}

fn state_of_index(i: u8) -> KeyState {
    match i {
        0 => KeyState::Accepted,
        1 => KeyState::Pending,
        2 => KeyState::Rejected,
        _ => KeyState::Denied,
    }
}

impl KeyWatch {
    /// Takes the first snapshot of `pki`'s key directories; the first
    /// [`KeyWatch::poll`] reports changes since now.
    ///
    /// # Errors
    /// [`KeyStoreError::Io`] if a directory cannot be read (a missing one
    /// counts as empty).
    pub fn new(pki: MasterPki) -> Result<Self, KeyStoreError> {
        let last = snapshot(&pki)?;
        Ok(KeyWatch { pki, last })
    }

    /// The changes since the previous call (or [`KeyWatch::new`]), sorted
    /// by state then id. A key moved from pending to accepted shows as
    /// `Removed{Pending}` and `Added{Accepted}`.
    ///
    /// # Errors
    /// [`KeyStoreError::Io`] if a directory cannot be read; the previous
    /// snapshot is kept then.
    pub fn poll(&mut self) -> Result<Vec<KeyChange>, KeyStoreError> {
        let now = snapshot(&self.pki)?;
        let mut changes = Vec::new();
        for ((state, id), stamp) in &now {
            match self.last.get(&(*state, id.clone())) {
                None => changes.push(KeyChange::Added {
                    state: state_of_index(*state),
                    id: id.clone(),
                }),
                Some(old) if old != stamp => changes.push(KeyChange::Modified {
                    state: state_of_index(*state),
                    id: id.clone(),
                }),
                Some(_) => {}
            }
        }
        for (state, id) in self.last.keys() {
            if !now.contains_key(&(*state, id.clone())) {
                changes.push(KeyChange::Removed {
                    state: state_of_index(*state),
                    id: id.clone(),
                });
            }
        }
        changes.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
        self.last = now;
        Ok(changes)
    }
}

fn sort_key(c: &KeyChange) -> (u8, &str, u8) {
    match c {
        KeyChange::Removed { state, id } => (state_index(*state), id, 0),
        KeyChange::Added { state, id } => (state_index(*state), id, 1),
        KeyChange::Modified { state, id } => (state_index(*state), id, 2),
    }
}

fn snapshot(pki: &MasterPki) -> Result<Snapshot, KeyStoreError> {
    let mut snap = Snapshot::new();
    for state in KeyState::ALL {
        let dir = pki.state_dir(state);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(KeyStoreError::io("listing", dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| KeyStoreError::io("listing", &dir, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || validate_minion_id(&name).is_err() {
                continue;
            }
            // the file may vanish between listing and stat: skip it then
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            snap.insert(
                (state_index(state), name),
                Stamp {
                    modified: meta.modified().ok(),
                    len: meta.len(),
                },
            );
        }
    }
    Ok(snap)
}
