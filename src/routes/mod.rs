//! Routes, grouped by the surface that calls them.

pub mod app_home;
pub mod auth;
pub mod health;
