//! `products/update`: the job reads the updated product through the Admin API with the shop's
//! offline token and records it; App Home lists the latest ones.

use serde::Deserialize;
use serde_json::json;

use crate::jobs::{Job, JobError};
use crate::products::RecordedProduct;
use crate::shopify::graphql::GraphqlRequest;
use crate::state::AppState;
use crate::web::admin_api::AdminApi;

const PRODUCT: &str = "query product($id: ID!) {
  product(id: $id) { id title status updatedAt }
}";

/// The part of the webhook's payload the job reads.
#[derive(Deserialize)]
struct ProductUpdate {
    admin_graphql_api_id: String,
}

/// What the query answers: the product, `null` when it was deleted meanwhile.
#[derive(Deserialize)]
struct ProductAnswer {
    product: Option<Product>,
}

/// The product as the query answers it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Product {
    id: String,
    title: String,
    status: String,
    updated_at: String,
}

/// Reads the product the delivery names and records it. Idempotent: recording the same
/// product twice leaves one row with its latest state.
pub async fn record_update(state: AppState, job: Job) -> Result<(), JobError> {
    let shop = job.shop()?;
    let update: ProductUpdate = job.payload()?;
    let admin = AdminApi::for_shop(&state, shop).await?;
    let request = GraphqlRequest::new(PRODUCT).variables(json!({ "id": update.admin_graphql_api_id }));
    let ProductAnswer { product } = admin.query(request).await?;
    let Some(Product { id, title, status, updated_at }) = product else {
        tracing::info!(shop, "the updated product is gone already: nothing to record");
        return Ok(());
    };
    state.products.record(shop, &RecordedProduct { product_id: id, title, status, updated_at }).await?;
    Ok(())
}
