//! The shared behaviour table (written by the protocol work).
