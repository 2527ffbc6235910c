//! A batteries-included starter for embedded Shopify apps.

pub mod shopify;
