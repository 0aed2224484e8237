//! ivrflow — a voice-robot dialogue runtime.
//!
//! Layering (see `../shared/DESIGN.md`): protocol and dialogue logic are synchronous,
//! sans-IO state machines that take `now` as an argument (`sip`, `media`, `dialogue`,
//! `engine`); only `rt` owns sockets, threads, HTTP and the real clock, and `sim` drives the
//! same engine on a virtual clock for tests and the `simulate` command.

pub mod api;
pub mod asr;
pub mod call;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod crm;
pub mod delivery;
pub mod dialer;
pub mod dialogue;
pub mod engine;
pub mod media;
pub mod nlu;
pub mod node;
pub mod pii;
pub mod recordings;
pub mod rt;
pub mod sayas;
pub mod scenario;
pub mod sim;
pub mod sip;
pub mod store;
pub mod timers;
