//! Extractors that authenticate a request, one per surface Shopify calls. Protecting a
//! handler is one argument:
//!
//! ```ignore
//! async fn handler(admin: Admin) -> Result<Response, AppError> { ... }
//! ```
//!
//! Each rejects with exactly the answer the Shopify protocol prescribes, so a handler only
//! ever sees verified requests.

mod app_home;
mod app_proxy;
mod ui_extension;
mod webhook;

pub use app_home::{Admin, AppHome, PATCH_ID_TOKEN_PATH};
pub use app_proxy::AppProxy;
pub use ui_extension::{ExtensionSurface, UiExtension};
pub use webhook::{FlowAction, Webhook, precheck_flow_action, precheck_webhook};
