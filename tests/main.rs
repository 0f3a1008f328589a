//! One integration binary, so the link step happens once. Every storage test runs on SQLite and
//! on PostgreSQL, each with its own fresh database.

mod support;

mod accounts;
mod ad_rewards;
mod adversarial;
mod audit;
mod auth;
mod batching;
mod checkin;
mod cli;
mod combinations;
mod concurrency;
mod connections;
mod coupons;
mod crash;
mod daily_free;
mod expiry;
mod fuzz;
mod history;
mod jobs;
mod limits;
mod lucky;
mod market;
mod metering;
mod model;
mod notices;
mod outages;
mod persisted;
mod plans;
mod prices;
mod purchases;
mod referrals;
mod refunds;
mod reservations;
mod retention;
mod roles;
mod schema;
mod spending;
mod subscriptions;
mod test_clock;
mod webhooks;
mod websocket;
