//! Salt's `pki_dir` layout, and safe key files.
//!
//! Master (`pki_dir`, default `/etc/salt/pki/master`):
//!
//! | path | content |
//! | --- | --- |
//! | `master.pem` / `master.pub` | the master's key pair (PKCS#1 / SPKI PEM) |
//! | `minions/<id>` | accepted minion public keys (the `pub` string as sent) |
//! | `minions_pre/<id>` | pending keys |
//! | `minions_rejected/<id>` | rejected keys |
//! | `minions_denied/<id>` | keys that did not match the stored one |
//! | `minions_autosign/` | autosign grains |
//!
//! Minion (`pki_dir`, default `/etc/salt/pki/minion`): `minion.pem`,
//! `minion.pub`, and `minion_master.pub` (the master's key, trusted on
//! first contact).
//!
//! Every write goes through [`write_atomic`] (temp file in the same
//! directory, fsync, rename, fsync of the directory). Private keys are mode
//! `0600` — Salt uses `0400` for `master.pem`, but Brine rewrites keys in
//! place, so the owner keeps write permission; group and others get nothing
//! either way. Public keys are `0644`, directories `0700`. Minion ids are
//! validated ([`validate_minion_id`]) before they become file names, so a
//! hostile id is an error, never a path traversal.

mod error;
mod fs;
mod id;
mod pki;

pub use error::KeyError;
pub use fs::{DIR_MODE, PRIVATE_KEY_MODE, PUBLIC_KEY_MODE, ensure_dir, write_atomic};
pub use id::validate_minion_id;
pub use pki::{KeyPair, KeyState, MasterPki, MinionPki};
