//! `verify_app_home_req`: the App Home page and the fetch requests it makes.

use std::cell::LazyCell;

use serde_json::Value;

use crate::shopify::ShopifyApp;
use crate::shopify::id_token::{self, Audience, ClaimError};
use crate::shopify::model::{IdTokenDetails, Log, Req, Res, ResultWithExchangeableIdToken};
use crate::shopify::protocol::{self, LINK_HEADER, RETRY_HEADER};
use crate::shopify::shop::name_of;
use crate::shopify::urls::{UrlParts, query_value, quote_all};

impl ShopifyApp {
    /// Verifies an App Home request: a document load carrying `id_token` in its query, or a
    /// fetch request carrying `Authorization: Bearer <id token>`.
    ///
    /// A document load without a usable token is redirected to `patch_id_token_path`, where
    /// App Bridge fetches a fresh token and comes back.
    pub fn verify_app_home_req(&self, req: &Req, patch_id_token_path: &str) -> ResultWithExchangeableIdToken {
        if patch_id_token_path.is_empty() {
            return failure(
                "configuration_error",
                "the patch-id-token page path is required",
                protocol::configuration_error(),
            );
        }
        if req.url.is_empty() {
            return failure("configuration_error", "the request URL is required", protocol::configuration_error());
        }
        let authorization = req.header("authorization").filter(|value| !value.is_empty());
        let is_fetch = authorization.is_some();
        // Only a document load reads its URL: parsed then, once.
        let url = LazyCell::new(|| UrlParts::parse(&req.url));
        let redirect = || patch_id_token_redirect(&url, patch_id_token_path);

        let token = match authorization {
            None => match query_value(&url.query, "id_token").filter(|token| !token.is_empty()) {
                Some(token) => token.into_owned(),
                None => {
                    return failure(
                        "redirect_to_patch_id_token_page",
                        "document request without a session token: bounce to the patch-id-token page",
                        redirect(),
                    );
                }
            },
            Some(value) => match value.strip_prefix("Bearer ") {
                None => {
                    return failure(
                        "invalid_id_token",
                        "the Authorization header is not a Bearer token",
                        protocol::unauthorized_retry(),
                    );
                }
                Some("") => {
                    return failure(
                        "missing_authorization_and_id_token",
                        "the Authorization header carries no token",
                        protocol::unauthorized(),
                    );
                }
                Some(token) => token.to_owned(),
            },
        };

        let claims = match id_token::decode(&token, &self.config, self.now_unix()) {
            Ok(claims) => claims,
            Err(_) if !is_fetch => {
                return failure(
                    "redirect_to_patch_id_token_page",
                    "the session token in the URL is not valid: bounce to the patch-id-token page",
                    redirect(),
                );
            }
            Err(error) => {
                return failure(error.code(), "the session token is not valid", protocol::unauthorized_retry());
            }
        };

        if claims.get("aud").and_then(Value::as_str).unwrap_or("") != self.config.client_id {
            let response = if is_fetch { protocol::unauthorized_retry() } else { protocol::unauthorized() };
            return failure("invalid_aud", "the session token was issued for another app", response);
        }

        // Only a staff member's token, issued by the admin of the shop it names, opens App Home:
        // a checkout or customer-account token is signed with the same secret.
        let domain = match id_token::check_audience(&claims, Audience::Staff) {
            Ok(dest) => dest.domain,
            Err(ClaimError::InvalidShop) => {
                return failure(
                    "invalid_shop",
                    "the session token's dest is not a myshopify.com shop's origin",
                    protocol::bad_request(),
                );
            }
            Err(error @ ClaimError::WrongSurface) => {
                let response = if is_fetch { protocol::unauthorized_retry() } else { protocol::unauthorized() };
                return failure(error.code(), "the session token was not issued by the shop's admin", response);
            }
        };
        let shop = name_of(&domain);
        let user_id = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
        let id_token = Some(IdTokenDetails { exchangeable: true, token: token.into(), claims });

        let (log, response, invalid_token_response) = if is_fetch {
            (
                Log::new("verified", "App Home fetch request verified"),
                Res::new(200, ""),
                Res::new(401, "").with_header(RETRY_HEADER, "1"),
            )
        } else {
            (
                Log::new("verified", "App Home document request verified; send the response headers with the page"),
                Res::new(200, "")
                    .with_header("Content-Security-Policy", protocol::frame_ancestors(&domain))
                    .with_header("Link", LINK_HEADER),
                redirect(),
            )
        };
        ResultWithExchangeableIdToken {
            ok: true,
            shop: Some(shop),
            log,
            response,
            user_id,
            id_token,
            invalid_token_response: Some(invalid_token_response),
        }
    }
}

/// The 302 to the patch-id-token page, carrying the current query (minus `id_token`) and the
/// path to come back to in `shopify-reload`.
fn patch_id_token_redirect(url: &UrlParts, patch_id_token_path: &str) -> Res {
    let clean_query = url
        .query
        .split('&')
        .filter(|piece| !piece.starts_with("id_token="))
        // Dropped like the empty pieces before them: the query never starts with `&`.
        .skip_while(|piece| piece.is_empty())
        .collect::<Vec<_>>()
        .join("&");
    let mut reload_path = url.path.clone();
    let mut location = [&url.scheme, "://", &url.netloc, patch_id_token_path, "?"].concat();
    if !clean_query.is_empty() {
        reload_path.push('?');
        reload_path.push_str(&clean_query);
        location.push_str(&clean_query);
        location.push('&');
    }
    location.push_str("shopify-reload=");
    location.push_str(&quote_all(&reload_path));
    Res::new(302, "").with_header("Location", location)
}

fn failure(code: &'static str, detail: &str, response: Res) -> ResultWithExchangeableIdToken {
    ResultWithExchangeableIdToken {
        ok: false,
        shop: None,
        log: Log::new(code, detail),
        response,
        user_id: None,
        id_token: None,
        invalid_token_response: None,
    }
}
