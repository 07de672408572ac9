//! Helpers shared by the integration tests: real processes on free ports, waited on with
//! deadlines, killed on drop.
#![allow(dead_code)]

pub mod cases;
pub mod cluster;
pub mod memcached;
pub mod peer;
