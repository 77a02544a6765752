//! Brine's zeromq transport backend (work in progress).
