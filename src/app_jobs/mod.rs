//! The app's own jobs: what runs outside a request, registered in one place. Add a webhook
//! topic here (and subscribe to it in `shopify.app.toml`), a job kind the app enqueues with
//! `state.jobs.enqueue(NewJob::new(kind))`, or a periodic job. The machinery is in
//! [`crate::jobs`].

pub mod billing;
pub mod compliance;
pub mod housekeeping;
pub mod products;

use std::time::Duration;

use crate::jobs::{JobRegistry, Scope};

/// How often the template's housekeeping runs.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10 * 60);

/// Every job kind of the app, with its handler.
pub fn registry() -> JobRegistry {
    JobRegistry::new()
        .webhook("products/update", products::record_update)
        .webhook("app_subscriptions/update", billing::subscription_updated)
        .webhook("customers/data_request", compliance::customers_data_request)
        .webhook("customers/redact", compliance::customers_redact)
        .webhook("shop/redact", compliance::shop_redact)
        .every("housekeeping", HOUSEKEEPING_EVERY, Scope::Global, housekeeping::run)
}
