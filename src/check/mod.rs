//! Evidence that the modes keep their promises: a recorded [`history::History`] of client
//! operations and checkers that judge it against each mode's guarantee.

pub mod history;
