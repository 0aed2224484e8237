//! What the shop's CRM receives: event payloads ([`events`]), the outbox's delivery state
//! machine and retry schedule ([`outbox`]), and Standard Webhooks signatures ([`signing`]).
//! The record of a finished call itself ([`CallCompleted`]) is the call's (`crate::call`).
//!
//! Pure data and arithmetic, with time as an argument. Persistence is `store`'s; the HTTP
//! client that delivers events and the clock live in `rt::webhook`.

pub mod events;
pub mod outbox;
pub mod signing;

pub use crate::call::CallCompleted;
