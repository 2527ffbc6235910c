//! The integration tests: one binary (one link) for every suite, over the real router or the
//! real binary, a fake Shopify on 127.0.0.1, and the database `support::database_url` gives:
//! a temporary SQLite file, or a fresh PostgreSQL database when `TEST_POSTGRES_URL` is set.

mod support;

mod admin_api;
mod app_home;
mod billing;
mod black_box;
mod browser;
mod conformance;
mod database;
mod extensions;
mod install;
mod jobs;
mod limits;
mod oauth_provider;
mod pages;
mod properties;
mod recipes;
mod security;
mod shopify_api;
mod storage_security;
mod surfaces;
