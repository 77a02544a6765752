//! `_auth` round trips (minion request → master decision and reply →
//! minion check), the decision table, and every refusal.

mod decide;
mod refusals;
mod round_trip;
mod serial;

use super::*;
use crate::crypto::{Crypticle, PrivateKey, Zeroizing};
use crate::envelope::tests::{master_key, minion_key};
use crate::serial::Value;

const NONCE: &str = "5d6c3b2a19f84e7d9c0b1a2f3e4d5c6b";

struct Master {
    aes: Zeroizing<String>,
    session: Zeroizing<String>,
    policy: AuthPolicy,
}

impl Master {
    fn new(policy: AuthPolicy) -> Master {
        Master {
            aes: Crypticle::generate_key_string().unwrap(),
            session: Crypticle::generate_key_string().unwrap(),
            policy,
        }
    }

    /// Decides and replies as the master would, given what is on file.
    fn answer(
        &self,
        request: &AuthRequest,
        on_file: &KeyOnFile,
        key: &PrivateKey,
    ) -> (Decision, Value) {
        let load = AuthLoad::parse(request.load()).unwrap();
        let decision = decide(&self.policy, &candidate(&load, on_file));
        let reply =
            build_auth_reply(&decision, &load, key, &self.aes, &self.session, 4505).unwrap();
        (decision, reply)
    }
}

fn candidate<'a>(load: &'a AuthLoad, on_file: &'a KeyOnFile) -> Candidate<'a> {
    Candidate {
        id: &load.id,
        pub_pem: &load.pub_pem,
        on_file,
        autosign: false,
        autoreject: false,
        connected: 0,
        is_connected: false,
        serial: load.serial.as_deref(),
    }
}

fn master_pem() -> String {
    master_key().public_key().to_clean_pem().unwrap()
}

fn minion_pem() -> String {
    minion_key().public_key().to_clean_pem().unwrap()
}

fn first_contact() -> AuthRequest {
    AuthRequest::new("m1", minion_key(), None, NONCE).unwrap()
}

fn known_master() -> AuthRequest {
    AuthRequest::new("m1", minion_key(), Some(&master_pem()), NONCE).unwrap()
}

fn auto_accept() -> AuthPolicy {
    AuthPolicy {
        auto_accept: true,
        ..AuthPolicy::default()
    }
}
