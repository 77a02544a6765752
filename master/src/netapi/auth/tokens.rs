//! Logins: salt-api's two tokens. `/login` mints an eauth token (64 hex
//! characters, valid `token_expire` seconds, Salt's `mk_token`) and a
//! session (40 hex characters, the CherryPy session id) that holds it; the
//! session id is what clients send as `X-Auth-Token`, the `session_id`
//! cookie or `?token=`. `/logout` ends the session; the eauth token stays
//! valid until it expires, as in Salt.
//!
//! Both live in memory (salt-api's sessions do too) and are bounded: when
//! full, expired entries are pruned, then the oldest logins go.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{debug, warn};

/// Logins kept at most.
pub(crate) const MAX_LOGINS: usize = 10_000;

/// What an eauth token stands for (Salt's token data).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TokenData {
    /// The user name.
    pub(crate) name: String,
    /// The eauth backend that authenticated it.
    pub(crate) eauth: String,
    /// The user's groups (for `name%` entries).
    pub(crate) groups: Vec<String>,
    /// Unix time of the login.
    pub(crate) start: f64,
    /// Unix time it expires.
    pub(crate) expire: f64,
    /// The eauth token.
    pub(crate) token: String,
    /// Login order, for dropping the oldest.
    serial: u64,
}

impl TokenData {
    fn is_expired(&self, now: f64) -> bool {
        self.expire < now
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// eauth token → data.
    tokens: HashMap<String, Arc<TokenData>>,
    /// session id → eauth token.
    sessions: HashMap<String, String>,
    next_serial: u64,
}

/// The login store.
#[derive(Debug)]
pub(crate) struct Logins {
    inner: Mutex<Inner>,
    capacity: usize,
}

/// A fresh login.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    /// The session id (salt-api's `token` in `/login`'s reply).
    pub(crate) session: String,
    /// The eauth token and its data.
    pub(crate) data: Arc<TokenData>,
}

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `bytes` random bytes as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Option<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).ok()?;
    Some(buf.iter().map(|b| format!("{b:02x}")).collect())
}

impl Logins {
    pub(crate) fn new(capacity: usize) -> Self {
        Logins {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Mints an eauth token and a session for `name`; `None` only when the
    /// system has no randomness.
    pub(crate) fn login(
        &self,
        name: &str,
        eauth: &str,
        groups: Vec<String>,
        lifetime: Duration,
    ) -> Option<Login> {
        let token = random_hex(32)?;
        let session = random_hex(20)?;
        let start = unix_now();
        let mut inner = self.lock();
        inner.next_serial += 1;
        let data = Arc::new(TokenData {
            name: name.to_owned(),
            eauth: eauth.to_owned(),
            groups,
            start,
            expire: start + lifetime.as_secs_f64(),
            token: token.clone(),
            serial: inner.next_serial,
        });
        if inner.tokens.len() >= self.capacity || inner.sessions.len() >= self.capacity {
            prune(&mut inner, start, self.capacity);
        }
        inner.tokens.insert(token.clone(), Arc::clone(&data));
        inner.sessions.insert(session.clone(), token);
        debug!(user = name, eauth, "login");
        Some(Login { session, data })
    }

    /// The login behind session `id`, if it exists and has not expired.
    pub(crate) fn by_session(&self, id: &str) -> Option<Arc<TokenData>> {
        let now = unix_now();
        let mut inner = self.lock();
        let token = inner.sessions.get(id)?.clone();
        match inner.tokens.get(&token) {
            Some(data) if !data.is_expired(now) => Some(Arc::clone(data)),
            _ => {
                inner.sessions.remove(id);
                inner.tokens.remove(&token);
                None
            }
        }
    }

    /// The login behind eauth token `token`, if valid.
    pub(crate) fn by_token(&self, token: &str) -> Option<Arc<TokenData>> {
        let now = unix_now();
        let mut inner = self.lock();
        match inner.tokens.get(token) {
            Some(data) if !data.is_expired(now) => Some(Arc::clone(data)),
            Some(_) => {
                inner.tokens.remove(token);
                None
            }
            None => None,
        }
    }

    /// Mints an eauth token without a session (`/token`).
    pub(crate) fn token_only(
        &self,
        name: &str,
        eauth: &str,
        groups: Vec<String>,
        lifetime: Duration,
    ) -> Option<Arc<TokenData>> {
        let login = self.login(name, eauth, groups, lifetime)?;
        self.lock().sessions.remove(&login.session);
        Some(login.data)
    }

    /// Ends session `id` (`/logout`); the eauth token stays valid.
    pub(crate) fn logout(&self, id: &str) {
        self.lock().sessions.remove(id);
    }

    /// Forces every login of this store to be expired (tests of expiry).
    #[cfg(test)]
    pub(crate) fn expire_all(&self) {
        let mut inner = self.lock();
        for data in inner.tokens.values_mut() {
            let mut expired = (**data).clone();
            expired.expire = 0.0;
            *data = Arc::new(expired);
        }
    }
}

/// Drops expired logins, then the oldest until there is room for one.
fn prune(inner: &mut Inner, now: f64, capacity: usize) {
    inner.tokens.retain(|_, data| !data.is_expired(now));
    let Inner {
        tokens, sessions, ..
    } = inner;
    sessions.retain(|_, token| tokens.contains_key(token));
    while tokens.len() >= capacity {
        let Some(oldest) = tokens
            .values()
            .min_by_key(|d| d.serial)
            .map(|d| d.token.clone())
        else {
            break;
        };
        tokens.remove(&oldest);
        sessions.retain(|_, token| *token != oldest);
    }
    while sessions.len() >= capacity {
        let Some(any) = sessions.keys().next().cloned() else {
            break;
        };
        sessions.remove(&any);
    }
    warn!(
        capacity,
        "login store full: dropped expired and oldest logins"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sessions_hold_tokens_until_they_expire() {
        let logins = Logins::new(100);
        let login = logins
            .login("admin", "file", vec![], Duration::from_secs(60))
            .unwrap();
        assert_eq!(login.session.len(), 40);
        assert_eq!(login.data.token.len(), 64);
        assert_eq!(logins.by_session(&login.session).unwrap().name, "admin");
        assert_eq!(logins.by_token(&login.data.token).unwrap().name, "admin");
        assert!(logins.by_session(&login.data.token).is_none());
        logins.logout(&login.session);
        assert!(logins.by_session(&login.session).is_none());
        assert!(logins.by_token(&login.data.token).is_some());
        let again = logins
            .login("admin", "file", vec![], Duration::from_secs(60))
            .unwrap();
        logins.expire_all();
        assert!(logins.by_session(&again.session).is_none());
        assert!(logins.by_token(&again.data.token).is_none());
    }

    #[test]
    fn a_full_store_drops_the_oldest() {
        let logins = Logins::new(3);
        let first = logins
            .login("a", "auto", vec![], Duration::from_secs(60))
            .unwrap();
        for name in ["b", "c", "d"] {
            logins
                .login(name, "auto", vec![], Duration::from_secs(60))
                .unwrap();
        }
        assert!(logins.by_session(&first.session).is_none());
        assert!(logins.lock().tokens.len() <= 3);
    }
}
