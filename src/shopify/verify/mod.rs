//! Verifiers: one per kind of request Shopify (or a Shopify surface) sends to the app.

mod app_home;
mod app_proxy;
mod body_hmac;
mod ui_extension;
