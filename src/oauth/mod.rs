//! A reusable OAuth2 client for third-party providers (an e-mail or analytics service a merchant
//! connects from inside the app): the authorization-code grant with `state` and PKCE (S256),
//! tokens kept pending until the embedded app confirms them for the same shop and staff member,
//! then stored per shop and provider, refreshed when they expire (single-flight across
//! processes), and calls to the provider's API with a valid token.
//!
//! The protocol is the `oauth2` crate's; its requests go through the app's shared HTTP client
//! ([`http::ProviderHttp`]). The routes in [`crate::routes::connect`] drive the browser side.

pub mod http;
mod response;
mod store;

use std::sync::Arc;
use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardRevocableToken,
    TokenResponse, TokenUrl,
};
use serde_json::Value;
use time::OffsetDateTime;

pub use response::{MAX_LIFETIME, ProviderTokenResponse};
pub use store::{ProviderTokenStore, delete_shop_in, delete_shop_in_postgres};

use self::http::ProviderHttp;
use crate::db::Db;
use crate::shopify::clock::Clock;
use crate::shopify::http::{REQUEST_TIMEOUT, Transport, TransportError, UpstreamRequest};
use crate::shopify::model::Res;
use crate::shopify::secret::Secret;
use crate::tokens::{Look, SingleFlight, StoreError, TokenCipher};

/// A token is refreshed once it expires within this margin.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// How long a refresh lease protects a refresh in flight; a crashed holder's lease runs out.
/// It must outlast the worst refresh: its token requests, each abandoned by the shared HTTP
/// client after [`REQUEST_TIMEOUT`] (connecting included), plus a margin. Should a
/// refresh still outlast its lease, its result is not saved (see
/// [`ProviderTokenStore::save_refreshed`]).
pub const REFRESH_LEASE: Duration =
    Duration::from_secs(REFRESH_REQUESTS * REQUEST_TIMEOUT.as_secs() + LEASE_MARGIN.as_secs());
/// Token requests per refresh: the `oauth2` client sends one and does not retry.
const REFRESH_REQUESTS: u64 = 1;
/// What a lease allows beyond its refresh's requests, for the database work and the
/// scheduling around them: as much again.
const LEASE_MARGIN: Duration = REQUEST_TIMEOUT;
/// How often a caller waiting for another process's refresh looks again.
const POLL: Duration = Duration::from_millis(100);
/// How long a token obtained by a connection's callback waits for the embedded app to confirm
/// it ([`OAuthProviders::confirm`]).
pub const PENDING_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// How the app authenticates at the provider's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (RFC 6749's default).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    RequestBody,
}

/// One provider, as configured (see the `OAUTH_*` variables in the README).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    /// The provider's name in routes and storage: lowercase letters, digits and `-`.
    pub name: String,
    /// The provider's authorization endpoint (where the browser is sent).
    pub authorization_url: String,
    /// The provider's token endpoint.
    pub token_url: String,
    /// The app's client id at the provider.
    pub client_id: String,
    /// The app's client secret at the provider (`None` for a public client).
    pub client_secret: Option<Secret>,
    /// Scopes to request.
    pub scopes: Vec<String>,
    /// The path the provider redirects back to, under the app's URL (`/connect/{name}/callback`).
    pub redirect_path: String,
    /// The base URL of the provider's API; [`OAuthProviders::request`] only calls below it.
    pub api_base_url: Option<String>,
    /// How the app authenticates at the token endpoint.
    pub client_auth: ClientAuth,
}

impl ProviderConfig {
    /// The path that starts the connection: `/connect/{name}`.
    pub fn start_path(&self) -> String {
        format!("/connect/{}", self.name)
    }
}

/// A provider's token for one shop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderToken {
    /// The shop's name (`s1`).
    pub shop: String,
    /// The provider's name.
    pub provider: String,
    /// The access token.
    pub access_token: Secret,
    /// The refresh token, when the provider issued one.
    pub refresh_token: Option<Secret>,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// When the access token expires (`None`: never, as far as the provider said).
    pub expires: Option<OffsetDateTime>,
}

/// A connection the provider granted but the app has not linked yet: its token waits in the
/// store until the embedded app confirms it with a session token of the same shop and staff
/// member ([`OAuthProviders::confirm`]), or until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingConnection {
    /// The random id (256 bits) the embedded app confirms with.
    pub id: Secret,
    /// The shop of the session token that started the connection.
    pub shop: String,
    /// The provider's name.
    pub provider: String,
    /// The staff member (`sub`) of the session token that started the connection.
    pub user_id: Option<String>,
    /// When it can no longer be confirmed.
    pub expires: OffsetDateTime,
}

/// What confirming a pending connection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// The token is now the shop's connection.
    Linked(ProviderToken),
    /// No such pending connection: unknown, already confirmed, or expired.
    NotFound,
    /// It was started from another shop or by another staff member: nothing was linked (and
    /// the pending connection is used up).
    WrongOwner,
}

/// Where to send the browser, and what to keep in its session until the callback.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// The provider's authorization URL with `state` and the PKCE challenge.
    pub url: String,
    /// The `state` (256 random bits) the callback must bring back.
    pub state: Secret,
    /// The PKCE verifier the code exchange must send.
    pub pkce_verifier: Secret,
}

/// Why a provider operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// No provider has this name.
    #[error("no OAuth provider named {0:?} is configured")]
    UnknownProvider(String),
    /// The shop has not connected this provider.
    #[error("the shop has not connected {0}")]
    NotConnected(String),
    /// The token expired and cannot be refreshed: the merchant must connect again.
    #[error("the {0} token expired and cannot be refreshed: connect again")]
    Reconnect(String),
    /// The provider refused the request with an OAuth error code (`invalid_grant`...).
    #[error("the provider refused the request ({0})")]
    Rejected(String),
    /// The provider could not be reached, or answered something that is not OAuth.
    #[error("the provider failed: {0}")]
    Upstream(String),
    /// The provider has no API base URL, or the path is not a plain absolute path.
    #[error("the API request is not allowed: {0}")]
    Forbidden(&'static str),
    /// A provider's URL is not valid.
    #[error("provider {provider}: invalid {what}: {error}")]
    Config {
        /// The provider.
        provider: String,
        /// Which URL.
        what: &'static str,
        /// Why.
        error: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Client = oauth2::Client<
    BasicErrorResponse,
    ProviderTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

struct Provider {
    config: ProviderConfig,
    client: Client,
}

/// The configured providers, their token store and the shared HTTP client.
pub struct OAuthProviders {
    providers: Vec<Provider>,
    http: ProviderHttp,
    clock: Arc<dyn Clock>,
    store: ProviderTokenStore,
    /// Refreshes, one per shop and provider at a time.
    flight: SingleFlight<(String, String)>,
}

impl std::fmt::Debug for OAuthProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let configs: Vec<&ProviderConfig> = self.providers.iter().map(|p| &p.config).collect();
        f.debug_struct("OAuthProviders").field("providers", &configs).finish_non_exhaustive()
    }
}

impl OAuthProviders {
    /// The providers in `configs`, redirecting back to `app_url`, with tokens in `db`,
    /// encrypted by `cipher`.
    pub fn new(
        configs: Vec<ProviderConfig>,
        app_url: &str,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
        db: Db,
        cipher: TokenCipher,
    ) -> Result<Self, OAuthError> {
        let providers = configs.into_iter().map(|config| Provider::new(config, app_url)).collect::<Result<_, _>>()?;
        Ok(Self {
            providers,
            http: ProviderHttp(transport),
            store: ProviderTokenStore::new(db, cipher, clock.clone()),
            clock,
            flight: SingleFlight::new(REFRESH_LEASE, POLL),
        })
    }

    /// The configured providers.
    pub fn configs(&self) -> impl Iterator<Item = &ProviderConfig> {
        self.providers.iter().map(|provider| &provider.config)
    }

    /// The token store.
    pub fn store(&self) -> &ProviderTokenStore {
        &self.store
    }

    fn provider(&self, name: &str) -> Result<&Provider, OAuthError> {
        self.providers
            .iter()
            .find(|provider| provider.config.name == name)
            .ok_or_else(|| OAuthError::UnknownProvider(name.to_owned()))
    }

    /// Starts a connection: a fresh `state` (256 bits) and PKCE verifier, and the provider's
    /// authorization URL carrying the state, the S256 challenge, the scopes and the redirect URI.
    pub fn authorize(&self, provider: &str) -> Result<Authorization, OAuthError> {
        let provider = self.provider(provider)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = provider
            .client
            .authorize_url(|| CsrfToken::new_random_len(32))
            .add_scopes(provider.config.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Authorization {
            url: url.into(),
            state: state.into_secret().into(),
            pkce_verifier: verifier.into_secret().into(),
        })
    }

    /// Finishes the provider side of a connection: exchanges the callback's `code` with the
    /// session's PKCE verifier and keeps the token as a [`PendingConnection`] of `shop` and
    /// `user_id` (from the session token that started the connection) for
    /// [`PENDING_LIFETIME`]. Nothing is linked until [`OAuthProviders::confirm`]: a callback
    /// alone never connects a shop.
    pub async fn connect_pending(
        &self,
        shop: &str,
        user_id: Option<&str>,
        provider: &str,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<PendingConnection, OAuthError> {
        let provider = self.provider(provider)?;
        let response = provider
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let token = self.token_from(shop, &provider.config.name, &response, None);
        let now = self.clock.now();
        let pending = PendingConnection {
            id: crate::sessions::random_token().into(),
            shop: shop.to_owned(),
            provider: provider.config.name.clone(),
            user_id: user_id.map(str::to_owned),
            expires: after(now, PENDING_LIFETIME).unwrap_or(now),
        };
        self.store.save_pending(&pending, &token, now).await?;
        Ok(pending)
    }

    /// Links the pending connection `id` of `provider` for the embedded app, when it exists,
    /// has not expired, and was started from `shop` by `user_id` (the verified session token
    /// of the confirming request): its token becomes the shop's connection, replacing any
    /// previous one. Any attempt uses the pending connection up.
    pub async fn confirm(
        &self,
        provider: &str,
        id: &str,
        shop: &str,
        user_id: Option<&str>,
    ) -> Result<Confirmation, OAuthError> {
        let name = self.provider(provider)?.config.name.as_str();
        let Some((pending, token)) = self.store.take_pending(name, id, self.clock.now()).await? else {
            return Ok(Confirmation::NotFound);
        };
        if pending.shop != shop || pending.user_id.as_deref() != user_id {
            tracing::warn!(
                pending_shop = %pending.shop,
                shop,
                provider = name,
                "a connection started elsewhere was confirmed from another shop or staff member; not linked"
            );
            return Ok(Confirmation::WrongOwner);
        }
        self.store.save(&token).await?;
        Ok(Confirmation::Linked(token))
    }

    /// A valid token of `shop` for `provider`: the stored one, refreshed when it expires within
    /// [`REFRESH_MARGIN`]. The refresh is single-flight: within the process a lock per shop and
    /// provider, across processes a lease row (callers wait for its holder's result). A refresh
    /// token the provider refuses is forgotten with the token ([`OAuthError::Reconnect`]), but
    /// only while the stored token still holds that refresh token.
    ///
    /// The refresh runs to its end in a task of its own, even if the caller goes away, so a
    /// rotated refresh token is never lost and the lease is always given back.
    pub async fn token(self: &Arc<Self>, shop: &str, provider: &str) -> Result<ProviderToken, OAuthError> {
        let name = self.provider(provider)?.config.name.clone();
        let stored = self.stored(shop, &name).await?;
        if !self.expiring(&stored) {
            return Ok(stored);
        }
        let name = name.as_str();
        let refreshed = self
            .flight
            .run(
                (shop.to_owned(), name.to_owned()),
                self.clock.as_ref(),
                || async move {
                    let stored = self.stored(shop, name).await?;
                    Ok(if self.expiring(&stored) { Look::Refresh } else { Look::Ready(stored) })
                },
                |now, until| self.store.try_lease(shop, name, self.flight.holder(), now, until),
                || {
                    let (this, shop, name) = (Arc::clone(self), shop.to_owned(), name.to_owned());
                    async move { this.refresh(&name, &shop).await }
                },
                || {
                    let (this, shop, name) = (Arc::clone(self), shop.to_owned(), name.to_owned());
                    async move { this.store.release_lease(&shop, &name, this.flight.holder()).await }
                },
            )
            .await?;
        refreshed.ok_or_else(|| OAuthError::Upstream(format!("another process is still refreshing the {name} token")))
    }

    /// Refreshes `shop`'s token under the lease. `None` when the stored token was replaced
    /// meanwhile (a refresh that lost its lease, a new connection): look again.
    async fn refresh(&self, name: &str, shop: &str) -> Result<Option<ProviderToken>, OAuthError> {
        let provider = self.provider(name)?;
        // Another process may have finished between our read and our lease.
        let stored = self.stored(shop, name).await?;
        if !self.expiring(&stored) {
            return Ok(Some(stored));
        }
        let Some(refresh_token) =
            stored.refresh_token.as_ref().map(|token| token.expose().to_owned()).filter(|token| !token.is_empty())
        else {
            return Err(OAuthError::Reconnect(name.to_owned()));
        };
        let refresh = RefreshToken::new(refresh_token.clone());
        let response = match provider.client.exchange_refresh_token(&refresh).request_async(&self.http).await {
            Ok(response) => response,
            Err(RequestTokenError::ServerResponse(error)) if *error.error() == BasicErrorResponseType::InvalidGrant => {
                if self.store.delete_refused(shop, name, &refresh_token, self.flight.holder()).await? {
                    tracing::warn!(shop, provider = name, "the provider refused the refresh token; token forgotten");
                    return Err(OAuthError::Reconnect(name.to_owned()));
                }
                // The refusal is about a token someone has replaced since, or the lease was
                // taken over: keep theirs.
                return Ok(None);
            }
            Err(error) => return Err(token_error(error)),
        };
        let fresh = self.token_from(shop, name, &response, Some(&stored));
        if self.store.save_refreshed(&refresh_token, &fresh, self.flight.holder()).await? {
            return Ok(Some(fresh));
        }
        // Someone replaced the token first, or this refresh outlasted its lease and another
        // process took it over: theirs wins, look again.
        Ok(None)
    }

    /// Calls the provider's API at `path` (below its API base URL) with a valid token of
    /// `shop`, as `Authorization: Bearer`, plus `headers` (a version header, say; an
    /// `Authorization` among them is ignored). `body`, when given, is sent as JSON. Answers the
    /// provider's response, whatever its status.
    pub async fn request(
        self: &Arc<Self>,
        shop: &str,
        provider: &str,
        method: &'static str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Res, OAuthError> {
        let config = &self.provider(provider)?.config;
        let base = config.api_base_url.as_deref().ok_or(OAuthError::Forbidden("the provider has no API base URL"))?;
        if !path.starts_with('/') || path.starts_with("//") || path.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(OAuthError::Forbidden("the path must be absolute, below the API base URL"));
        }
        let token = self.token(shop, provider).await?;
        let mut all_headers = vec![
            UpstreamRequest::header("Authorization", format!("Bearer {}", token.access_token.expose())),
            UpstreamRequest::header("Accept", "application/json"),
        ];
        if body.is_some() {
            all_headers.push(UpstreamRequest::header("Content-Type", "application/json"));
        }
        all_headers.extend(
            headers
                .iter()
                .filter(|(name, _)| !name.eq_ignore_ascii_case("authorization"))
                .map(|(name, value)| UpstreamRequest::header(name, *value)),
        );
        let request = UpstreamRequest {
            method,
            url: format!("{base}{path}"),
            headers: all_headers,
            body: body.map(Value::to_string).unwrap_or_default().into(),
        };
        self.http.0.send(request).await.map_err(|error| OAuthError::Upstream(error.to_string()))
    }

    /// Forgets the token `shop` holds for `provider`.
    pub async fn disconnect(&self, shop: &str, provider: &str) -> Result<(), OAuthError> {
        let name = &self.provider(provider)?.config.name;
        Ok(self.store.delete(shop, name).await?)
    }

    async fn stored(&self, shop: &str, provider: &str) -> Result<ProviderToken, OAuthError> {
        self.store.load(shop, provider).await?.ok_or_else(|| OAuthError::NotConnected(provider.to_owned()))
    }

    fn expiring(&self, token: &ProviderToken) -> bool {
        let now = self.clock.now();
        token.expires.is_some_and(|at| at <= after(now, REFRESH_MARGIN).unwrap_or(now))
    }

    /// The token from a token response; a refresh answer without a new refresh token or
    /// without a scope keeps the `previous` token's (RFC 6749, sections 5.1 and 6).
    fn token_from(
        &self,
        shop: &str,
        provider: &str,
        response: &ProviderTokenResponse,
        previous: Option<&ProviderToken>,
    ) -> ProviderToken {
        let scope = response
            .scopes()
            .map(|scopes| scopes.iter().map(|scope| scope.as_str()).collect::<Vec<_>>().join(" "))
            .or_else(|| previous.map(|token| token.scope.clone()))
            .unwrap_or_default();
        ProviderToken {
            shop: shop.to_owned(),
            provider: provider.to_owned(),
            access_token: response.access_token().secret().clone().into(),
            refresh_token: response
                .refresh_token()
                .map(|token| Secret::new(token.secret().clone()))
                .or_else(|| previous.and_then(|token| token.refresh_token.clone())),
            scope,
            // Clamped to MAX_LIFETIME, and added without overflow: past the calendar's end is
            // "never expires".
            expires: response.expires_in().and_then(|lifetime| after(self.clock.now(), lifetime)),
        }
    }
}

impl Provider {
    fn new(config: ProviderConfig, app_url: &str) -> Result<Self, OAuthError> {
        let invalid = |what: &'static str| {
            let provider = config.name.clone();
            move |error: oauth2::url::ParseError| OAuthError::Config { provider, what, error: error.to_string() }
        };
        let mut client: Client = oauth2::Client::new(ClientId::new(config.client_id.clone()))
            .set_auth_uri(AuthUrl::new(config.authorization_url.clone()).map_err(invalid("authorization URL"))?)
            .set_token_uri(TokenUrl::new(config.token_url.clone()).map_err(invalid("token URL"))?)
            .set_redirect_uri(
                RedirectUrl::new(format!("{app_url}{}", config.redirect_path)).map_err(invalid("redirect path"))?,
            )
            .set_auth_type(match config.client_auth {
                ClientAuth::Basic => AuthType::BasicAuth,
                ClientAuth::RequestBody => AuthType::RequestBody,
            });
        if let Some(secret) = &config.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
        }
        Ok(Self { config, client })
    }
}

/// `now + by`, or `None` past the calendar's end (no overflow, no panic).
fn after(now: OffsetDateTime, by: Duration) -> Option<OffsetDateTime> {
    time::Duration::try_from(by).ok().and_then(|by| now.checked_add(by))
}

/// An `oauth2` request error, without the response body (it may hold tokens).
fn token_error(error: RequestTokenError<TransportError, oauth2::basic::BasicErrorResponse>) -> OAuthError {
    match error {
        RequestTokenError::ServerResponse(response) => OAuthError::Rejected(response.error().as_ref().to_owned()),
        RequestTokenError::Request(error) => OAuthError::Upstream(error.to_string()),
        RequestTokenError::Parse(error, _body) => OAuthError::Upstream(format!("unreadable token response: {error}")),
        RequestTokenError::Other(detail) => OAuthError::Upstream(detail),
    }
}
