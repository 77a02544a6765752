//! Minion key management on the master, as `salt-key` and Salt's
//! `AutoKey` do it, on top of [`brine_protocol::keys`] (the `pki_dir`
//! layout, atomic writes, id validation).
//!
//! | piece | what | Salt |
//! | --- | --- | --- |
//! | [`KeyStore`] | list, accept, reject, delete (globs), fingerprints, print | `salt/key.py` `Key` |
//! | [`KeyEvent`] | the `salt/key` event each change returns for the caller to fire | `Key.accept` … `fire_event` |
//! | [`request_aes_rotation`] / [`take_aes_rotation_request`] | the `<cachedir>/.dfn` drop file that makes a running master rotate its session key | `salt.crypt.dropfile`, `Maintenance.handle_key_rotate` |
//! | [`AutoKey`] | `auto_accept`, `autosign_file`, `autoreject_file`, `minions_autosign/` | `salt/daemons/masterapi.py` `AutoKey` |
//! | [`KeyWatch`] | a poll-based detector of key changes made by another process | the master's key cache refresh |
//! | [`pem_finger`], [`gen_keys`] | fingerprints (`hash_type`), key generation | `salt.utils.crypt.pem_finger`, `salt.crypt.gen_keys` |
//! | [`cli::KeyCli`] | `brine-key`: listing, prompts, headings | `salt/key.py` `KeyCLI`, `salt/output/key.py` |
//!
//! ```
//! use brine_master::keys::{KeyAct, KeyStore, RotationRequest};
//! use brine_protocol::keys::KeyState;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let pki_dir = dir.path().join("pki");
//! # let cachedir = dir.path().to_owned();
//! let store = KeyStore::new(&pki_dir).with_rotation(RotationRequest {
//!     cachedir,
//!     master_id: "host_master".into(),
//! });
//! # let pem = brine_protocol::PrivateKey::generate(1024)?.public_key().to_pem()?;
//! store.pki().write_minion_key(KeyState::Pending, "web1", &pem)?;
//! let changes = store.accept("web*")?;
//! assert_eq!(changes.events[0].act, KeyAct::Accept);
//! assert_eq!(store.list()?.accepted, ["web1"]);
//! let changes = store.delete("web1")?;
//! assert!(changes.rotation_requested);
//! # Ok(())
//! # }
//! ```

mod autosign;
pub mod cli;
mod error;
mod event;
mod finger;
mod rotate;
mod store;
mod watch;

#[cfg(test)]
mod tests;

pub use autosign::AutoKey;
pub use error::KeyStoreError;
pub use event::{KEY_EVENT_TAG, KeyAct, KeyEvent};
pub use finger::{HashType, pem_finger};
pub use rotate::{
    DROPFILE, RotationRequest, clear_aes_rotation_request, request_aes_rotation,
    take_aes_rotation_request,
};
pub use store::{KeyChanges, KeyEntry, KeyList, KeyStore, gen_keys};
pub use watch::{KeyChange, KeyWatch};
