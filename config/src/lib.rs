//! The machine configuration of a MaticOS node (docs/config.md): one typed
//! TOML document (`version = 1`), checked before anything uses it, kept on
//! `MATIC_STATE` as numbered generations, and tried with an automatic
//! revert. std, no async: the agent calls it from its blocking pool.
//!
//! | module | what |
//! |---|---|
//! | [`schema`] | the document's types and the sysctl allow-list |
//! | [`check`] | parsing and value checks; errors name line, field and why |
//! | [`diff`] | field-level differences and what each needs (live, restart, reboot) |
//! | [`atomic`] | temp → fsync → rename → fsync dir |
//! | [`generations`] | the last [`generations::KEEP`] generations on disk |
//! | [`trial`] | try-and-revert as pure logic, and its state file |
//!
//! Must never: apply anything to the node (the agent's appliers do), accept
//! a document with an unknown key or a bad value, or leave a half-written
//! file where a reader would take it for a whole one.
#![forbid(unsafe_code)]

pub mod atomic;
pub mod check;
pub mod diff;
pub mod generations;
pub mod schema;
pub mod trial;

pub use check::{Problem, Refused, parse};
pub use schema::Config;
