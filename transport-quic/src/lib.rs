//! Brine's quic transport backend (work in progress).
