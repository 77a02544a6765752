//! Brine's tcp transport backend (work in progress).
