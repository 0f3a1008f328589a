//! The GraphQL schema: built by a transport-free function; the HTTP layer mounts it and attaches
//! each request's caller.

pub mod accounts;
pub mod admin;
pub mod admin_log;
pub mod amount;
pub mod audits;
pub mod auto_topup;
pub mod balance;
pub mod balance_at;
pub mod benefits;
pub mod bulk;
pub mod claims;
pub mod clock;
pub mod console;
pub mod context;
pub mod corrections;
pub mod error;
pub mod gifts;
pub mod history;
pub mod limits;
pub mod market;
pub mod market_root;
pub mod metadata;
pub mod metering;
pub mod metering_root;
pub mod mutation;
pub mod operations;
pub mod paging;
pub mod persisted;
pub mod portal;
pub mod prices;
pub mod program;
pub mod purchases;
pub mod query;
pub mod reservations;
pub mod runway;
pub mod session;
pub mod spend_limits;
pub mod spending;
pub mod statements;
pub mod subscription;
pub mod telemetry;
pub mod timeout;
pub mod transport;
pub mod types;

use async_graphql::{SDLExportOptions, Schema, SchemaBuilder};

pub use context::{AppData, Authentication};
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

pub type CreditsSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Limits on every request: nesting depth and total field complexity. Page sizes are bounded
/// by the resolvers, body size by the HTTP layer.
pub const MAX_DEPTH: usize = 12;
pub const MAX_COMPLEXITY: usize = 1_000;
/// Directives on one field: `@skip` and `@include` together need two; dozens only cost parsing.
pub const MAX_DIRECTIVES: usize = 4;

pub fn schema_builder() -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot).limit_depth(MAX_DEPTH).limit_complexity(MAX_COMPLEXITY)
}

/// The SDL as committed in `schema.graphql`.
pub fn sdl() -> String {
    schema_builder().finish().sdl_with_options(SDLExportOptions::new().sorted_fields().sorted_arguments().sorted_enum_items())
}
