//! Routes, grouped by the surface that calls them.

pub mod app_home;
pub mod auth;
pub mod connect;
pub mod extensions;
pub mod flow;
pub mod health;
pub mod ops;
pub mod pages;
pub mod plans;
pub mod proxy;
pub mod webhooks;
