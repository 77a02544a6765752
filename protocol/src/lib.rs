//! Brine's channel layer, shared by the master and the minion.
//!
//! Transports move opaque byte frames; everything that gives those frames a
//! meaning lives here, above every transport, as Salt 3007 splits
//! `salt/transport` (bytes) from `salt/channel` (auth, crypto, serialization):
//!
//! | module | what it holds | Salt counterpart |
//! | --- | --- | --- |
//! | [`serial`] | [`Value`], a lenient msgpack codec with Salt's two packings (channel envelopes vs event bodies), serde interop, the [`Serialization`] choice (msgpack by default, bincode opt-in) | `salt/payload.py`, `salt/utils/msgpack.py` |
//! | [`crypto`] | RSA keys ([`PrivateKey`], [`PublicKey`]): OAEP-SHA1, PKCS#1 v1.5-SHA1, ANSI X9.31 raw signatures; the [`Crypticle`] (AES-192-CBC + HMAC-SHA256 with `pickle::` framing, nonces and serials); request nonces | `salt/crypt.py`, `salt/utils/rsax931.py` |
//! | [`keys`] | the `pki_dir` layout of master and minion, atomic key writes with owner-only modes, load-or-generate, minion id validation | `salt/crypt.py:gen_keys`, `salt/key.py` |
//! | [`jid`] | job ids: 20-digit UTC timestamps, unique under concurrency | `salt/utils/jid.py` |
//!
//! Envelopes (request/reply/publish), minion authentication, targeting and
//! event tags build on these pieces and come next.
//!
//! Everything that parses input from the network, a file or a user returns a
//! typed error ([`SerialError`], [`CryptoError`], [`KeyError`]) and never
//! panics; the msgpack decoder bounds nesting depth and refuses lengths that
//! exceed the input before allocating.
//!
//! ```
//! use brine_protocol::{Crypticle, Value, crypto::gen_nonce};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The master's session key for one minion, and a v3 aes reply.
//! let session = Crypticle::generate()?;
//! let nonce = gen_nonce()?;
//! let reply: Value = [("ret", Value::from(true))].into_iter().collect();
//! let wire = session.dumps(&reply, Some(&nonce))?;
//!
//! // The minion, holding the same key string, checks the nonce it sent.
//! let minion_side = Crypticle::new(session.key_string())?;
//! assert_eq!(minion_side.loads(&wire, Some(&nonce))?, reply);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod args;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod envelope;
pub mod jid;
pub mod keys;
pub mod pyfmt;
pub mod serial;
pub mod tags;
pub mod target;
mod yaml;

pub use auth::AuthError;
pub use crypto::{Crypticle, CryptoError, PrivateKey, PublicKey};
pub use envelope::{EnvelopeError, PublishError, RequestError};
pub use keys::KeyError;
pub use serial::{SerialError, Serialization, Value};
/// One YAML document as Salt's `salt.utils.yaml.safe_load` reads it (the
/// netapi's `application/x-yaml` bodies); see `yamlify_arg` in [`args`] for
/// how command-line strings are typed.
pub use yaml::{YamlError, safe_load as load_yaml};
