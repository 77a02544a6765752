//! eauth backends, as Salt's `salt/auth/`: `file` (text files with plain
//! or hashed passwords, Apache htpasswd files) and `auto` (accepts
//! everyone; Salt's test backend). A backend is usable only when it is a
//! key of `external_auth`.
//!
//! `file` reads its options from the `^`-prefixed keys of its section, as
//! Salt's `_get_file_auth_config`: `^filename` (required), `^filetype`
//! (`text`), `^hashtype` (`plaintext`; or `md5`, `sha256`, `sha512` hex
//! digests, what Salt's `hashutil.digest` offers), `^field_separator`
//! (`:`), `^username_field` (1) and `^password_field` (2), numbered from 1.
//! A text file is read line by line, each line stripped and split on the
//! separator; a line too short for either field ends the search with a
//! failure, and the first line naming the user decides, as in Salt.
//! htpasswd files (passlib in Salt) hold `user:hash` lines with bcrypt
//! (`$2a$`, `$2b$`, `$2y$`), MD5-crypt (`$apr1$`, `$1$`) or `{SHA}` hashes.
//!
//! Every check is blocking (file reads, bcrypt): call it from the blocking
//! pool.

use std::path::Path;

use base64ct::{Base64, Encoding};
use brine_protocol::Value;
use brine_protocol::pyfmt::py_str;
use md5::{Digest, Md5};
use tracing::{error, warn};

/// The eauth backends Brine has.
pub(crate) const BACKENDS: &[&str] = &["auto", "file"];

/// Whether `username`/`password` authenticate with backend `eauth` under
/// `external_auth`. Failures are logged with the reason, never with the
/// password.
pub(crate) fn authenticate(
    external_auth: &Value,
    eauth: &str,
    username: &str,
    password: &str,
) -> bool {
    let Some(section) = external_auth.get(eauth) else {
        warn!(
            eauth,
            "the eauth system is not enabled (not in external_auth)"
        );
        return false;
    };
    match eauth {
        "auto" => true,
        "file" => match FileConfig::from_section(section) {
            Some(config) => config.check(username, password),
            None => false,
        },
        other => {
            warn!(eauth = other, "eauth backend not supported by Brine");
            false
        }
    }
}

/// `external_auth: file:`'s `^` options.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileConfig {
    filename: String,
    filetype: String,
    hashtype: String,
    field_separator: String,
    username_field: usize,
    password_field: usize,
}

impl FileConfig {
    fn from_section(section: &Value) -> Option<FileConfig> {
        let option = |name: &str| section.get(&format!("^{name}"));
        let text =
            |name: &str, default: &str| option(name).map_or_else(|| default.to_owned(), py_str);
        let field = |name: &str, default: usize| -> Option<usize> {
            match option(name) {
                None => Some(default),
                Some(Value::Int(i)) => usize::try_from(*i).ok(),
                Some(Value::UInt(u)) => usize::try_from(*u).ok(),
                Some(Value::Str(s)) => s.trim().parse().ok(),
                Some(_) => None,
            }
        };
        let Some(filename) = option("filename").map(py_str) else {
            error!(
                "eauth file: an authentication file must be specified via external_auth:file:^filename"
            );
            return None;
        };
        if !Path::new(&filename).exists() {
            error!(
                filename,
                "eauth file: the configured ^filename does not exist"
            );
            return None;
        }
        let (Some(username_field), Some(password_field)) =
            (field("username_field", 1), field("password_field", 2))
        else {
            error!("eauth file: ^username_field and ^password_field must be numbers");
            return None;
        };
        Some(FileConfig {
            filename,
            filetype: text("filetype", "text").to_ascii_lowercase(),
            hashtype: text("hashtype", "plaintext"),
            field_separator: text("field_separator", ":"),
            username_field,
            password_field,
        })
    }

    fn check(&self, username: &str, password: &str) -> bool {
        let contents = match std::fs::read_to_string(&self.filename) {
            Ok(contents) => contents,
            Err(err) => {
                error!(filename = %self.filename, error = %err, "eauth file: cannot read the file");
                return false;
            }
        };
        match self.filetype.as_str() {
            "htpasswd" => htpasswd_check(&contents, username, password),
            "htdigest" => {
                warn!("eauth file: htdigest files are not supported by Brine");
                false
            }
            // Salt falls back to text for an unknown filetype
            _ => self.text_check(&contents, username, password),
        }
    }

    fn text_check(&self, contents: &str, username: &str, password: &str) -> bool {
        let (Some(user_at), Some(pass_at)) = (
            self.username_field.checked_sub(1),
            self.password_field.checked_sub(1),
        ) else {
            error!("eauth file: fields are numbered from 1");
            return false;
        };
        if self.field_separator.is_empty() {
            error!("eauth file: ^field_separator must not be empty");
            return false;
        }
        for line in contents.lines() {
            let fields: Vec<&str> = line.trim().split(self.field_separator.as_str()).collect();
            let Some(this_user) = fields.get(user_at) else {
                error!(field = user_at, filename = %self.filename, "eauth file: username field does not exist in file");
                return false;
            };
            let Some(this_password) = fields.get(pass_at) else {
                error!(field = pass_at, filename = %self.filename, "eauth file: password field does not exist in file");
                return false;
            };
            if *this_user == username {
                let given = if self.hashtype == "plaintext" {
                    password.to_owned()
                } else {
                    match digest(&self.hashtype, password) {
                        Some(hex) => hex,
                        None => {
                            warn!(hashtype = %self.hashtype, "eauth file: hash type not supported");
                            return false;
                        }
                    }
                };
                return constant_time_eq(this_password.as_bytes(), given.as_bytes());
            }
        }
        false
    }
}

/// Salt's `hashutil.digest`: md5, sha256 or sha512, as lowercase hex.
pub(crate) fn digest(hashtype: &str, text: &str) -> Option<String> {
    let bytes: Vec<u8> = match hashtype {
        "md5" => Md5::digest(text.as_bytes()).to_vec(),
        "sha256" => sha2::Sha256::digest(text.as_bytes()).to_vec(),
        "sha512" => sha2::Sha512::digest(text.as_bytes()).to_vec(),
        _ => return None,
    };
    Some(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An htpasswd file: the first `user:` line decides.
fn htpasswd_check(contents: &str, username: &str, password: &str) -> bool {
    for line in contents.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            continue;
        };
        if user == username {
            return verify_htpasswd_hash(hash.trim(), password);
        }
    }
    false
}

/// Checks `password` against one htpasswd hash.
pub(crate) fn verify_htpasswd_hash(hash: &str, password: &str) -> bool {
    if hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$") {
        return bcrypt::verify(password, hash).unwrap_or(false);
    }
    for magic in ["$apr1$", "$1$"] {
        if let Some(rest) = hash.strip_prefix(magic) {
            let salt = rest.split('$').next().unwrap_or_default();
            let computed = md5_crypt(password.as_bytes(), salt.as_bytes(), magic);
            return constant_time_eq(computed.as_bytes(), hash.as_bytes());
        }
    }
    if let Some(b64) = hash.strip_prefix("{SHA}") {
        let computed = Base64::encode_string(&sha1::Sha1::digest(password.as_bytes()));
        return constant_time_eq(computed.as_bytes(), b64.as_bytes());
    }
    warn!("eauth file: htpasswd hash scheme not supported (use bcrypt, $apr1$ or {{SHA}})");
    false
}

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The MD5-crypt scheme (`$1$` and Apache's `$apr1$`, which differ only in
/// the magic string): `<magic><salt>$<22 chars>`.
pub(crate) fn md5_crypt(password: &[u8], salt: &[u8], magic: &str) -> String {
    let salt = salt.get(..salt.len().min(8)).unwrap_or_default();
    let mut alt = Md5::new();
    alt.update(password);
    alt.update(salt);
    alt.update(password);
    let alt = alt.finalize();

    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(magic.as_bytes());
    ctx.update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(alt.get(..n).unwrap_or_default());
        left -= n;
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(password.get(..1).unwrap_or_default());
        }
        i >>= 1;
    }
    let mut fin: [u8; 16] = ctx.finalize().into();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(fin);
        } else {
            c.update(password);
        }
        fin = c.finalize().into();
    }
    let mut out = String::with_capacity(magic.len() + salt.len() + 23);
    out.push_str(magic);
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    let mut to64 = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(char::from(ITOA64[(v & 0x3f) as usize]));
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64(
            (u32::from(fin[a]) << 16) | (u32::from(fin[b]) << 8) | u32::from(fin[c]),
            4,
        );
    }
    to64(u32::from(fin[11]), 2);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn section(pairs: &[(&str, Value)]) -> Value {
        pairs.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    fn external(file: Value) -> Value {
        [("file", file), ("auto", Value::map())]
            .into_iter()
            .collect()
    }

    #[test]
    fn text_files_plain_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "dean:goneFishing\ngene:OceanMan\n").unwrap();
        let ea = external(section(&[(
            "^filename",
            Value::from(plain.to_str().unwrap()),
        )]));
        assert!(authenticate(&ea, "file", "dean", "goneFishing"));
        assert!(authenticate(&ea, "file", "gene", "OceanMan"));
        assert!(!authenticate(&ea, "file", "gene", "oceanman"));
        assert!(!authenticate(&ea, "file", "nobody", "x"));
        assert!(!authenticate(&ea, "pam", "dean", "goneFishing"));
        assert!(authenticate(&ea, "auto", "anyone", "anything"));

        // Salt's legacy example: md5, fields 2 and 3, '|' separated
        let legacy = dir.path().join("legacy");
        std::fs::write(
            &legacy,
            "46|trey|16a0034f90b06bf3c5982ed8ac41aab4\n555|mike|b6e02a4d2cb2a6ef0669e79be6fd02e4\n",
        )
        .unwrap();
        let md5_hex = digest("md5", "pw").unwrap();
        std::fs::write(&legacy, format!("46|trey|{md5_hex}\n")).unwrap();
        let ea = external(section(&[
            ("^filename", Value::from(legacy.to_str().unwrap())),
            ("^hashtype", Value::from("md5")),
            ("^field_separator", Value::from("|")),
            ("^username_field", Value::from(2)),
            ("^password_field", Value::from("3")),
        ]));
        assert!(authenticate(&ea, "file", "trey", "pw"));
        assert!(!authenticate(&ea, "file", "trey", "PW"));

        for (hashtype, pw) in [("sha256", "s3cret"), ("sha512", "s3cret")] {
            let f = dir.path().join(hashtype);
            std::fs::write(&f, format!("admin:{}\n", digest(hashtype, pw).unwrap())).unwrap();
            let ea = external(section(&[
                ("^filename", Value::from(f.to_str().unwrap())),
                ("^hashtype", Value::from(hashtype)),
            ]));
            assert!(authenticate(&ea, "file", "admin", pw), "{hashtype}");
            assert!(!authenticate(&ea, "file", "admin", "nope"), "{hashtype}");
        }
        assert_eq!(
            digest("sha256", "abc").unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(digest("sha1", "abc").is_none());
        // a missing file or ^filename authenticates nobody
        let ea = external(section(&[("^filename", Value::from("/nonexistent/brine"))]));
        assert!(!authenticate(&ea, "file", "dean", "goneFishing"));
        assert!(!authenticate(&external(Value::map()), "file", "dean", "x"));
    }

    #[test]
    fn a_short_line_before_the_user_fails_as_in_salt() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("users");
        std::fs::write(&f, "broken\nadmin:pw\n").unwrap();
        let ea = external(section(&[("^filename", Value::from(f.to_str().unwrap()))]));
        assert!(!authenticate(&ea, "file", "admin", "pw"));
    }

    #[test]
    fn htpasswd_schemes() {
        // `openssl passwd -apr1 -salt abcdefgh password`
        assert_eq!(
            md5_crypt(b"password", b"abcdefgh", "$apr1$"),
            "$apr1$abcdefgh$FBwExRW4dCc8aL.OvjpIE1"
        );
        // `openssl passwd -1 -salt saltsalt password`
        assert_eq!(
            md5_crypt(b"password", b"saltsalt", "$1$"),
            "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"
        );
        let bcrypt_hash = bcrypt::hash_with_salt("hunter2", 4, [7u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("htpasswd");
        std::fs::write(
            &f,
            format!(
                "# comment\nb:{bcrypt_hash}\na:$apr1$abcdefgh$FBwExRW4dCc8aL.OvjpIE1\ns:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
            ),
        )
        .unwrap();
        let ea = external(section(&[
            ("^filename", Value::from(f.to_str().unwrap())),
            ("^filetype", Value::from("htpasswd")),
        ]));
        assert!(authenticate(&ea, "file", "b", "hunter2"));
        assert!(!authenticate(&ea, "file", "b", "hunter3"));
        assert!(authenticate(&ea, "file", "a", "password"));
        assert!(!authenticate(&ea, "file", "a", "Password"));
        assert!(authenticate(&ea, "file", "s", "password"));
        assert!(!authenticate(&ea, "file", "x", "password"));
    }
}
