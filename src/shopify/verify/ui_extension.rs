//! The UI extension verifiers: `verify_checkout_ui_ext_req`,
//! `verify_customer_account_ui_ext_req`, `verify_admin_ui_ext_req` and
//! `verify_pos_ui_ext_req`. Each checks the `Authorization: Bearer <session token>` that an
//! extension sends to the app's backend, and answers CORS preflights.

use serde_json::Value;

use crate::shopify::ShopifyApp;
use crate::shopify::id_token::{self, Audience, ClaimError};
use crate::shopify::model::{
    IdTokenDetails, Log, Req, Res, ResultWithExchangeableIdToken, ResultWithNonExchangeableIdToken,
};
use crate::shopify::protocol::{self, REAUTHORIZE_HEADER, RETRY_HEADER};

/// The extension surfaces; their differences are data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    Checkout,
    CustomerAccount,
    Admin,
    Pos,
}

impl Surface {
    /// The surface's name, for log details.
    fn name(self) -> &'static str {
        match self {
            Self::Checkout => "Checkout UI Extension",
            Self::CustomerAccount => "Customer Account UI Extension",
            Self::Admin => "Admin UI Extension",
            Self::Pos => "POS UI Extension",
        }
    }

    /// Whether its tokens can be exchanged for access tokens (and whether the request URL is
    /// required).
    fn exchangeable(self) -> bool {
        matches!(self, Self::Admin | Self::Pos)
    }

    /// Who the surface's tokens are issued to: admin and POS tokens can be exchanged for the
    /// shop's access tokens, so a buyer's token must never pass there.
    fn audience(self) -> Audience {
        if self.exchangeable() { Audience::Staff } else { Audience::Buyer }
    }

    /// The header a preflight exposes to the extension.
    fn exposed_header(self) -> &'static str {
        match self {
            Self::Admin => RETRY_HEADER,
            _ => REAUTHORIZE_HEADER,
        }
    }

    /// The answer to a bad, expired or foreign token: the admin asks for a fresh token.
    fn rejection(self) -> Res {
        match self {
            Self::Admin => protocol::unauthorized_retry(),
            _ => protocol::unauthorized(),
        }
    }

    /// What to answer if Shopify later rejects a verified token (admin only, as in the
    /// reference).
    fn invalid_token_response(self) -> Option<Res> {
        (self == Self::Admin).then(|| Res::new(401, "").with_header(RETRY_HEADER, "1"))
    }
}

/// The outcome shared by the four verifiers, before it takes its result type.
struct Outcome {
    ok: bool,
    shop: Option<String>,
    log: Log,
    response: Res,
    id_token: Option<IdTokenDetails>,
}

impl Outcome {
    fn failure(code: &'static str, detail: &str, response: Res) -> Self {
        Self { ok: false, shop: None, log: Log::new(code, detail), response, id_token: None }
    }

    fn non_exchangeable(self) -> ResultWithNonExchangeableIdToken {
        ResultWithNonExchangeableIdToken {
            ok: self.ok,
            shop: self.shop,
            log: self.log,
            response: self.response,
            id_token: self.id_token,
        }
    }

    fn exchangeable(self, surface: Surface) -> ResultWithExchangeableIdToken {
        let user_id =
            self.id_token.as_ref().and_then(|token| token.claims.get("sub")).and_then(Value::as_str).map(str::to_owned);
        let invalid_token_response = self.id_token.as_ref().and_then(|_| surface.invalid_token_response());
        ResultWithExchangeableIdToken {
            ok: self.ok,
            shop: self.shop,
            log: self.log,
            response: self.response,
            user_id,
            id_token: self.id_token,
            invalid_token_response,
        }
    }
}

impl ShopifyApp {
    /// Verifies a request from a checkout UI extension; answers its CORS preflight.
    pub fn verify_checkout_ui_ext_req(&self, req: &Req) -> ResultWithNonExchangeableIdToken {
        self.verify_ui_extension(req, Surface::Checkout).non_exchangeable()
    }

    /// Verifies a request from a customer account UI extension; answers its CORS preflight.
    pub fn verify_customer_account_ui_ext_req(&self, req: &Req) -> ResultWithNonExchangeableIdToken {
        self.verify_ui_extension(req, Surface::CustomerAccount).non_exchangeable()
    }

    /// Verifies a request from an admin UI extension; answers its CORS preflight. A rejected
    /// token asks the extension for a fresh one (`X-Shopify-Retry-Invalid-Session-Request`).
    pub fn verify_admin_ui_ext_req(&self, req: &Req) -> ResultWithExchangeableIdToken {
        self.verify_ui_extension(req, Surface::Admin).exchangeable(Surface::Admin)
    }

    /// Verifies a request from a POS UI extension; answers its CORS preflight.
    pub fn verify_pos_ui_ext_req(&self, req: &Req) -> ResultWithExchangeableIdToken {
        self.verify_ui_extension(req, Surface::Pos).exchangeable(Surface::Pos)
    }

    /// The checks shared by the four surfaces.
    ///
    /// Unlike the reference, the token's `dest` must name a valid shop (otherwise `401`,
    /// `invalid_shop`, with the surface's token-rejection headers), and the returned shop is
    /// the lowercase shop name.
    fn verify_ui_extension(&self, req: &Req, surface: Surface) -> Outcome {
        if req.method.is_empty() {
            return Outcome::failure(
                "configuration_error",
                "the request method is required",
                protocol::configuration_error(),
            );
        }
        if surface.exchangeable() && req.url.is_empty() {
            return Outcome::failure(
                "configuration_error",
                "the request URL is required",
                protocol::configuration_error(),
            );
        }
        let origin = req.header("origin").unwrap_or_default();
        if req.method == "OPTIONS" && !origin.is_empty() && origin != req.url {
            return Outcome {
                ok: true,
                shop: None,
                log: Log::new("options_request", "CORS preflight: respond 204 No Content with these headers"),
                response: preflight(surface),
                id_token: None,
            };
        }
        let Some(authorization) = req.header("authorization") else {
            return Outcome::failure(
                "missing_authorization_header",
                "the Authorization header is missing: respond 401 Unauthorized",
                protocol::unauthorized(),
            );
        };
        let Some(token) = authorization.strip_prefix("Bearer ") else {
            return Outcome::failure(
                "invalid_id_token",
                "the Authorization header is not a Bearer token: respond 401 Unauthorized",
                surface.rejection(),
            );
        };
        let claims = match id_token::decode(token, &self.config, self.now_unix()) {
            Ok(claims) => claims,
            Err(error) => {
                return Outcome::failure(
                    error.code(),
                    "the session token is not valid: respond 401 Unauthorized",
                    surface.rejection(),
                );
            }
        };
        if claims.get("aud").and_then(Value::as_str) != Some(self.config.client_id.as_str()) {
            return Outcome::failure(
                "invalid_aud",
                "the session token was issued for another app: respond 401 Unauthorized",
                surface.rejection(),
            );
        }
        let dest = match id_token::check_audience(&claims, surface.audience()) {
            Ok(dest) => dest,
            Err(error) => {
                let detail = match error {
                    ClaimError::InvalidShop => {
                        "the session token's dest is not a myshopify.com shop: respond 401 Unauthorized"
                    }
                    ClaimError::WrongSurface => {
                        "the session token was not issued for this surface: respond 401 Unauthorized"
                    }
                };
                return Outcome::failure(error.code(), detail, surface.rejection());
            }
        };
        Outcome {
            ok: true,
            shop: Some(dest.shop()),
            log: Log::new("verified", format!("{} request verified", surface.name())),
            response: Res::new(200, ""),
            id_token: Some(IdTokenDetails { exchangeable: surface.exchangeable(), token: token.into(), claims }),
        }
    }
}

/// The `204` answer to a CORS preflight.
fn preflight(surface: Surface) -> Res {
    Res::new(204, "")
        .with_header("Access-Control-Max-Age", "7200")
        .with_header("Access-Control-Allow-Origin", "*")
        .with_header("Access-Control-Expose-Headers", surface.exposed_header())
        .with_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;
    use crate::shopify::testing::{NOW, app_with};

    fn app() -> ShopifyApp {
        app_with("api-key", None)
    }

    fn token(claims: Value) -> String {
        crate::shopify::testing::jwt();
        jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(b"hush"))
            .unwrap_or_else(|error| panic!("cannot sign: {error}"))
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> Req {
        Req {
            method: method.to_owned(),
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            url: "https://app.example.com/api/ext".to_owned(),
            body: Vec::new(),
        }
    }

    /// A staff member's token from the admin of `dest`.
    fn bearer(dest: &str) -> String {
        let iss = format!("{dest}/admin");
        let claims = json!({"iss": iss, "dest": dest, "aud": "api-key", "sub": "42", "exp": NOW + 60});
        format!("Bearer {}", token(claims))
    }

    #[test]
    fn each_surface_verifies_and_returns_its_shape() {
        let auth = bearer("https://S1.myshopify.com");
        let req = request("POST", &[("Authorization", &auth)]);
        let checkout = app().verify_checkout_ui_ext_req(&req);
        assert!(checkout.ok);
        assert_eq!(checkout.shop.as_deref(), Some("s1"));
        assert_eq!(checkout.id_token.map(|t| t.exchangeable), Some(false));
        let admin = app().verify_admin_ui_ext_req(&req);
        assert_eq!(admin.user_id.as_deref(), Some("42"));
        assert_eq!(admin.invalid_token_response, Some(Res::new(401, "").with_header(RETRY_HEADER, "1")));
        let pos = app().verify_pos_ui_ext_req(&req);
        assert!(pos.ok);
        assert_eq!(pos.invalid_token_response, None);
        assert_eq!(pos.id_token.map(|t| t.exchangeable), Some(true));
    }

    #[test]
    fn preflights_expose_the_surface_header() {
        let req = request("OPTIONS", &[("Origin", "https://extensions.shopifycdn.com")]);
        let admin = app().verify_admin_ui_ext_req(&req);
        assert_eq!(admin.response.status, 204);
        assert!(admin.ok);
        assert_eq!(admin.response.header("Access-Control-Expose-Headers"), Some(RETRY_HEADER));
        let checkout = app().verify_customer_account_ui_ext_req(&req);
        assert_eq!(checkout.response.header("Access-Control-Expose-Headers"), Some(REAUTHORIZE_HEADER));
        assert_eq!(checkout.response.header("Access-Control-Allow-Methods"), None);
        // Without an Origin it is an ordinary request.
        let req = request("OPTIONS", &[]);
        assert_eq!(app().verify_pos_ui_ext_req(&req).log.code, "missing_authorization_header");
    }

    #[test]
    fn rejections_carry_the_surface_headers() {
        let req = request("POST", &[("Authorization", "Token abc")]);
        let admin = app().verify_admin_ui_ext_req(&req);
        assert_eq!(admin.log.code, "invalid_id_token");
        assert_eq!(admin.response, protocol::unauthorized_retry());
        let pos = app().verify_pos_ui_ext_req(&req);
        assert_eq!(pos.response, protocol::unauthorized());

        let foreign = token(json!({"dest": "https://s1.myshopify.com", "aud": "other"}));
        let auth = format!("Bearer {foreign}");
        let req = request("POST", &[("authorization", &auth)]);
        assert_eq!(app().verify_checkout_ui_ext_req(&req).log.code, "invalid_aud");

        let expired = token(json!({"dest": "https://s1.myshopify.com", "aud": "api-key", "exp": NOW - 10}));
        let auth = format!("Bearer {expired}");
        let req = request("POST", &[("authorization", &auth)]);
        assert_eq!(app().verify_admin_ui_ext_req(&req).log.code, "expired_id_token");
    }

    #[test]
    fn a_dest_that_is_not_a_shop_is_refused() {
        for dest in ["", "https://evil.com", "http://s1.myshopify.com", "https://s1.myshopify.com.evil.com"] {
            let auth = bearer(dest);
            let req = request("POST", &[("Authorization", &auth)]);
            let admin = app().verify_admin_ui_ext_req(&req);
            assert_eq!(admin.log.code, "invalid_shop", "{dest:?}");
            assert_eq!(admin.response, protocol::unauthorized_retry());
            assert_eq!((admin.shop, admin.user_id, admin.id_token), (None, None, None));
            let checkout = app().verify_checkout_ui_ext_req(&req);
            assert_eq!(checkout.response, protocol::unauthorized());
        }
    }

    #[test]
    fn a_buyer_token_opens_only_the_buyer_surfaces() {
        let buyer = token(json!({"dest": "s1.myshopify.com", "aud": "api-key", "sub": "7", "exp": NOW + 60}));
        let auth = format!("Bearer {buyer}");
        let req = request("POST", &[("Authorization", &auth)]);
        assert_eq!(app().verify_checkout_ui_ext_req(&req).shop.as_deref(), Some("s1"));
        assert!(app().verify_customer_account_ui_ext_req(&req).ok);
        let admin = app().verify_admin_ui_ext_req(&req);
        assert_eq!((admin.ok, admin.log.code.as_ref()), (false, "invalid_id_token"));
        assert_eq!((admin.response, admin.id_token), (protocol::unauthorized_retry(), None));
        let pos = app().verify_pos_ui_ext_req(&req);
        assert_eq!((pos.ok, pos.response), (false, protocol::unauthorized()));
    }
}
