//! msgpack with Salt's conventions, plus the Brine-to-Brine serialization choice.
//!
//! Salt packs two ways (`salt/payload.py`):
//!
//! | where | packing | here |
//! | --- | --- | --- |
//! | request/reply/publish envelopes, everything inside a [`Crypticle`](crate::Crypticle) | `use_bin_type=False`: bytes and text both become msgpack **str** | [`to_channel_bytes`] |
//! | event bus bodies, IPC frames | `use_bin_type=True`: bytes become **bin** | [`to_event_bytes`] |
//!
//! Decoding is lenient the way Salt's is: a str-family item whose payload is
//! not valid UTF-8 (a ciphertext, a signature) becomes [`Value::Bytes`]
//! instead of an error, and `bin` becomes [`Value::Bytes`] too. The decoder
//! never panics, bounds nesting depth ([`DEFAULT_MAX_DEPTH`]) and rejects a
//! length that exceeds the remaining input before allocating.
//!
//! Typed structs go through serde: [`encode`], [`encode_channel`] and
//! [`decode`] use `rmp-serde` (maps with field names, like Salt's dicts).
//! [`Serialization`] picks msgpack (default, Salt-compatible) or bincode
//! (Brine-to-Brine only) by the `serial` config key; it decides how
//! everything inside a [`Crypticle`](crate::Crypticle) is packed
//! ([`Serialization::encode_value`]), while envelopes stay msgpack so that
//! any peer can read them and report a mismatch.
//!
//! # bincode for `Value`
//!
//! bincode is not self-describing, so a [`Value`] travels as an externally
//! tagged enum whose variant index is a bincode varint: 0 `Nil`, 1 `Bool`,
//! 2 `Int` (`i64`), 3 `UInt` (`u64`), 4 `Float` (`f64`), 5 `Str`, 6 `Bytes`,
//! 7 `Array` (a sequence of values), 8 `Map` (a sequence of key-value pairs
//! in wire order), 9 `Ext` (`i8`, bytes). A document is the byte `0xc1` —
//! which msgpack never uses, so each side recognises the other's output and
//! reports [`SerialError::SerializationMismatch`] instead of a wrong value —
//! then one such value, in bincode's standard configuration with the
//! [`BINCODE_LIMIT`]. Decoding bounds nesting at [`DEFAULT_MAX_DEPTH`] before
//! entering each level, borrows strings from the input (a length beyond it
//! fails before allocating) and reads byte strings holding valid UTF-8 back
//! as text, as the msgpack channel convention does. Inside a Crypticle the
//! payload is HMAC-authenticated before it is decoded.

mod decode;
mod encode;
mod error;
mod typed;
mod value;
mod value_bincode;
mod value_serde;

pub use decode::{DEFAULT_MAX_DEPTH, decode_prefix, from_slice, from_slice_with_depth};
pub use encode::{to_channel_bytes, to_event_bytes, to_event_bytes_with_nil};
pub use error::SerialError;
pub use typed::{
    BINCODE_LIMIT, Serialization, decode, encode, encode_channel, from_value, to_value,
};
pub use value::Value;
