//! Salt's `Crypticle`: AES-192-CBC encryption authenticated by HMAC-SHA256,
//! around a `pickle::`-prefixed payload (msgpack, or bincode between Brine
//! peers with `serial: bincode`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use aes::Aes192;
use base64ct::{Base64, Encoding};
use cbc::cipher::block_padding::{NoPadding, Pkcs7};
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::nonce::{NONCE_LEN, is_nonce};
use super::{CryptoError, fill_random};
use crate::serial::{Serialization, Value};

/// The plaintext prefix Salt checks before unpacking (`Crypticle.PICKLE_PAD`).
pub const PICKLE_PREFIX: &[u8] = b"pickle::";

const AES_KEY_LEN: usize = 24; // AES-192: Salt's fixed key_size of 192
const HMAC_KEY_LEN: usize = 32;
const KEY_LEN: usize = AES_KEY_LEN + HMAC_KEY_LEN;
const BLOCK: usize = 16;
const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A symmetric key as Salt's `Crypticle` uses it: the master's AES key for
/// publishes, a per-minion session key for v3 requests and replies, a
/// one-off key for private pillar.
///
/// Wire format of [`encrypt`](Self::encrypt): `iv(16) ‖ AES-192-CBC(PKCS#7(data)) ‖
/// HMAC-SHA256(iv ‖ ciphertext)`. [`dumps`](Self::dumps) /
/// [`loads`](Self::loads) add the `pickle::` prefix, an optional 32-char
/// nonce and the payload, packed with this Crypticle's [`Serialization`]
/// (msgpack unless [`with_serialization`](Self::with_serialization) says
/// otherwise; both ends of a key must agree, and a payload packed with the
/// other choice is refused with [`CryptoError::Payload`] holding
/// [`SerialError::SerializationMismatch`](crate::SerialError::SerializationMismatch)).
///
/// Each instance remembers the highest `serial` it has accepted, so it
/// must live as long as the key does (rebuild it when the key changes, as
/// Salt does). It is `Sync`; [`loads`](Self::loads) takes `&self`.
pub struct Crypticle {
    aes_key: Zeroizing<[u8; AES_KEY_LEN]>,
    hmac_key: Zeroizing<[u8; HMAC_KEY_LEN]>,
    key_string: Zeroizing<String>,
    last_serial: AtomicU64,
    serialization: Serialization,
}

impl fmt::Debug for Crypticle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crypticle")
            .field("last_serial", &self.last_serial())
            .field("serialization", &self.serialization)
            .finish_non_exhaustive()
    }
}

impl Crypticle {
    /// A fresh random key string: standard base64 (padded, no newlines) of
    /// 56 random bytes, 76 characters (Salt's `generate_key_string`).
    ///
    /// # Errors
    /// [`CryptoError::Random`] if the OS random number generator fails.
    pub fn generate_key_string() -> Result<Zeroizing<String>, CryptoError> {
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(raw.as_mut())?;
        Ok(Zeroizing::new(Base64::encode_string(raw.as_ref())))
    }

    /// A Crypticle with a fresh random key.
    ///
    /// # Errors
    /// [`CryptoError::Random`] if the OS random number generator fails.
    pub fn generate() -> Result<Crypticle, CryptoError> {
        Crypticle::new(&Crypticle::generate_key_string()?)
    }

    /// A Crypticle for `key_string` (surrounding whitespace ignored), with
    /// no serial seen yet, packing msgpack.
    ///
    /// # Errors
    /// [`CryptoError::BadKeyString`] unless it is base64 of exactly 56 bytes.
    pub fn new(key_string: &str) -> Result<Crypticle, CryptoError> {
        let key_string = key_string.trim();
        let raw =
            Zeroizing::new(Base64::decode_vec(key_string).map_err(|_| CryptoError::BadKeyString)?);
        let (aes, mac) = raw
            .split_at_checked(AES_KEY_LEN)
            .ok_or(CryptoError::BadKeyString)?;
        let mut aes_key = Zeroizing::new([0u8; AES_KEY_LEN]);
        let mut hmac_key = Zeroizing::new([0u8; HMAC_KEY_LEN]);
        if mac.len() != HMAC_KEY_LEN {
            return Err(CryptoError::BadKeyString);
        }
        aes_key.copy_from_slice(aes);
        hmac_key.copy_from_slice(mac);
        Ok(Crypticle {
            aes_key,
            hmac_key,
            key_string: Zeroizing::new(key_string.to_owned()),
            last_serial: AtomicU64::new(0),
            serialization: Serialization::Msgpack,
        })
    }

    /// The same key, packing payloads with `serialization` (the `serial`
    /// config key). Build it before any [`loads`](Self::loads): the serial
    /// seen so far is kept.
    pub fn with_serialization(mut self, serialization: Serialization) -> Crypticle {
        self.serialization = serialization;
        self
    }

    /// How [`dumps`](Self::dumps) packs and [`loads`](Self::loads) unpacks payloads.
    pub fn serialization(&self) -> Serialization {
        self.serialization
    }

    /// The key string (what Salt stores in `cachedir/sessions/<id>` and
    /// OAEP-encrypts into the auth reply). Key material: never log it.
    pub fn key_string(&self) -> &str {
        &self.key_string
    }

    /// The highest `serial` accepted by [`loads`](Self::loads), 0 if none.
    pub fn last_serial(&self) -> u64 {
        self.last_serial.load(Ordering::Acquire)
    }

    fn mac(&self) -> Result<HmacSha256, CryptoError> {
        // HMAC takes keys of any length, so this does not fail in practice
        <HmacSha256 as KeyInit>::new_from_slice(self.hmac_key.as_ref())
            .map_err(|_| CryptoError::Malformed { what: "hmac key" })
    }

    /// Encrypts and authenticates `data` with a fresh random IV.
    ///
    /// # Errors
    /// [`CryptoError::Random`] if the OS random number generator fails.
    pub fn encrypt(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut iv = [0u8; BLOCK];
        fill_random(&mut iv)?;
        let cipher = cbc::Encryptor::<Aes192>::new_from_slices(self.aes_key.as_ref(), &iv)
            .map_err(|_| CryptoError::Malformed { what: "key or IV" })?;
        let ciphertext = cipher.encrypt_padded_vec::<Pkcs7>(data);
        let mut out = Vec::with_capacity(BLOCK + ciphertext.len() + MAC_LEN);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&ciphertext);
        let mut mac = self.mac()?;
        mac.update(&out);
        out.extend_from_slice(&mac.finalize().into_bytes());
        Ok(out)
    }

    /// Checks the HMAC (in constant time) before anything else, then
    /// decrypts and removes the padding. Unlike Salt, which strips
    /// `data[-1]` bytes blindly, the pad length is checked to be 1..=16.
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] if `data` is too short or not block
    /// aligned, [`CryptoError::BadHmac`] for a wrong key or tampering,
    /// [`CryptoError::BadPadding`] for an impossible pad length.
    pub fn decrypt(&self, data: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let malformed = CryptoError::Malformed {
            what: "crypticle message",
        };
        let body_len = data.len().checked_sub(MAC_LEN).ok_or(malformed)?;
        let (body, tag) = data.split_at(body_len);
        let mut mac = self.mac()?;
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| CryptoError::BadHmac)?;

        let (iv, ciphertext) = body.split_at_checked(BLOCK).ok_or(CryptoError::Malformed {
            what: "crypticle message",
        })?;
        if ciphertext.is_empty() || ciphertext.len() % BLOCK != 0 {
            return Err(CryptoError::Malformed {
                what: "crypticle message",
            });
        }
        let cipher = cbc::Decryptor::<Aes192>::new_from_slices(self.aes_key.as_ref(), iv)
            .map_err(|_| CryptoError::Malformed { what: "key or IV" })?;
        let mut plain = Zeroizing::new(
            cipher
                .decrypt_padded_vec::<NoPadding>(ciphertext)
                .map_err(|_| CryptoError::BadPadding)?,
        );
        let pad = usize::from(*plain.last().ok_or(CryptoError::BadPadding)?);
        if !(1..=BLOCK).contains(&pad) {
            return Err(CryptoError::BadPadding);
        }
        let keep = plain
            .len()
            .checked_sub(pad)
            .ok_or(CryptoError::BadPadding)?;
        plain.truncate(keep);
        Ok(plain)
    }

    /// Salt's `Crypticle.dumps`: encrypts `pickle::` ‖ nonce ‖ the packed
    /// value — msgpack with the channel convention, or bincode (see
    /// [`Serialization::encode_value`]). Requests carry no nonce here; v3
    /// replies carry the request's nonce.
    ///
    /// # Errors
    /// [`CryptoError::InvalidNonce`] unless the nonce is 32 ASCII hex
    /// characters, [`CryptoError::Pack`] if the value cannot be packed,
    /// [`CryptoError::Random`] if the RNG fails.
    pub fn dumps(&self, value: &Value, nonce: Option<&str>) -> Result<Vec<u8>, CryptoError> {
        let packed = self
            .serialization
            .encode_value(value)
            .map_err(CryptoError::Pack)?;
        self.dumps_packed(&packed, nonce)
    }

    /// [`dumps`](Self::dumps) for a payload that is already packed with this
    /// Crypticle's [`serialization`](Self::serialization).
    ///
    /// # Errors
    /// As [`dumps`](Self::dumps).
    pub fn dumps_packed(&self, packed: &[u8], nonce: Option<&str>) -> Result<Vec<u8>, CryptoError> {
        let nonce = match nonce {
            Some(n) if !is_nonce(n) => return Err(CryptoError::InvalidNonce),
            Some(n) => n.as_bytes(),
            None => &[],
        };
        let mut plain = Zeroizing::new(Vec::with_capacity(
            PICKLE_PREFIX.len() + nonce.len() + packed.len(),
        ));
        plain.extend_from_slice(PICKLE_PREFIX);
        plain.extend_from_slice(nonce);
        plain.extend_from_slice(packed);
        self.encrypt(&plain)
    }

    /// Salt's `Crypticle.loads`: decrypts, checks the `pickle::` prefix and,
    /// if `expected_nonce` is given, the 32-byte nonce after it; unpacks the
    /// payload with this Crypticle's serialization (msgpack leniently, see
    /// [`crate::serial`]; only after the HMAC has authenticated it). If the result is a map
    /// with a `serial` key, that key is removed and the serial must be above
    /// the last one this instance accepted, which it then becomes.
    ///
    /// Where Salt returns `{}` (no prefix, stale serial) this returns an
    /// error, so the caller decides; Salt's behaviour is to drop the message
    /// silently.
    ///
    /// # Errors
    /// Everything [`decrypt`](Self::decrypt) returns, plus
    /// [`CryptoError::MissingPrefix`], [`CryptoError::NonceMismatch`],
    /// [`CryptoError::Payload`] for a payload that does not unpack (with
    /// [`SerialError::SerializationMismatch`](crate::SerialError::SerializationMismatch)
    /// when the peer packed it with the other serialization),
    /// [`CryptoError::Malformed`] for a non-integer `serial`, and
    /// [`CryptoError::Stale`] for a replayed or out-of-order serial.
    pub fn loads(&self, data: &[u8], expected_nonce: Option<&str>) -> Result<Value, CryptoError> {
        let plain = self.decrypt(data)?;
        let rest = plain
            .strip_prefix(PICKLE_PREFIX)
            .ok_or(CryptoError::MissingPrefix)?;
        let packed = match expected_nonce {
            Some(nonce) => {
                let (got, packed) = rest
                    .split_at_checked(NONCE_LEN)
                    .ok_or(CryptoError::NonceMismatch)?;
                if got != nonce.as_bytes() {
                    return Err(CryptoError::NonceMismatch);
                }
                packed
            }
            None => rest,
        };
        let mut value = self
            .serialization
            .decode_value(packed)
            .map_err(CryptoError::Payload)?;
        if let Some(serial) = value.remove("serial") {
            self.accept_serial(&serial)?;
        }
        Ok(value)
    }

    fn accept_serial(&self, serial: &Value) -> Result<(), CryptoError> {
        let wanted: i128 = match *serial {
            Value::Int(i) => i128::from(i),
            Value::UInt(u) => i128::from(u),
            _ => return Err(CryptoError::Malformed { what: "serial" }),
        };
        let stale = |last: u64| CryptoError::Stale {
            serial: wanted,
            last,
        };
        let Ok(wanted_u64) = u64::try_from(wanted) else {
            return Err(stale(self.last_serial()));
        };
        self.last_serial
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                (wanted_u64 > last).then_some(wanted_u64)
            })
            .map(|_| ())
            .map_err(stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Value {
        [
            ("fun", Value::from("test.ping")),
            ("jid", Value::from("20261125201059974475")),
            ("raw", Value::Bytes(vec![0xff, 0x00])),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn key_strings_have_salts_shape() {
        let k = Crypticle::generate_key_string().unwrap();
        assert_eq!(k.len(), 76);
        assert!(k.ends_with('='));
        assert!(Crypticle::new(&k).is_ok());
        assert_eq!(
            Crypticle::new(&format!(" {}\n", &*k)).unwrap().key_string(),
            &*k
        );
        for bad in ["", "AAAA", "!!!!", &Base64::encode_string(&[0u8; 55])] {
            assert!(
                matches!(Crypticle::new(bad), Err(CryptoError::BadKeyString)),
                "{bad}"
            );
        }
        assert!(format!("{:?}", Crypticle::new(&k).unwrap()).starts_with("Crypticle"));
        assert!(!format!("{:?}", Crypticle::new(&k).unwrap()).contains(&k[..20]));
    }

    #[test]
    fn encrypt_layout_and_round_trip() {
        let c = Crypticle::generate().unwrap();
        for len in [0, 1, 15, 16, 17, 1000] {
            let data = vec![0xab; len];
            let ct = c.encrypt(&data).unwrap();
            // iv + padded blocks + mac
            assert_eq!(ct.len(), 16 + (len / 16 + 1) * 16 + 32, "len {len}");
            assert_eq!(&c.decrypt(&ct).unwrap()[..], &data[..]);
        }
        // fresh IV every time
        assert_ne!(c.encrypt(b"x").unwrap(), c.encrypt(b"x").unwrap());
    }

    #[test]
    fn hmac_is_checked_before_anything_else() {
        let c = Crypticle::generate().unwrap();
        let other = Crypticle::generate().unwrap();
        let ct = c.encrypt(b"hello").unwrap();
        assert!(matches!(other.decrypt(&ct), Err(CryptoError::BadHmac)));
        for i in [0, 20, ct.len() - 1] {
            let mut t = ct.clone();
            t[i] ^= 1;
            assert!(
                matches!(c.decrypt(&t), Err(CryptoError::BadHmac)),
                "byte {i}"
            );
        }
        assert!(matches!(
            c.decrypt(&ct[..31]),
            Err(CryptoError::Malformed { .. })
        ));
    }

    /// Builds an authenticated message around an arbitrary (bad) plaintext block.
    fn forge(c: &Crypticle, last_block: [u8; 16]) -> Vec<u8> {
        let iv = [0u8; 16];
        let enc = cbc::Encryptor::<Aes192>::new_from_slices(c.aes_key.as_ref(), &iv).unwrap();
        let ct = enc.encrypt_padded_vec::<NoPadding>(&last_block);
        let mut out = iv.to_vec();
        out.extend_from_slice(&ct);
        let mut mac = c.mac().unwrap();
        mac.update(&out);
        out.extend_from_slice(&mac.finalize().into_bytes());
        out
    }

    #[test]
    fn impossible_padding_is_an_error_not_a_panic() {
        let c = Crypticle::generate().unwrap();
        for pad in [0u8, 17, 255] {
            let mut block = [0u8; 16];
            block[15] = pad;
            assert!(matches!(
                c.decrypt(&forge(&c, block)),
                Err(CryptoError::BadPadding)
            ));
        }
        let mut block = [0u8; 16];
        block[15] = 16;
        assert_eq!(c.decrypt(&forge(&c, block)).unwrap().len(), 0);
        // authenticated but not block aligned
        let mut odd = vec![0u8; 16 + 7];
        let mut mac = c.mac().unwrap();
        mac.update(&odd);
        odd.extend_from_slice(&mac.finalize().into_bytes());
        assert!(matches!(
            c.decrypt(&odd),
            Err(CryptoError::Malformed { .. })
        ));
    }

    #[test]
    fn dumps_loads_with_and_without_nonce() {
        let c = Crypticle::generate().unwrap();
        let nonce = super::super::gen_nonce().unwrap();
        let ct = c.dumps(&payload(), Some(&nonce)).unwrap();
        let plain = c.decrypt(&ct).unwrap();
        assert!(plain.starts_with(b"pickle::"));
        assert_eq!(&plain[8..40], nonce.as_bytes());
        assert_eq!(c.loads(&ct, Some(&nonce)).unwrap(), payload());
        let other = super::super::gen_nonce().unwrap();
        assert!(matches!(
            c.loads(&ct, Some(&other)),
            Err(CryptoError::NonceMismatch)
        ));

        let ct = c.dumps(&payload(), None).unwrap();
        assert_eq!(c.loads(&ct, None).unwrap(), payload());
        // a reply expected to carry a nonce but lacking it
        assert!(c.loads(&ct, Some(&nonce)).is_err());
        assert!(matches!(
            c.dumps(&payload(), Some("short")),
            Err(CryptoError::InvalidNonce)
        ));
        // Salt's `_return` reply: None, 41 bytes of plaintext
        let ct = c.dumps(&Value::Nil, Some(&nonce)).unwrap();
        assert_eq!(c.decrypt(&ct).unwrap().len(), 41);
        assert_eq!(c.loads(&ct, Some(&nonce)).unwrap(), Value::Nil);
    }

    #[test]
    fn missing_prefix_and_bad_msgpack() {
        let c = Crypticle::generate().unwrap();
        let ct = c.encrypt(b"\x80").unwrap();
        assert!(matches!(
            c.loads(&ct, None),
            Err(CryptoError::MissingPrefix)
        ));
        let ct = c.encrypt(b"pickle::\xc1").unwrap();
        assert!(matches!(c.loads(&ct, None), Err(CryptoError::Payload(_))));
    }

    #[test]
    fn serial_must_increase_and_is_removed() {
        let c = Crypticle::generate().unwrap();
        let with_serial = |s: Value| {
            let mut v = payload();
            v.insert("serial", s);
            c.dumps(&v, None).unwrap()
        };
        assert_eq!(
            c.loads(&with_serial(Value::from(1)), None).unwrap(),
            payload()
        );
        assert_eq!(c.last_serial(), 1);
        assert_eq!(
            c.loads(&with_serial(Value::from(5)), None).unwrap(),
            payload()
        );
        let replay = with_serial(Value::from(5));
        assert!(matches!(
            c.loads(&replay, None),
            Err(CryptoError::Stale { serial: 5, last: 5 })
        ));
        assert!(matches!(
            c.loads(&with_serial(Value::from(3)), None),
            Err(CryptoError::Stale { .. })
        ));
        assert!(matches!(
            c.loads(&with_serial(Value::from(-1)), None),
            Err(CryptoError::Stale { serial: -1, .. })
        ));
        assert!(matches!(
            c.loads(&with_serial(Value::from("7")), None),
            Err(CryptoError::Malformed { what: "serial" })
        ));
        assert_eq!(c.last_serial(), 5);
        // a fresh instance (new key or restart) starts over
        let fresh = Crypticle::new(c.key_string()).unwrap();
        assert!(fresh.loads(&replay, None).is_ok());
        // non-map payloads and maps without serial are not affected
        let ct = c.dumps(&Value::from(1), None).unwrap();
        assert_eq!(c.loads(&ct, None).unwrap(), Value::from(1));
    }

    #[test]
    fn bincode_round_trips_and_keeps_the_framing() {
        let c = Crypticle::generate()
            .unwrap()
            .with_serialization(Serialization::Bincode);
        assert_eq!(c.serialization(), Serialization::Bincode);
        assert!(format!("{c:?}").contains("Bincode"));
        let peer = Crypticle::new(c.key_string())
            .unwrap()
            .with_serialization(Serialization::Bincode);
        let nonce = super::super::gen_nonce().unwrap();
        let ct = c.dumps(&payload(), Some(&nonce)).unwrap();
        let plain = c.decrypt(&ct).unwrap();
        assert!(plain.starts_with(b"pickle::"));
        assert_eq!(&plain[8..40], nonce.as_bytes());
        assert_eq!(plain[40], 0xc1, "bincode payloads start with the tag");
        // the payload's bytes that are not UTF-8 stay bytes, text stays text
        assert_eq!(peer.loads(&ct, Some(&nonce)).unwrap(), payload());
        // serials work the same
        let mut v = payload();
        v.insert("serial", 9);
        assert_eq!(
            peer.loads(&c.dumps(&v, None).unwrap(), None).unwrap(),
            payload()
        );
        assert_eq!(peer.last_serial(), 9);
        assert!(matches!(
            peer.loads(&c.dumps(&v, None).unwrap(), None),
            Err(CryptoError::Stale { serial: 9, last: 9 })
        ));
        assert_eq!(
            peer.loads(&c.dumps(&Value::Nil, None).unwrap(), None)
                .unwrap(),
            Value::Nil
        );
    }

    #[test]
    fn a_serialization_mismatch_is_a_typed_error_both_ways() {
        use crate::serial::SerialError;
        let msgpack = Crypticle::generate().unwrap();
        let bincode = Crypticle::new(msgpack.key_string())
            .unwrap()
            .with_serialization(Serialization::Bincode);
        // every shape, including those whose packings could look alike
        // (msgpack 0 and bincode Nil are both the byte 0x00 untagged)
        for value in [payload(), Value::Nil, Value::from(0), Value::from(true)] {
            for (from, to) in [(&msgpack, &bincode), (&bincode, &msgpack)] {
                let ct = from.dumps(&value, None).unwrap();
                match to.loads(&ct, None) {
                    Err(CryptoError::Payload(SerialError::SerializationMismatch {
                        expected,
                        found,
                    })) => {
                        assert_eq!(expected, to.serialization());
                        assert_eq!(found, from.serialization());
                    }
                    other => panic!("{value:?} {from:?} -> {to:?}: {other:?}"),
                }
            }
        }
        let err = bincode
            .loads(&msgpack.dumps(&payload(), None).unwrap(), None)
            .unwrap_err();
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert_eq!(
            source,
            "expected bincode, found msgpack: both peers must use the same `serial`"
        );
    }

    #[test]
    fn random_garbage_never_panics() {
        let c = Crypticle::generate().unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let len = usize::try_from(next() % 200).unwrap();
            let bytes: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
            assert!(c.loads(&bytes, None).is_err());
            assert!(c.decrypt(&bytes).is_err());
            // authenticated garbage after the prefix, for both decoders
            let mut plain = b"pickle::".to_vec();
            plain.extend_from_slice(&bytes);
            for s in Serialization::ALL {
                let c = Crypticle::new(c.key_string())
                    .unwrap()
                    .with_serialization(s);
                let _ = c.loads(&c.encrypt(&plain).unwrap(), None);
            }
        }
    }
}
