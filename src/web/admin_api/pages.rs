//! Reading a connection page by page, over its `pageInfo`.

use std::collections::HashSet;
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
    /// Every cursor answered so far: one answered again would read the same pages for ever.
    seen: HashSet<String>,
    empty_pages: u32,
    done: bool,
    nodes: PhantomData<T>,
}

/// Empty pages in a row that still say another follows, before the reading stops as broken.
const MAX_EMPTY_PAGES: u32 = 10;

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
        Pages {
            api: self,
            request,
            connection: connection.to_owned(),
            after: None,
            seen: HashSet::new(),
            empty_pages: 0,
            done: false,
            nodes: PhantomData,
        }
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
        let PageInfo { has_next_page, end_cursor } = page.page_info;
        self.empty_pages = if page.nodes.is_empty() { self.empty_pages + 1 } else { 0 };
        if !has_next_page {
            self.done = true;
            return Ok(Some(page.nodes));
        }
        // A next page needs a new cursor: none, or one answered before, would read the same
        // pages again (a query without `after: $after` does exactly that). Done until it has one.
        self.done = true;
        let cursor = end_cursor.ok_or_else(|| GraphqlError::Shape("hasNextPage without an endCursor".to_owned()))?;
        if !self.seen.insert(cursor.clone()) {
            return Err(GraphqlError::Shape(format!(
                "the cursor of {} came back: does the query pass `after: $after` to the connection?",
                self.connection
            )));
        }
        if self.empty_pages >= MAX_EMPTY_PAGES {
            return Err(GraphqlError::Shape(format!("{MAX_EMPTY_PAGES} empty pages in a row at {}", self.connection)));
        }
        self.after = Some(cursor);
        self.done = false;
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
