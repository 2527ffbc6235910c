//! Verifiers: one per kind of request Shopify (or a Shopify surface) sends to the app.

mod app_home;
