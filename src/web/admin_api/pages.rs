//! Reading a connection page by page, over its `pageInfo`.

use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{AdminApi, GraphqlError};
use crate::shopify::graphql::GraphqlRequest;

/// One page of a connection, as a query selects it: `nodes { ... }` and
/// `pageInfo { hasNextPage endCursor }`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    nodes: Vec<T>,
    page_info: PageInfo,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

/// The pages of a connection, read one call at a time (see [`AdminApi::pages`]).
pub struct Pages<'a, T> {
    api: &'a AdminApi,
    request: GraphqlRequest,
    connection: String,
    after: Option<String>,
    done: bool,
    nodes: PhantomData<T>,
}

impl AdminApi {
    /// The pages of the connection at `connection` (a JSON pointer into `data`, such as
    /// `/products` or `/order/lineItems`). The query takes `$after: String` and selects the
    /// connection's `nodes` and `pageInfo { hasNextPage endCursor }`; its other variables
    /// (`first`, filters) stay as `request` sets them.
    ///
    /// ```ignore
    /// let mut pages = api.pages::<Product>(GraphqlRequest::new(PRODUCTS).variables(json!({ "first": 100 })), "/products");
    /// while let Some(products) = pages.next().await? { /* ... */ }
    /// ```
    pub fn pages<T: DeserializeOwned>(&self, request: GraphqlRequest, connection: &str) -> Pages<'_, T> {
        Pages { api: self, request, connection: connection.to_owned(), after: None, done: false, nodes: PhantomData }
    }
}

impl<T: DeserializeOwned> Pages<'_, T> {
    /// The next page's nodes, or `None` after the last page.
    pub async fn next(&mut self) -> Result<Option<Vec<T>>, GraphqlError> {
        if self.done {
            return Ok(None);
        }
        let mut request = self.request.clone();
        let mut variables = request.variables.take().unwrap_or_else(|| Value::Object(Default::default()));
        if let Some(object) = variables.as_object_mut() {
            object.insert("after".to_owned(), self.after.clone().map_or(Value::Null, Value::String));
        }
        let mut data: Value = self.api.query(request.variables(variables)).await?;
        let page = data
            .pointer_mut(&self.connection)
            .map(Value::take)
            .ok_or_else(|| GraphqlError::Shape(format!("no connection at {}", self.connection)))?;
        let page: Page<T> = serde_json::from_value(page).map_err(|error| GraphqlError::shape(&error))?;
        // A next page needs a cursor that moves on: anything else would loop for ever.
        match page.page_info.end_cursor {
            Some(cursor) if page.page_info.has_next_page && self.after.as_ref() != Some(&cursor) => {
                self.after = Some(cursor)
            }
            _ => self.done = true,
        }
        Ok(Some(page.nodes))
    }

    /// Every node of every page, at most `limit` (the rest is not fetched).
    pub async fn collect(mut self, limit: usize) -> Result<Vec<T>, GraphqlError> {
        let mut all = Vec::new();
        while all.len() < limit {
            let Some(nodes) = self.next().await? else { break };
            all.extend(nodes);
        }
        all.truncate(limit);
        Ok(all)
    }
}
