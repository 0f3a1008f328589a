//! sea-orm entities, one per table. Nothing here knows about GraphQL or the rules.

pub mod account;
pub mod idempotency_key;
pub mod journal_entry;
pub mod journal_line;
pub mod lot;
pub mod purchase;
