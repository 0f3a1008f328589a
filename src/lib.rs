//! Credits: a prepaid credit ledger served over GraphQL.
//!
//! `ledger` holds the rules with no I/O; `store` the queries; `service` the use cases;
//! `graphql` and `http` the thin transport around them.

// The merged mutation root's resolver, with every domain's fields behind tracing's instrumented
// futures, is a deeply nested async type: its layout passes the default query depth of 128.
#![recursion_limit = "256"]

pub mod ads;
pub mod app;
pub mod audit;
pub mod auth;
pub mod balance_reader;
pub mod balance_watch;
pub mod body_timeout;
pub mod client_address;
pub mod config;
pub mod config_check;
pub mod connections;
pub mod console;
pub mod cors;
pub mod db;
pub mod drain;
pub mod entity;
pub mod feed;
pub mod graphiql;
pub mod graphql;
pub mod graphql_http;
pub mod http;
pub mod ledger;
pub mod links;
pub mod portal;
pub mod program;
pub mod ratelimit;
pub mod request_id;
pub mod server;
pub mod service;
pub mod store;
pub mod stripe;
pub mod telemetry;
pub mod traces;
pub mod web_asset;
pub mod ws;
