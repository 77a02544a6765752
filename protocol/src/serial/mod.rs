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
//! (Brine-to-Brine only) by the `serial` config key.

mod decode;
mod encode;
mod error;
mod typed;
mod value;
mod value_serde;

pub use decode::{DEFAULT_MAX_DEPTH, decode_prefix, from_slice, from_slice_with_depth};
pub use encode::{to_channel_bytes, to_event_bytes};
pub use error::SerialError;
pub use typed::{
    BINCODE_LIMIT, Serialization, decode, encode, encode_channel, from_value, to_value,
};
pub use value::Value;
