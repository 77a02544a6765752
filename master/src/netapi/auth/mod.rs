//! Authentication and permissions for the REST API: eauth backends
//! ([`eauth`]), logins and their tokens ([`tokens`]), Salt's permission
//! matching ([`perms`]).

pub(crate) mod eauth;
pub(crate) mod perms;
pub(crate) mod tokens;

pub(crate) use tokens::{Login, Logins, TokenData};
