//! Steward's domain core: tracking entities, validation rules, the search grammar and the
//! error table. Pure: no IO, no async, no knowledge of SQL or HTTP.

pub mod access;
pub mod anchor;
pub mod audit;
pub mod entities;
pub mod error;
pub mod registry;
pub mod schedule;
pub mod search;
pub mod serving;
pub mod validation;

pub use error::{Error, ErrorCode, Result};
