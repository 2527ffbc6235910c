//! Bulk operations: Shopify runs one query over a whole shop in the background and writes the
//! result as JSON Lines; the app learns it finished from the `bulk_operations/finish` webhook
//! (or by polling), then streams the file.

use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{AdminApi, GraphqlError};
use crate::shopify::graphql::GraphqlRequest;

/// Longest result line accepted (one object of the result, its children on their own lines).
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// How long a read of the result file may stall before the download fails.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

const RUN_QUERY: &str = "mutation bulk($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status errorCode objectCount url partialDataUrl }
    userErrors { field message }
  }
}";

const OPERATION: &str = "query bulkOperation($id: ID!) {
  node(id: $id) { ... on BulkOperation { id status errorCode objectCount url partialDataUrl } }
}";

/// A bulk operation, as `BulkOperation` in the Admin API. Its `Debug` leaves out the result
/// URLs: they are signed, anyone holding one can read the shop's data.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkOperation {
    /// Its GID (`gid://shopify/BulkOperation/1`).
    pub id: String,
    /// Where it stands.
    pub status: BulkStatus,
    /// Why it failed (`ACCESS_DENIED`, `INTERNAL_SERVER_ERROR`, `TIMEOUT`), if it did.
    #[serde(default)]
    pub error_code: Option<String>,
    /// How many objects it wrote (a decimal string, as Shopify sends an `UnsignedInt64`).
    #[serde(default)]
    pub object_count: Option<String>,
    /// The result file, once completed (none when the query matched nothing).
    #[serde(default)]
    pub url: Option<String>,
    /// What was written before it failed, if anything.
    #[serde(default)]
    pub partial_data_url: Option<String>,
}

impl std::fmt::Debug for BulkOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkOperation")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("error_code", &self.error_code)
            .field("object_count", &self.object_count)
            .field("url", &self.url.as_ref().map(|_| "(signed URL)"))
            .field("partial_data_url", &self.partial_data_url.as_ref().map(|_| "(signed URL)"))
            .finish()
    }
}

/// A bulk operation's status (`BulkOperationStatus`; the webhook sends it in lowercase).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum BulkStatus {
    /// Queued.
    Created,
    /// Running.
    Running,
    /// Done: the result is at `url`.
    Completed,
    /// Failed: see `error_code`, and `partial_data_url`.
    Failed,
    /// Being cancelled.
    Canceling,
    /// Cancelled.
    Canceled,
    /// Its result is no longer kept.
    Expired,
    /// A status this version does not know.
    Other,
}

impl From<String> for BulkStatus {
    fn from(status: String) -> Self {
        match status.to_ascii_uppercase().as_str() {
            "CREATED" => Self::Created,
            "RUNNING" => Self::Running,
            "COMPLETED" => Self::Completed,
            "FAILED" => Self::Failed,
            "CANCELING" => Self::Canceling,
            "CANCELED" => Self::Canceled,
            "EXPIRED" => Self::Expired,
            _ => Self::Other,
        }
    }
}

impl BulkStatus {
    /// Whether the operation has stopped (for good or ill).
    pub fn is_finished(self) -> bool {
        !matches!(self, Self::Created | Self::Running | Self::Canceling)
    }
}

/// The `bulk_operations/finish` webhook's payload: which operation finished and how.
#[derive(Debug, Clone, Deserialize)]
pub struct BulkOperationFinished {
    /// The operation's GID.
    pub admin_graphql_api_id: String,
    /// How it ended (`completed`, `failed`, `canceled`...).
    pub status: BulkStatus,
    /// Why it failed, if it did.
    #[serde(default)]
    pub error_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunPayload {
    bulk_operation: BulkOperation,
}

#[derive(Deserialize)]
struct Node {
    node: Option<BulkOperation>,
}

impl AdminApi {
    /// Starts a bulk query (`bulkOperationRunQuery`; one at a time per shop and app, or
    /// Shopify refuses with a `userError`). Subscribe to `bulk_operations/finish` to hear
    /// when it ends, or wait with [`wait_for_bulk_operation`](Self::wait_for_bulk_operation).
    pub async fn run_bulk_query(&self, query: &str) -> Result<BulkOperation, GraphqlError> {
        let request = GraphqlRequest::new(RUN_QUERY).variables(json!({ "query": query }));
        let payload: RunPayload = self.mutate(request, "bulkOperationRunQuery").await?;
        Ok(payload.bulk_operation)
    }

    /// The bulk operation `id` as it stands now.
    pub async fn bulk_operation(&self, id: &str) -> Result<BulkOperation, GraphqlError> {
        let answer: Node = self.query(GraphqlRequest::new(OPERATION).variables(json!({ "id": id }))).await?;
        answer.node.ok_or_else(|| GraphqlError::Shape(format!("no bulk operation {id}")))
    }

    /// Asks for the operation every `every` until it has finished (on the app's clock). A job
    /// that waits this way is bounded by `JOB_TIMEOUT_SECS`: for long operations, prefer the
    /// `bulk_operations/finish` webhook.
    pub async fn wait_for_bulk_operation(&self, id: &str, every: Duration) -> Result<BulkOperation, GraphqlError> {
        loop {
            let operation = self.bulk_operation(id).await?;
            if operation.status.is_finished() {
                return Ok(operation);
            }
            self.shopify.clock().sleep(every).await;
        }
    }

    /// The result of a completed operation, one `T` per line as the file arrives (never all
    /// of it in memory). Nested connections come as their own lines with `__parentId`: read
    /// them as an enum or as `serde_json::Value`. An operation without a result file (no
    /// match, or not completed) has no lines.
    pub async fn bulk_results<T: DeserializeOwned>(
        &self,
        operation: &BulkOperation,
    ) -> Result<BulkResults<T>, GraphqlError> {
        let url = match (&operation.status, &operation.url) {
            (BulkStatus::Completed, Some(url)) => url,
            _ => return Ok(BulkResults::new(None)),
        };
        // The file is on Shopify's storage over HTTPS; plain HTTP only with a local fake.
        if !url.starts_with("https://") && self.config.shop_origin.is_none() {
            return Err(GraphqlError::Download("the result URL is not HTTPS".to_owned()));
        }
        let response = download_client()?
            .get(url)
            .send()
            .await
            .map_err(|error| GraphqlError::Download(download_failure(&error)))?;
        // Anything but the file itself (a redirect, an empty 204) would read as no rows.
        if response.status() != reqwest::StatusCode::OK {
            return Err(GraphqlError::Download(format!("the result file answered {}", response.status())));
        }
        Ok(BulkResults::new(Some(response)))
    }
}

/// A bulk operation's result lines, read as they arrive (see [`AdminApi::bulk_results`]).
pub struct BulkResults<T> {
    response: Option<reqwest::Response>,
    /// Received bytes; those before `start` are read already.
    buffer: Vec<u8>,
    start: usize,
    /// Where the search for the next newline resumes (bytes before it hold none).
    scanned: usize,
    line: usize,
    rows: std::marker::PhantomData<T>,
}

impl<T: DeserializeOwned> BulkResults<T> {
    fn new(response: Option<reqwest::Response>) -> Self {
        Self { response, buffer: Vec::new(), start: 0, scanned: 0, line: 0, rows: std::marker::PhantomData }
    }

    /// The next line's object, or `None` at the end of the file.
    pub async fn next(&mut self) -> Result<Option<T>, GraphqlError> {
        loop {
            if let Some(offset) = self.buffer[self.scanned..].iter().position(|&byte| byte == b'\n') {
                let end = self.scanned + offset;
                self.line += 1;
                let row = parse_line(self.line, &self.buffer[self.start..end]);
                (self.start, self.scanned) = (end + 1, end + 1);
                match row? {
                    Some(row) => return Ok(Some(row)),
                    None => continue,
                }
            }
            self.scanned = self.buffer.len();
            if self.scanned - self.start > MAX_LINE {
                return Err(GraphqlError::Download(format!("line {} is over {MAX_LINE} bytes", self.line + 1)));
            }
            let chunk = match self.response.as_mut() {
                Some(response) => {
                    response.chunk().await.map_err(|error| GraphqlError::Download(download_failure(&error)))?
                }
                None => None,
            };
            // Drop the lines read, once per chunk: the rest is at most one partial line.
            self.buffer.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
            match chunk {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => {
                    self.response = None;
                    let rest = std::mem::take(&mut self.buffer);
                    self.scanned = 0;
                    self.line += 1;
                    return parse_line(self.line, &rest);
                }
            }
        }
    }
}

/// Line `number` as a `T` (`None` for a blank line).
fn parse_line<T: DeserializeOwned>(number: usize, line: &[u8]) -> Result<Option<T>, GraphqlError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(line)
        .map(Some)
        .map_err(|error| GraphqlError::Shape(format!("line {number}: {}", crate::jobs::shape_error(&error))))
}

/// The client for result files: no overall deadline (a file may be large), a stall is a
/// failure, no redirects.
fn download_client() -> Result<&'static reqwest::Client, GraphqlError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = crate::shopify::http::client_builder()
        .user_agent(crate::shopify::http::USER_AGENT)
        .connect_timeout(crate::shopify::http::CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| GraphqlError::Download(download_failure(&error)))?;
    Ok(CLIENT.get_or_init(|| client))
}

/// What went wrong with a download, without its URL (a signed URL is a credential).
fn download_failure(error: &reqwest::Error) -> String {
    match error.status() {
        Some(status) => format!("the result file answered {status}"),
        None if error.is_timeout() => "the result file stalled".to_owned(),
        None => "the result file could not be read".to_owned(),
    }
}
