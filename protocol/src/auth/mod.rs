//! Minion authentication (`_auth`), both sides, as Salt 3007 does it
//! (`salt/crypt.py:AsyncAuth`, `salt/channel/server.py:ReqServerChannel._auth`).
//!
//! Sans-IO: the caller moves frames, reads and writes key files, and keeps
//! time; these functions only build, check and decide.
//!
//! Minion: [`AuthRequest::new`] builds the clear load (id, nonce, our public
//! key, and a token encrypted to the master if `minion_master.pub` is
//! known); send [`AuthRequest::to_frame`], decode the reply with
//! [`open_clear_reply`](crate::envelope::open_clear_reply) and pass it to
//! [`handle_signin_response`], which yields an [`AuthOutcome`]. On
//! [`AuthOutcome::Accepted`], write [`Credentials::new_master_pub`] to
//! `minion_master.pub` if set (first contact).
//!
//! Master: [`AuthLoad::parse`] the load of an
//! [`OpenedRequest`](crate::envelope::OpenedRequest) whose `cmd` is `_auth`;
//! read the key state ([`KeyOnFile::read`]); [`decide`] with the
//! [`AuthPolicy`]; [`Decision::apply`] the key file changes; reply with
//! [`build_auth_reply`]; fire `salt/auth` with [`Decision::event_data`].
//!
//! Serialization (Brine): a minion whose `serial` is not msgpack says so
//! in its load ([`AuthRequest::with_serialization`]); the master refuses a
//! mismatch ([`AuthAct::SerialMismatch`], `ret: "bad serial"` naming its
//! own) and names a non-msgpack choice when accepting, so the minion stops
//! with [`AuthError::SerialMismatch`] instead of exchanging payloads the
//! other side cannot read. With the default the wire is Salt's, byte for byte.
//!
//! ```
//! use brine_protocol::auth::{
//!     AuthLoad, AuthOutcome, AuthPolicy, Candidate, KeyOnFile, build_auth_reply, decide,
//!     handle_signin_response,
//! };
//! use brine_protocol::{Crypticle, PrivateKey};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (minion_key, master_key) = (PrivateKey::generate(1024)?, PrivateKey::generate(1024)?);
//! let nonce = brine_protocol::crypto::gen_nonce()?;
//! let request = brine_protocol::auth::AuthRequest::new("web1", &minion_key, None, &nonce)?;
//!
//! // master
//! let load = AuthLoad::parse(request.load())?;
//! let on_file = KeyOnFile::None;
//! let policy = AuthPolicy { auto_accept: true, ..AuthPolicy::default() };
//! let decision = decide(&policy, &Candidate {
//!     id: &load.id, pub_pem: &load.pub_pem, on_file: &on_file,
//!     autosign: false, autoreject: false, connected: 0, is_connected: false,
//!     serial: load.serial.as_deref(),
//! });
//! let (aes, session) = (Crypticle::generate_key_string()?, Crypticle::generate_key_string()?);
//! let reply = build_auth_reply(&decision, &load, &master_key, &aes, &session, 4505)?;
//!
//! // minion
//! let AuthOutcome::Accepted(creds) = handle_signin_response(&reply, &request, &minion_key)? else {
//!     panic!("not accepted");
//! };
//! assert_eq!(*creds.aes, *aes);
//! assert!(creds.new_master_pub.is_some()); // first contact: trust and store it
//! # Ok(())
//! # }
//! ```

mod decision;
mod error;
mod minion;
mod reply;

pub use decision::{
    AuthAct, AuthPolicy, BAD_SERIAL, Candidate, Decision, KeyOnFile, KeyOp, decide,
};
pub use error::AuthError;
pub use minion::{AuthOutcome, AuthRequest, Credentials, handle_signin_response};
pub use reply::{AuthLoad, build_auth_reply};

#[cfg(test)]
mod tests;
