//! A real memcached on a free port (written by the protocol work).
