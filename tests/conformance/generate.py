#!/usr/bin/env python3
"""Generate the conformance corpus from Shopify's reference package.

Every case below is data: one call of one function of `shopifyapp` 1.0.2 (import name
`shopify_app`) on concrete input. The script plays each case through the installed reference
package under a frozen clock, recorded sleeps, a fixed backoff jitter and an httpx MockTransport
that serves the case's scripted upstream answers, then writes

    tests/conformance/cases/NNN-slug.json     the input (format: shared/reference/CONFORMANCE.md)
    tests/conformance/expected/NNN-slug.json  the reference outcome

The reference's prose (`log.detail`, `http_logs[].detail`) and its redacted request copies
(`log.req`, `http_logs[].req`) are not stored.

Usage (Python 3.11, in a venv with the pinned packages, see README.md):

    python tests/conformance/generate.py                    # (re)write the corpus
    python tests/conformance/generate.py --check-samples DIR  # replay DIR/cases, compare DIR/expected

The output is deterministic: re-running it rewrites byte-identical files.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import dataclasses
import datetime as _dt
import hashlib
import hmac
import json
import sys
import time as _time
import urllib.parse
import warnings
from pathlib import Path

import httpx
import jwt
import jwt.api_jwt
import jwt.warnings
from jwt import api_jws

import shopify_app
import shopify_app.utils.user_agent as _ua_mod
from shopify_app.exchange.client_credentials import exchange_using_client_credentials
from shopify_app.exchange.refresh_token import refresh_access_token
from shopify_app.graphql.admin_graphql import admin_graphql_request
from shopify_app.helpers.app_home_parent_redirect import app_home_parent_redirect
from shopify_app.helpers.app_home_patch_id_token import app_home_patch_id_token
from shopify_app.helpers.app_home_redirect import app_home_redirect
from shopify_app.verify.admin_ui_ext import verify_admin_ui_ext_req
from shopify_app.verify.app_home_req import verify_app_home_req
from shopify_app.verify.app_proxy import verify_app_proxy_req
from shopify_app.verify.checkout_ui_ext import verify_checkout_ui_ext_req
from shopify_app.verify.customer_account_ui_ext import verify_customer_account_ui_ext_req
from shopify_app.verify.flow_action import verify_flow_action_req
from shopify_app.verify.pos_ui_ext import verify_pos_ui_ext_req
from shopify_app.verify.webhook import verify_webhook_req

# `shopify_app.exchange` re-exports a *function* named token_exchange that shadows the submodule.
_te_mod = sys.modules["shopify_app.exchange.token_exchange"]
_rt_mod = sys.modules["shopify_app.exchange.refresh_token"]
_cc_mod = sys.modules["shopify_app.exchange.client_credentials"]
_gql_mod = sys.modules["shopify_app.graphql.admin_graphql"]
_proxy_mod = sys.modules["shopify_app.verify.app_proxy"]

PINNED = {"shopifyapp": "1.0.2", "PyJWT": "2.15.1", "httpx": "0.28.1"}
# The outgoing User-Agent names the interpreter version. It is pinned to the one the shared
# samples were made with, so that the corpus does not depend on the local Python micro version.
PINNED_PYTHON = (3, 11, 7)

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------------------------
# Constants shared by the cases
# ---------------------------------------------------------------------------------------------

NOW = 1750000000  # 2025-06-15T15:06:40Z
SHOP = "s1.myshopify.com"
CFG = {"client_id": "api-key", "client_secret": "hush", "old_client_secret": None}
CFG_ROT = {"client_id": "api-key", "client_secret": "hush", "old_client_secret": "old-hush"}
CFG_NO_ID = {"client_id": "", "client_secret": "hush", "old_client_secret": None}

REQ_FNS = {
    "verify_webhook_req", "verify_flow_action_req", "verify_app_proxy_req",
    "verify_checkout_ui_ext_req", "verify_customer_account_ui_ext_req",
    "verify_admin_ui_ext_req", "verify_pos_ui_ext_req", "verify_app_home_req",
    "app_home_patch_id_token", "app_home_parent_redirect", "app_home_redirect",
}
HTTP_FNS = {
    "exchange_using_token_exchange", "refresh_token_exchanged_access_token",
    "exchange_using_client_credentials", "admin_graphql_request",
}

DROP = object()  # marker: remove this claim / key


def iso(epoch: int) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# Signing helpers
# ---------------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims(**over):
    """The standard session-token claims, with overrides (DROP removes a claim)."""
    c = {
        "iss": "https://s1.myshopify.com/admin",
        "dest": "https://s1.myshopify.com",
        "aud": "api-key",
        "sub": "42",
        "exp": NOW + 60,
        "nbf": NOW - 5,
        "iat": NOW - 5,
        "jti": "jti-1",
        "sid": "sid-1",
    }
    for k, v in over.items():
        if v is DROP:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def jwt_sign(payload, secret="hush", alg="HS256", headers=None) -> str:
    """Sign with PyJWT's JWS layer; the payload is serialised compactly, keys in given order.

    The JWS layer (not jwt.encode) is used so that claim values PyJWT would refuse to encode
    (a numeric `sub`, a string `exp`, ...) can still be put into a correctly signed token.
    """
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    key = None if alg == "none" else secret
    return api_jws.encode(payload, key, algorithm=alg, headers=headers)


def jwt_raw(header: dict, payload, secret="hush") -> str:
    """Assemble an HS256-signed token with an arbitrary JSON header (one PyJWT refuses to emit)."""
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    signing_input = f"{h}.{b64url(p.encode())}"
    sig = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def body_hmac(body: str, secret="hush") -> str:
    return base64.b64encode(
        hmac.new(secret.encode(), body.encode("utf-8"), hashlib.sha256).digest()
    ).decode("ascii")


def proxy_signature(raw_query: str, secret="hush") -> str:
    """Shopify's app-proxy signature: decoded params except `signature`, sorted by key,
    `key=v1,v2` for repeated keys, concatenated without separator, HMAC-SHA256 lowercase hex."""
    grouped: dict[str, list[str]] = {}
    for k, v in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
        if k != "signature":
            grouped.setdefault(k, []).append(v)
    message = "".join(f"{k}={','.join(vs)}" for k, vs in sorted(grouped.items()))
    return hmac.new(secret.encode(), message.encode("utf-8"), hashlib.sha256).hexdigest()


def proxy_url(raw_query: str, secret="hush", sig=None) -> str:
    sig = proxy_signature(raw_query, secret) if sig is None else sig
    return f"https://{SHOP}/apps/my-app/page?{raw_query}&signature={sig}"


# ---------------------------------------------------------------------------------------------
# Case registry
# ---------------------------------------------------------------------------------------------

CASES: list[tuple[str, dict]] = []
CRASHES: list[tuple[str, dict]] = []  # inputs on which the reference raises; run, never written


def _build(fn, req, args, http, config, now, jitter):
    case = {"fn": fn, "config": copy.deepcopy(config), "now": now, "jitter": jitter}
    if fn in REQ_FNS:
        case["req"] = req
    case["args"] = args or {}
    if fn in HTTP_FNS:
        case["http"] = http or []
    return case


def add(slug, fn, req=None, args=None, http=None, config=CFG, now=NOW, jitter=0):
    CASES.append((slug, _build(fn, req, args, http, config, now, jitter)))


def crash(slug, fn, req=None, args=None, http=None, config=CFG, now=NOW, jitter=0):
    CRASHES.append((slug, _build(fn, req, args, http, config, now, jitter)))


_EMPTY = object()


def R(method="GET", headers=_EMPTY, url="https://app.example.com/", body=""):
    """A request input; `headers=None` is kept as null, a DROP value leaves the key out."""
    r = {"method": method, "headers": {} if headers is _EMPTY else headers, "url": url, "body": body}
    return {k: v for k, v in r.items() if v is not DROP}


# ---------------------------------------------------------------------------------------------
# 2. Webhook and Flow action (HMAC in header)
# ---------------------------------------------------------------------------------------------

HOOK_URL = "https://app.example.com/hook"
HOOK_BODY = '{"id":1,"name":"café"}'


def hook_req(headers, body=HOOK_BODY, method="POST", url=HOOK_URL):
    return R(method, headers, url, body)


def webhook_cases():
    fn = "verify_webhook_req"
    good = body_hmac(HOOK_BODY)
    std = {"X-Shopify-Shop-Domain": SHOP, "X-Shopify-Topic": "orders/create",
           "X-Shopify-Hmac-SHA256": good}
    add("webhook-valid", fn, hook_req(std))
    add("webhook-method-empty", fn, hook_req(std, method=""))
    add("webhook-method-not-string", fn, hook_req(std, method=5))
    add("webhook-method-missing", fn, hook_req(std, method=DROP))
    add("webhook-headers-not-dict", fn, hook_req([["X-Shopify-Hmac-SHA256", good]]))
    add("webhook-headers-null", fn, hook_req(None))
    add("webhook-body-not-string", fn, hook_req(std, body=None))
    add("webhook-body-missing", fn, hook_req(std, body=DROP))
    add("webhook-get-method", fn, hook_req(std, method="GET"))
    add("webhook-lowercase-post", fn, hook_req(std, method="post"))
    add("webhook-missing-hmac-header", fn,
        hook_req({"X-Shopify-Shop-Domain": SHOP, "X-Shopify-Topic": "orders/create"}))
    add("webhook-empty-hmac-header", fn, hook_req(std | {"X-Shopify-Hmac-SHA256": ""}))
    add("webhook-empty-x-header-shadows-unprefixed", fn,
        hook_req({"X-Shopify-Shop-Domain": SHOP, "X-Shopify-Hmac-SHA256": "",
                  "shopify-hmac-sha256": good}))
    add("webhook-unprefixed-headers-valid", fn,
        hook_req({"Shopify-Shop-Domain": SHOP, "Shopify-Topic": "orders/create",
                  "Shopify-Hmac-Sha256": good}))
    add("webhook-invalid-hmac", fn, hook_req(std | {"X-Shopify-Hmac-SHA256": "AAAA"}))
    add("webhook-hmac-other-body", fn, hook_req(std | {"X-Shopify-Hmac-SHA256": body_hmac("{}")}))
    add("webhook-hmac-trailing-space", fn, hook_req(std | {"X-Shopify-Hmac-SHA256": good + " "}))
    add("webhook-hmac-unpadded", fn, hook_req(std | {"X-Shopify-Hmac-SHA256": good.rstrip("=")}))
    add("webhook-hmac-hex-not-base64", fn, hook_req(std | {
        "X-Shopify-Hmac-SHA256": hmac.new(b"hush", HOOK_BODY.encode(), hashlib.sha256).hexdigest()}))
    add("webhook-rotation-old-secret-accepted", fn,
        hook_req(std | {"X-Shopify-Hmac-SHA256": body_hmac(HOOK_BODY, "old-hush")}), config=CFG_ROT)
    add("webhook-rotation-current-secret-accepted", fn, hook_req(std), config=CFG_ROT)
    add("webhook-old-secret-not-configured", fn,
        hook_req(std | {"X-Shopify-Hmac-SHA256": body_hmac(HOOK_BODY, "old-hush")}))
    add("webhook-old-secret-empty-string", fn,
        hook_req(std | {"X-Shopify-Hmac-SHA256": body_hmac(HOOK_BODY, "")}),
        config=CFG | {"old_client_secret": ""})
    add("webhook-no-shop-header", fn, hook_req({"X-Shopify-Hmac-SHA256": good}))
    add("webhook-unchecked-shop-header", fn,
        hook_req({"X-Shopify-Shop-Domain": "evil.com/x.myshopify.com", "X-Shopify-Hmac-SHA256": good}))
    add("webhook-lowercase-header-names", fn,
        hook_req({"x-shopify-shop-domain": SHOP, "x-shopify-hmac-sha256": good}))
    add("webhook-case-duplicate-later-wins-valid", fn,
        hook_req({"X-Shopify-Hmac-SHA256": "AAAA", "x-shopify-hmac-sha256": good,
                  "X-Shopify-Shop-Domain": SHOP}))
    add("webhook-case-duplicate-later-wins-invalid", fn,
        hook_req({"X-Shopify-Hmac-SHA256": good, "x-shopify-hmac-sha256": "AAAA",
                  "X-Shopify-Shop-Domain": SHOP}))
    add("webhook-empty-body-valid", fn,
        hook_req({"X-Shopify-Shop-Domain": SHOP, "X-Shopify-Hmac-SHA256": body_hmac("")}, body=""))
    add("webhook-url-missing-ignored", fn, hook_req(std, url=DROP))
    crash("webhook-non-ascii-hmac-header", fn, hook_req(std | {"X-Shopify-Hmac-SHA256": "é" + good}))


def flow_cases():
    fn = "verify_flow_action_req"
    good = body_hmac(HOOK_BODY)
    std = {"X-Shopify-Shop-Domain": SHOP, "X-Shopify-Hmac-SHA256": good}
    add("flow-valid", fn, hook_req(std))
    add("flow-invalid-hmac", fn, hook_req({"X-Shopify-Hmac-SHA256": body_hmac(HOOK_BODY, "nope")}))
    add("flow-method-empty", fn, hook_req(std, method=""))
    add("flow-headers-not-dict", fn, hook_req("X-Shopify-Hmac-SHA256: x"))
    add("flow-body-not-string", fn, hook_req(std, body={"id": 1}))
    add("flow-put-method", fn, hook_req(std, method="PUT"))
    add("flow-missing-hmac-header", fn, hook_req({"X-Shopify-Shop-Domain": SHOP}))
    add("flow-unprefixed-hmac-header-ignored", fn,
        hook_req({"X-Shopify-Shop-Domain": SHOP, "Shopify-Hmac-Sha256": good}))
    add("flow-unprefixed-shop-header-ignored", fn,
        hook_req({"Shopify-Shop-Domain": SHOP, "X-Shopify-Hmac-SHA256": good}))
    add("flow-rotation-old-secret-accepted", fn,
        hook_req(std | {"X-Shopify-Hmac-SHA256": body_hmac(HOOK_BODY, "old-hush")}), config=CFG_ROT)


# ---------------------------------------------------------------------------------------------
# 7. App proxy
# ---------------------------------------------------------------------------------------------


def proxy_cases():
    fn = "verify_app_proxy_req"
    q = f"shop={SHOP}&path_prefix=%2Fapps%2Fmy-app&timestamp={NOW}&logged_in_customer_id=7&extra=a+b"

    def P(url):
        return R("GET", {}, url, "")

    add("proxy-valid", fn, P(proxy_url(q)))
    add("proxy-url-empty", fn, P(""))
    add("proxy-url-missing", fn, R("GET", {}, DROP, ""))
    add("proxy-url-not-string", fn, P(7))
    add("proxy-multiple-shop", fn, P(proxy_url(f"shop={SHOP}&shop=s2.myshopify.com&timestamp={NOW}")))
    add("proxy-missing-timestamp", fn, P(proxy_url(f"shop={SHOP}")))
    add("proxy-invalid-timestamp-word", fn, P(proxy_url(f"shop={SHOP}&timestamp=abc")))
    add("proxy-invalid-timestamp-decimal", fn, P(proxy_url(f"shop={SHOP}&timestamp=1750000000.5")))
    add("proxy-invalid-timestamp-empty", fn, P(proxy_url(f"shop={SHOP}&timestamp=")))
    add("proxy-timestamp-python-int-syntax", fn,
        P(proxy_url(f"shop={SHOP}&timestamp=%20%2B1_750_000_000%20")))
    add("proxy-timestamp-90s-old", fn, P(proxy_url(f"shop={SHOP}&timestamp={NOW - 90}")))
    add("proxy-timestamp-91s-old", fn, P(proxy_url(f"shop={SHOP}&timestamp={NOW - 91}")))
    add("proxy-timestamp-90s-future", fn, P(proxy_url(f"shop={SHOP}&timestamp={NOW + 90}")))
    add("proxy-timestamp-91s-future", fn, P(proxy_url(f"shop={SHOP}&timestamp={NOW + 91}")))
    add("proxy-repeated-timestamp-first-used", fn,
        P(proxy_url(f"shop={SHOP}&timestamp={NOW}&timestamp=1")))
    add("proxy-unsigned-old-timestamp", fn,
        P(f"https://{SHOP}/apps/my-app/page?shop={SHOP}&timestamp={NOW - 3600}"))
    add("proxy-missing-signature", fn,
        P(f"https://{SHOP}/apps/my-app/page?shop={SHOP}&timestamp={NOW}"))
    sig = proxy_signature(f"shop={SHOP}&timestamp={NOW}")
    add("proxy-repeated-signature", fn,
        P(f"https://{SHOP}/apps/my-app/page?shop={SHOP}&timestamp={NOW}&signature={sig}&signature={sig}"))
    add("proxy-invalid-signature", fn, P(proxy_url(f"shop={SHOP}&timestamp={NOW}", sig="0" * 64)))
    add("proxy-uppercase-hex-signature", fn, P(proxy_url(f"shop={SHOP}&timestamp={NOW}", sig=sig.upper())))
    add("proxy-signature-wrong-secret", fn, P(proxy_url(f"shop={SHOP}&timestamp={NOW}", "wrong")))
    add("proxy-rotation-old-secret-accepted", fn,
        P(proxy_url(f"shop={SHOP}&timestamp={NOW}", "old-hush")), config=CFG_ROT)
    add("proxy-old-secret-not-configured", fn, P(proxy_url(f"shop={SHOP}&timestamp={NOW}", "old-hush")))
    add("proxy-logged-in-customer-id-empty", fn,
        P(proxy_url(f"shop={SHOP}&logged_in_customer_id=&timestamp={NOW}")))
    add("proxy-logged-in-customer-id-missing", fn, P(proxy_url(f"shop={SHOP}&timestamp={NOW}")))
    add("proxy-logged-in-customer-id-repeated", fn,
        P(proxy_url(f"shop={SHOP}&logged_in_customer_id=7&logged_in_customer_id=8&timestamp={NOW}")))
    add("proxy-no-shop-param", fn, P(proxy_url(f"timestamp={NOW}&path_prefix=%2Fapps%2Fx")))
    add("proxy-shop-only-suffix", fn, P(proxy_url(f"shop=.myshopify.com&timestamp={NOW}")))
    add("proxy-repeated-param-joined-with-comma", fn,
        P(proxy_url(f"shop={SHOP}&timestamp={NOW}&ids=1&ids=2&ids=3")))
    add("proxy-bare-key-and-empty-key", fn, P(proxy_url(f"shop={SHOP}&timestamp={NOW}&flag&=v")))
    add("proxy-semicolon-is-plain-char", fn, P(proxy_url(f"shop={SHOP}&timestamp={NOW}&a=1;b=2")))
    add("proxy-sort-codepoint-order", fn,
        P(proxy_url(f"shop={SHOP}&timestamp={NOW}&b=1&B=2&_=3&a=4&%C3%A9=5")))
    add("proxy-percent-and-plus-decoding", fn,
        P(proxy_url(f"shop={SHOP}&timestamp={NOW}&q=caf%C3%A9+au+lait%2B&bad=%FF")))
    add("proxy-method-and-headers-ignored", fn,
        R(None, "not-a-dict", proxy_url(f"shop={SHOP}&timestamp={NOW}"), None))
    later = NOW + 86400
    add("proxy-valid-other-clock", fn, P(proxy_url(f"shop={SHOP}&timestamp={later}")), now=later)
    add("proxy-other-clock-default-timestamp-too-old", fn, P(proxy_url(f"shop={SHOP}&timestamp={NOW}")), now=later)
    crash("proxy-non-ascii-signature", fn,
          P(f"https://{SHOP}/apps/my-app/page?shop={SHOP}&timestamp={NOW}&signature=%C3%A9"))


# ---------------------------------------------------------------------------------------------
# 3-5. Token verifiers: checkout, customer account, admin, POS
# ---------------------------------------------------------------------------------------------

EXT_URL = "https://app.example.com/api/ext"


def ext_req(auth=DROP, method="POST", url=EXT_URL, headers=None):
    h = {} if headers is None else dict(headers)
    if auth is not DROP:
        h["Authorization"] = auth
    return R(method, h, url, "")


def bearer(token):
    return f"Bearer {token}"


def jwt_edge_cases(prefix, fn, full=True):
    """The session-token decode edge cases, shared by the four extension verifiers."""
    add(f"{prefix}-valid", fn, ext_req(bearer(jwt_sign(claims()))))
    add(f"{prefix}-expired-now-minus-10", fn, ext_req(bearer(jwt_sign(claims(exp=NOW - 10)))))
    add(f"{prefix}-exp-now-minus-9-within-leeway", fn, ext_req(bearer(jwt_sign(claims(exp=NOW - 9)))))
    add(f"{prefix}-wrong-secret", fn, ext_req(bearer(jwt_sign(claims(), "wrong"))))
    add(f"{prefix}-wrong-aud", fn, ext_req(bearer(jwt_sign(claims(aud="other-app")))))
    add(f"{prefix}-rotation-old-secret-accepted", fn,
        ext_req(bearer(jwt_sign(claims(), "old-hush"))), config=CFG_ROT)
    add(f"{prefix}-expired-old-secret-reports-invalid", fn,
        ext_req(bearer(jwt_sign(claims(exp=NOW - 3600), "old-hush"))), config=CFG_ROT)
    if not full:
        return
    add(f"{prefix}-expired-current-secret-with-rotation", fn,
        ext_req(bearer(jwt_sign(claims(exp=NOW - 3600)))), config=CFG_ROT)
    add(f"{prefix}-iat-future-beyond-leeway", fn, ext_req(bearer(jwt_sign(claims(iat=NOW + 11)))))
    add(f"{prefix}-iat-future-within-leeway", fn, ext_req(bearer(jwt_sign(claims(iat=NOW + 10)))))
    add(f"{prefix}-nbf-future-beyond-leeway", fn, ext_req(bearer(jwt_sign(claims(nbf=NOW + 11)))))
    add(f"{prefix}-nbf-future-within-leeway", fn, ext_req(bearer(jwt_sign(claims(nbf=NOW + 10)))))
    add(f"{prefix}-alg-none", fn, ext_req(bearer(jwt_sign(claims(), alg="none"))))
    add(f"{prefix}-alg-hs512", fn, ext_req(bearer(jwt_sign(claims(), alg="HS512"))))
    add(f"{prefix}-aud-list", fn, ext_req(bearer(jwt_sign(claims(aud=["api-key"])))))
    add(f"{prefix}-numeric-string-exp", fn, ext_req(bearer(jwt_sign(claims(exp=str(NOW + 60))))))
    add(f"{prefix}-non-numeric-exp", fn, ext_req(bearer(jwt_sign(claims(exp="soon")))))
    add(f"{prefix}-float-exp", fn, ext_req(bearer(jwt_sign(claims(exp=NOW + 60.9)))))
    add(f"{prefix}-no-exp-never-expires", fn, ext_req(bearer(jwt_sign(claims(exp=DROP, nbf=DROP, iat=DROP)))))
    add(f"{prefix}-numeric-sub", fn, ext_req(bearer(jwt_sign(claims(sub=42)))))
    add(f"{prefix}-numeric-jti", fn, ext_req(bearer(jwt_sign(claims(jti=7)))))
    add(f"{prefix}-dest-uppercase-not-lowered", fn, ext_req(bearer(jwt_sign(claims(dest="https://S1.myshopify.com")))))
    add(f"{prefix}-dest-missing-shop-empty", fn, ext_req(bearer(jwt_sign(claims(dest=DROP)))))
    add(f"{prefix}-dest-http-scheme-kept", fn, ext_req(bearer(jwt_sign(claims(dest="http://s1.myshopify.com")))))
    tok = jwt_sign(claims())
    add(f"{prefix}-signature-one-pad-char", fn, ext_req(bearer(tok + "=")))
    add(f"{prefix}-signature-two-pad-chars", fn, ext_req(bearer(tok + "==")))
    add(f"{prefix}-token-two-segments", fn, ext_req(bearer(tok.rsplit(".", 1)[0])))
    add(f"{prefix}-token-garbage", fn, ext_req(bearer("not-a-jwt")))
    add(f"{prefix}-payload-not-object", fn, ext_req(bearer(jwt_sign([1, 2]))))
    add(f"{prefix}-header-kid-not-string", fn,
        ext_req(bearer(jwt_raw({"alg": "HS256", "kid": 5, "typ": "JWT"}, claims()))))
    add(f"{prefix}-header-crit-unsupported", fn,
        ext_req(bearer(jwt_raw({"alg": "HS256", "crit": ["exp"], "exp": 1, "typ": "JWT"}, claims()))))
    add(f"{prefix}-lowercase-bearer", fn, ext_req("bearer " + tok))
    add(f"{prefix}-bearer-empty-token", fn, ext_req("Bearer "))
    add(f"{prefix}-authorization-empty", fn, ext_req(""))
    add(f"{prefix}-bearer-two-spaces", fn, ext_req("Bearer  " + tok))


def ext_common(prefix, fn):
    """Config errors, preflight and header handling shared by the four extension verifiers."""
    tok = jwt_sign(claims())
    add(f"{prefix}-method-empty", fn, ext_req(bearer(tok), method=""))
    add(f"{prefix}-headers-not-dict", fn, R("POST", None, EXT_URL, ""))
    add(f"{prefix}-options-preflight", fn,
        ext_req(method="OPTIONS", headers={"Origin": "https://extensions.shopifycdn.com"}))
    add(f"{prefix}-options-without-origin", fn, ext_req(method="OPTIONS"))
    add(f"{prefix}-options-origin-equals-url", fn,
        ext_req(bearer(tok), method="OPTIONS", headers={"Origin": EXT_URL}))
    add(f"{prefix}-missing-authorization", fn, ext_req())
    add(f"{prefix}-not-bearer", fn, ext_req("Basic dXNlcjpwYXNz"))
    add(f"{prefix}-lowercase-authorization-key", fn, ext_req(headers={"authorization": bearer(tok)}))


def checkout_cases():
    fn = "verify_checkout_ui_ext_req"
    ext_common("checkout", fn)
    jwt_edge_cases("checkout", fn, full=True)
    add("checkout-options-url-missing", fn,
        ext_req(method="OPTIONS", headers={"Origin": "https://extensions.shopifycdn.com"}, url=DROP))
    add("checkout-empty-client-id-missing-aud", fn,
        ext_req(bearer(jwt_sign(claims(aud=DROP)))), config=CFG_NO_ID)
    add("checkout-missing-aud", fn, ext_req(bearer(jwt_sign(claims(aud=DROP)))))
    add("checkout-valid-other-clock", fn, ext_req(bearer(jwt_sign(claims(exp=NOW + 7200)))), now=NOW + 3600)
    add("checkout-expired-other-clock", fn, ext_req(bearer(jwt_sign(claims()))), now=NOW + 3600)
    crash("checkout-non-string-dest", fn, ext_req(bearer(jwt_sign(claims(dest=5)))))


def customer_account_cases():
    fn = "verify_customer_account_ui_ext_req"
    ext_common("customer-account", fn)
    jwt_edge_cases("customer-account", fn, full=False)
    add("customer-account-empty-client-id-missing-aud", fn,
        ext_req(bearer(jwt_sign(claims(aud=DROP)))), config=CFG_NO_ID)


def admin_cases():
    fn = "verify_admin_ui_ext_req"
    ext_common("admin-ext", fn)
    jwt_edge_cases("admin-ext", fn, full=False)
    tok = jwt_sign(claims())
    add("admin-ext-url-empty", fn, ext_req(bearer(tok), url=""))
    add("admin-ext-url-missing", fn, ext_req(bearer(tok), url=DROP))
    add("admin-ext-iat-future", fn, ext_req(bearer(jwt_sign(claims(iat=NOW + 11)))))
    add("admin-ext-alg-none", fn, ext_req(bearer(jwt_sign(claims(), alg="none"))))
    add("admin-ext-aud-list", fn, ext_req(bearer(jwt_sign(claims(aud=["api-key"])))))
    add("admin-ext-sub-missing-user-id-null", fn, ext_req(bearer(jwt_sign(claims(sub=DROP)))))
    add("admin-ext-empty-client-id-missing-aud", fn,
        ext_req(bearer(jwt_sign(claims(aud=DROP)))), config=CFG_NO_ID)
    add("admin-ext-dest-uppercase", fn, ext_req(bearer(jwt_sign(claims(dest="https://S1.myshopify.com")))))


def pos_cases():
    fn = "verify_pos_ui_ext_req"
    ext_common("pos", fn)
    jwt_edge_cases("pos", fn, full=False)
    tok = jwt_sign(claims())
    add("pos-url-empty", fn, ext_req(bearer(tok), url=""))
    add("pos-nbf-future", fn, ext_req(bearer(jwt_sign(claims(nbf=NOW + 11)))))
    add("pos-alg-hs512", fn, ext_req(bearer(jwt_sign(claims(), alg="HS512"))))
    add("pos-empty-client-id-missing-aud", fn,
        ext_req(bearer(jwt_sign(claims(aud=DROP)))), config=CFG_NO_ID)


# ---------------------------------------------------------------------------------------------
# 6. App home
# ---------------------------------------------------------------------------------------------

HOME = "https://app.example.com/home?embedded=1&host=YWRtaW4&locale=en&shop=s1.myshopify.com&timestamp=1750000000"
PATCH_PATH = {"app_home_patch_id_token_path": "/auth/patch-id-token"}


def app_home_cases():
    fn = "verify_app_home_req"
    tok = jwt_sign(claims())

    def H(url=HOME, headers=None):
        return R("GET", headers or {}, url, "")

    add("home-path-not-string", fn, H(), {"app_home_patch_id_token_path": None})
    add("home-path-empty", fn, H(), {"app_home_patch_id_token_path": ""})
    add("home-path-absent-defaults-empty", fn, H(), {})
    add("home-url-empty", fn, H(url=""), PATCH_PATH)
    add("home-url-missing", fn, H(url=DROP), PATCH_PATH)
    add("home-headers-not-dict", fn, R("GET", None, HOME, ""), PATCH_PATH)
    add("home-doc-no-token-redirect", fn, H(), PATCH_PATH)
    add("home-doc-empty-id-token-redirect", fn, H(HOME + "&id_token="), PATCH_PATH)
    add("home-doc-empty-authorization-is-document", fn, H(headers={"Authorization": ""}), PATCH_PATH)
    add("home-doc-valid-id-token", fn, H(HOME + f"&id_token={tok}&x=%2F%20+y#frag"), PATCH_PATH)
    add("home-doc-id-token-first-in-query", fn,
        H(f"https://app.example.com/home?id_token={tok}&shop={SHOP}"), PATCH_PATH)
    add("home-doc-repeated-id-token-first-used", fn,
        H(HOME + f"&id_token={tok}&id_token=garbage"), PATCH_PATH)
    add("home-doc-expired-redirect", fn, H(HOME + f"&id_token={jwt_sign(claims(exp=NOW - 10))}"), PATCH_PATH)
    add("home-doc-wrong-secret-redirect", fn, H(HOME + f"&id_token={jwt_sign(claims(), 'wrong')}"), PATCH_PATH)
    add("home-doc-garbage-token-redirect", fn, H(HOME + "&id_token=abc.def"), PATCH_PATH)
    add("home-doc-wrong-aud-no-redirect", fn,
        H(HOME + f"&id_token={jwt_sign(claims(aud='other-app'))}"), PATCH_PATH)
    add("home-doc-exp-now-minus-9-valid", fn, H(HOME + f"&id_token={jwt_sign(claims(exp=NOW - 9))}"), PATCH_PATH)
    add("home-doc-rotation-old-secret", fn,
        H(HOME + f"&id_token={jwt_sign(claims(), 'old-hush')}"), PATCH_PATH, config=CFG_ROT)
    add("home-fetch-valid", fn, H(headers={"Authorization": bearer(tok)}), PATCH_PATH)
    add("home-fetch-not-bearer", fn, H(headers={"Authorization": "Token " + tok}), PATCH_PATH)
    add("home-fetch-bearer-empty", fn, H(headers={"Authorization": "Bearer "}), PATCH_PATH)
    add("home-fetch-expired", fn,
        H(headers={"Authorization": bearer(jwt_sign(claims(exp=NOW - 10)))}), PATCH_PATH)
    add("home-fetch-expired-old-secret-reports-invalid", fn,
        H(headers={"Authorization": bearer(jwt_sign(claims(exp=NOW - 100), "old-hush"))}), PATCH_PATH,
        config=CFG_ROT)
    add("home-fetch-wrong-secret", fn,
        H(headers={"Authorization": bearer(jwt_sign(claims(), "wrong"))}), PATCH_PATH)
    add("home-fetch-iat-future", fn,
        H(headers={"Authorization": bearer(jwt_sign(claims(iat=NOW + 11)))}), PATCH_PATH)
    add("home-fetch-alg-hs512", fn,
        H(headers={"Authorization": bearer(jwt_sign(claims(), alg="HS512"))}), PATCH_PATH)
    add("home-fetch-wrong-aud", fn,
        H(headers={"Authorization": bearer(jwt_sign(claims(aud=["api-key"])))}), PATCH_PATH)
    add("home-fetch-wins-over-id-token-param", fn,
        H(HOME + "&id_token=garbage", headers={"Authorization": bearer(tok)}), PATCH_PATH)
    add("home-doc-dest-mixed-case-lowered", fn,
        H(HOME + f"&id_token={jwt_sign(claims(dest='https://S1.MyShopify.com:443'))}"), PATCH_PATH)
    add("home-doc-dest-empty", fn, H(HOME + f"&id_token={jwt_sign(claims(dest=''))}"), PATCH_PATH)
    add("home-fetch-dest-without-scheme", fn,
        H(headers={"Authorization": bearer(jwt_sign(claims(dest='S1.myshopify.com')))}), PATCH_PATH)
    add("home-fetch-empty-client-id-missing-aud", fn,
        H(headers={"Authorization": bearer(jwt_sign(claims(aud=DROP)))}), PATCH_PATH, config=CFG_NO_ID)
    # patch-page redirect URL construction
    add("home-redirect-root-path-no-query", fn, H("https://app.example.com/"), PATCH_PATH)
    add("home-redirect-no-path", fn, H("https://app.example.com"), PATCH_PATH)
    add("home-redirect-strips-id-token-keeps-encoding", fn,
        H("https://app.example.com/a/b?x=%2F%20+y&id_token=junk&z=%E2%9C%93&empty="), PATCH_PATH)
    add("home-redirect-bare-id-token-kept", fn,
        H("https://app.example.com/home?id_token&shop=s1.myshopify.com"), PATCH_PATH)
    add("home-redirect-port-userinfo-params-fragment", fn,
        H("https://user:pw@app.example.com:8443/p;v=1?shop=s1.myshopify.com#frag"),
        {"app_home_patch_id_token_path": "/patch"})
    add("home-redirect-only-id-token", fn, H("https://app.example.com/home?id_token=&"), PATCH_PATH)
    add("home-redirect-path-inserted-as-given", fn, H(HOME),
        {"app_home_patch_id_token_path": "auth/patch?x=1"})
    crash("home-doc-null-dest", fn, H(HOME + f"&id_token={jwt_sign(claims(dest=None))}"), PATCH_PATH)


# ---------------------------------------------------------------------------------------------
# 8. App home helpers
# ---------------------------------------------------------------------------------------------


def patch_page_cases():
    fn = "app_home_patch_id_token"
    base = "https://app.example.com/auth/patch-id-token"

    def G(url):
        return R("GET", {}, url, "")

    add("patch-page-valid", fn, G(f"{base}?shop={SHOP}&shopify-reload=%2Fhome%3Fa%3D1"))
    add("patch-page-missing-client-id", fn, G(f"{base}?shop={SHOP}&shopify-reload=%2Fhome"), config=CFG_NO_ID)
    add("patch-page-url-empty", fn, G(""))
    add("patch-page-url-missing", fn, R("GET", {}, DROP, ""))
    add("patch-page-missing-shop", fn, G(f"{base}?shopify-reload=%2Fhome"))
    add("patch-page-blank-shop", fn, G(f"{base}?shop=&shopify-reload=%2Fhome"))
    add("patch-page-missing-reload", fn, G(f"{base}?shop={SHOP}"))
    add("patch-page-blank-reload", fn, G(f"{base}?shop={SHOP}&shopify-reload="))
    add("patch-page-csp-injection-via-shop", fn,
        G(f"{base}?shop=evil.com%3B%20script-src%20*&shopify-reload=%2Fhome"))
    add("patch-page-crlf-in-shop", fn, G(f"{base}?shop=s1.myshopify.com%0D%0AX-Evil:%201&shopify-reload=%2F"))
    add("patch-page-repeated-shop-first-used", fn,
        G(f"{base}?shop=&shop=s2.myshopify.com&shop={SHOP}&shopify-reload=%2F"))
    add("patch-page-client-id-inserted-raw", fn, G(f"{base}?shop={SHOP}&shopify-reload=%2F"),
        config=CFG | {"client_id": 'k"><b>'})
    add("patch-page-method-and-headers-ignored", fn,
        R(None, None, f"{base}?shop={SHOP}&shopify-reload=%2F", None))


def parent_redirect_cases():
    fn = "app_home_parent_redirect"
    url = "https://app.example.com/home?shop=s1.myshopify.com&id_token=abc"

    def D(headers=None, u=url):
        return R("GET", headers or {}, u, "")

    add("parent-redirect-document", fn, D(), {"redirect_url": "https://example.com/a?b=1&c=<x>", "shop": "s1"})
    add("parent-redirect-headers-not-dict", fn, R("GET", None, url, ""),
        {"redirect_url": "https://example.com/", "shop": "s1"})
    add("parent-redirect-url-empty", fn, D(u=""), {"redirect_url": "https://example.com/", "shop": "s1"})
    add("parent-redirect-url-missing", fn, R("GET", {}, DROP, ""),
        {"redirect_url": "https://example.com/", "shop": "s1"})
    add("parent-redirect-target-blank", fn, D(),
        {"redirect_url": "https://example.com/x", "shop": "s1", "target": "_blank"})
    add("parent-redirect-target-top-explicit", fn, D(),
        {"redirect_url": "https://example.com/x", "shop": "s1", "target": "_top"})
    add("parent-redirect-invalid-target", fn, D(),
        {"redirect_url": "https://example.com/x", "shop": "s1", "target": "_self"})
    add("parent-redirect-invalid-target-before-scheme-check", fn, D(),
        {"redirect_url": "javascript:alert(1)", "shop": "s1", "target": "_parent"})
    add("parent-redirect-javascript-scheme", fn, D(), {"redirect_url": "javascript:alert(1)", "shop": "s1"})
    add("parent-redirect-relative-url-rejected", fn, D(), {"redirect_url": "/dashboard", "shop": "s1"})
    add("parent-redirect-uppercase-scheme-ok", fn, D(), {"redirect_url": "HTTP://example.com/up", "shop": "s1"})
    add("parent-redirect-fetch", fn, D({"Authorization": "Bearer t"}),
        {"redirect_url": "https://example.com/a?b=1", "shop": "s1"})
    add("parent-redirect-fetch-empty-authorization", fn, D({"authorization": ""}),
        {"redirect_url": "https://example.com/a", "shop": "s1"})
    add("parent-redirect-admin-param-stripping", fn, D(),
        {"redirect_url": "HTTPS://Admin.Shopify.com:443/store/s1/apps?shop=s1&hmac=x&host=h&embedded=1"
                         "&appLoadId=9&keep=a+b&keep=c&locale=en#frag", "shop": "s1"})
    add("parent-redirect-myshopify-param-stripping-fetch", fn, D({"Authorization": "Bearer t"}),
        {"redirect_url": "https://user:pw@s1.myshopify.com:8443/admin?x=1&id_token=t&session=s"
                         "&timestamp=1&protocol=p", "shop": "s1"})
    add("parent-redirect-all-params-stripped", fn, D(),
        {"redirect_url": "https://admin.shopify.com/store/s1/apps/x?shop=s1&host=h", "shop": "s1"})
    add("parent-redirect-admin-no-query-unchanged", fn, D(),
        {"redirect_url": "https://Admin.Shopify.com:443/store/s1/apps#f", "shop": "s1"})
    add("parent-redirect-other-host-unchanged", fn, D(),
        {"redirect_url": "https://example.com/cb?shop=s1&hmac=x&id_token=t", "shop": "s1"})
    add("parent-redirect-case-sensitive-param-names", fn, D(),
        {"redirect_url": "https://admin.shopify.com/x?Shop=S&HMAC=h&q=%2F%20", "shop": "s1"})
    add("parent-redirect-js-escaping", fn, D(),
        {"redirect_url": "https://example.com/p?q=\"'&x=\\é\u2028\U0001F600</script>", "shop": "s1"})
    add("parent-redirect-shop-unvalidated", fn, D(),
        {"redirect_url": "https://example.com/", "shop": "evil.com; script-src *"})


def redirect_cases():
    fn = "app_home_redirect"
    url = "https://app.example.com/x?shop=s1.myshopify.com&host=abc&id_token=TOK&a=1&a=2&sp=x+y%2Fz"

    def D(headers=None, u=url):
        return R("GET", headers or {}, u, "")

    add("redirect-fetch", fn, D({"Authorization": "Bearer t"}), {"redirect_url": "/dashboard", "shop": "s1"})
    add("redirect-headers-not-dict", fn, R("GET", None, url, ""), {"redirect_url": "/d", "shop": "s1"})
    add("redirect-url-empty", fn, D(u=""), {"redirect_url": "/d", "shop": "s1"})
    add("redirect-url-missing", fn, R("GET", {}, DROP, ""), {"redirect_url": "/d", "shop": "s1"})
    for slug, target in [
        ("empty", ""), ("absolute", "https://evil.com/"), ("protocol-relative", "//evil.com"),
        ("backslash", "/\\evil.com"), ("tab", "/a\tb"), ("newline", "/a\nb"), ("cr", "/a\rb"),
        ("no-leading-slash", "dashboard"),
    ]:
        add(f"redirect-invalid-{slug}", fn, D(), {"redirect_url": target, "shop": "s1"})
    add("redirect-document-merges-and-forwards-id-token", fn, D(),
        {"redirect_url": "/dashboard?a=9&new=1#sec", "shop": "s1"})
    add("redirect-fetch-merge-example", fn, D({"Authorization": "Bearer t"}),
        {"redirect_url": "/dashboard?a=9&new=1#sec", "shop": "s1"})
    add("redirect-bounce", fn, D({"Authorization": "Bearer t", "X-Shopify-Bounce": "1"}),
        {"redirect_url": "/dashboard?tab=<1>", "shop": "s1"})
    add("redirect-bounce-empty-values", fn, D({"authorization": "", "x-shopify-bounce": ""}),
        {"redirect_url": "/d", "shop": "s1"})
    add("redirect-bounce-without-authorization-is-document", fn, D({"X-Shopify-Bounce": "1"}),
        {"redirect_url": "/d", "shop": "s1"})
    add("redirect-document-no-request-query", fn, D(u="https://app.example.com/x"),
        {"redirect_url": "/", "shop": "s1"})
    add("redirect-params-dropped-spaces-raw", fn, D(u="https://app.example.com/x"),
        {"redirect_url": "/a b;p=1?c=d e&blank=", "shop": "s1"})
    add("redirect-percent-2f-and-space-not-checked", fn, D(u="https://app.example.com/x?z=1"),
        {"redirect_url": "/%2F%2Fevil.com x", "shop": "s1"})
    add("redirect-shop-unvalidated", fn, D(u="https://app.example.com/x"),
        {"redirect_url": "/d", "shop": "evil.com; script-src *"})


# ---------------------------------------------------------------------------------------------
# 9. OAuth endpoint functions
# ---------------------------------------------------------------------------------------------

ID_TOKEN = {"exchangeable": True, "token": "ID.TOKEN.VALUE",
            "claims": {"dest": "https://s1.myshopify.com", "aud": "api-key", "sub": "42"}}
TE_OFFLINE_OK = {"status": 200, "headers": {"X-Request-Id": "r1"},
                 "json": {"access_token": "shpat_abc", "scope": "write_products", "expires_in": 3600,
                          "refresh_token": "shprt_def", "refresh_token_expires_in": 7776000}}
TE_ONLINE_OK = {"status": 200, "json": {
    "access_token": "shpua_on", "scope": "write_products", "expires_in": 86399,
    "associated_user_scope": "read_products",
    "associated_user": {"id": 902541635, "first_name": "John", "last_name": "Smith",
                        "email": "john@example.com", "email_verified": True, "account_owner": True,
                        "locale": "en", "collaborator": False}}}
INVALID_TOKEN_RES = {"status": 401, "body": "",
                     "headers": {"X-Shopify-Retry-Invalid-Session-Request": "1"}}


def idt(**claims_over):
    c = dict(ID_TOKEN["claims"])
    for k, v in claims_over.items():
        if v is DROP:
            c.pop(k, None)
        else:
            c[k] = v
    return {"exchangeable": True, "token": "ID.TOKEN.VALUE", "claims": c}


def token_exchange_cases():
    fn = "exchange_using_token_exchange"
    ok = [TE_OFFLINE_OK]
    off = {"access_mode": "offline", "id_token": ID_TOKEN}
    add("te-offline-expiring", fn, args=off, http=ok)
    # validation
    add("te-empty-client-id", fn, args=off, http=ok, config=CFG_NO_ID)
    add("te-access-mode-empty", fn, args=off | {"access_mode": ""}, http=ok)
    add("te-access-mode-invalid", fn, args=off | {"access_mode": "Offline"}, http=ok)
    add("te-online-not-expiring", fn, args={"access_mode": "online", "id_token": ID_TOKEN,
                                              "expiring": False}, http=ok)
    add("te-id-token-missing", fn, args={"access_mode": "offline"}, http=ok)
    add("te-id-token-string", fn, args={"access_mode": "offline", "id_token": "ID.TOKEN.VALUE"}, http=ok)
    add("te-id-token-not-exchangeable", fn, args=off | {"id_token": ID_TOKEN | {"exchangeable": False}}, http=ok)
    add("te-id-token-token-empty", fn, args=off | {"id_token": ID_TOKEN | {"token": ""}}, http=ok)
    add("te-id-token-token-not-string", fn, args=off | {"id_token": ID_TOKEN | {"token": 5}}, http=ok)
    add("te-dest-missing", fn, args=off | {"id_token": idt(dest=DROP)}, http=ok)
    add("te-dest-empty", fn, args=off | {"id_token": idt(dest="")}, http=ok)
    for slug, dest in [
        ("leading-hyphen", "https://-s1.myshopify.com"), ("underscore", "https://s_1.myshopify.com"),
        ("subdomain", "https://a.b.myshopify.com"), ("trailing-slash", "https://s1.myshopify.com/"),
        ("suffix-attack", "https://s1.myshopify.com.evil.com"), ("other-domain", "https://evil.com"),
    ]:
        add(f"te-dest-invalid-{slug}", fn, args=off | {"id_token": idt(dest=dest)}, http=ok)
    add("te-dest-without-scheme", fn, args=off | {"id_token": idt(dest="s1.myshopify.com")}, http=ok)
    add("te-dest-http-scheme-quirk", fn, args=off | {"id_token": idt(dest="http://s1.myshopify.com")}, http=ok)
    add("te-dest-xhttps-quirk", fn, args=off | {"id_token": idt(dest="xhttps://s1.myshopify.com")}, http=ok)
    # success variants
    add("te-offline-not-expiring", fn, args=off | {"expiring": False},
        http=[{"status": 200, "json": {"access_token": "shpat_forever", "scope": "write_products"}}])
    add("te-online-with-user", fn, args={"access_mode": "online", "id_token": ID_TOKEN}, http=[TE_ONLINE_OK])
    add("te-online-user-defaults", fn, args={"access_mode": "online", "id_token": ID_TOKEN},
        http=[{"status": 200, "json": {"access_token": "shpua_x", "expires_in": 60,
                                       "associated_user": {"id": 5}}}])
    add("te-online-without-user", fn, args={"access_mode": "online", "id_token": ID_TOKEN},
        http=[{"status": 200, "json": {"access_token": "shpua_x", "expires_in": 60, "associated_user": None}}])
    add("te-offline-ignores-associated-user", fn, args=off, http=[TE_ONLINE_OK])
    add("te-success-minimal-body", fn, args=off, http=[{"status": 200, "json": {}}])
    add("te-success-expires-in-zero-and-null", fn, args=off,
        http=[{"status": 200, "json": {"access_token": "a", "expires_in": 0,
                                       "refresh_token_expires_in": None, "refresh_token": None}}])
    add("te-success-non-ascii-body-kept", fn, args=off,
        http=[{"status": 200, "json": {"access_token": "a", "scope": "café", "expires_in": 10}}])
    add("te-invalid-token-response-passed-on-success", fn, args=off | {"invalid_token_response": INVALID_TOKEN_RES},
        http=ok)
    # rate limiting
    add("te-429-then-success", fn, args=off, http=[{"status": 429}, TE_OFFLINE_OK])
    add("te-429-retry-after-ignored", fn, args=off,
        http=[{"status": 429, "headers": {"Retry-After": "7"}, "body": "slow down"}, TE_OFFLINE_OK])
    add("te-429-twice-then-success", fn, args=off, http=[{"status": 429}, {"status": 429}, TE_OFFLINE_OK])
    add("te-429-three-times", fn, args=off,
        http=[{"status": 429}, {"status": 429, "headers": {"Retry-After": "2"}}, {"status": 429}])
    # error responses
    sub_err = {"status": 400, "json": {"error": "invalid_subject_token",
                                       "error_description": "token invalid"}}
    add("te-invalid-subject-token-default-response", fn, args=off, http=[sub_err])
    add("te-invalid-subject-token-with-invalid-token-response", fn,
        args=off | {"invalid_token_response": INVALID_TOKEN_RES}, http=[sub_err])
    add("te-invalid-subject-token-partial-response-dict", fn,
        args=off | {"invalid_token_response": {"status": 302}}, http=[sub_err])
    add("te-invalid-client", fn, args=off, http=[{"status": 401, "json": {"error": "invalid_client"}}])
    add("te-other-error", fn, args=off, http=[{"status": 400, "json": {"error": "invalid_scope",
                                                                       "client_secret": "x"}}])
    add("te-500-non-json-no-retry", fn, args=off, http=[{"status": 500, "body": "<html>oops</html>"}, TE_OFFLINE_OK])
    add("te-503-no-retry", fn, args=off, http=[{"status": 503, "json": {"errors": "unavailable"}}])
    add("te-302-not-followed", fn, args=off,
        http=[{"status": 302, "headers": {"Location": "https://accounts.shopify.com/"}}])
    add("te-429-then-invalid-client", fn, args=off,
        http=[{"status": 429}, {"status": 400, "json": {"error": "invalid_client"}}])
    add("te-offline-expiring-other-clock", fn, args=off, http=ok, now=1767225599)
    add("te-script-exhausted-599", fn, args=off, http=[])
    # network
    for kind in ("connect", "timeout", "read"):
        add(f"te-network-{kind}", fn, args=off, http=[{"raise": kind}, TE_OFFLINE_OK])
    add("te-429-then-network-error", fn, args=off, http=[{"status": 429}, {"raise": "connect"}])
    crash("te-200-not-json", fn, args=off, http=[{"status": 200, "body": "not json"}])
    crash("te-200-json-array", fn, args=off, http=[{"status": 200, "json": [1]}])
    crash("te-error-body-json-array", fn, args=off, http=[{"status": 400, "json": ["invalid_client"]}])
    crash("te-expires-in-not-numeric", fn, args=off,
          http=[{"status": 200, "json": {"access_token": "a", "expires_in": "3600"}}])


STORED = {"shop": "s1", "access_mode": "offline", "token": "shpat_old", "scope": "s",
          "expires": "2025-06-15T15:07:40Z", "refresh_token": "shprt_old",
          "refresh_token_expires": "2025-09-01T00:00:00Z", "user": None}
RT_OK = {"status": 200, "json": {"access_token": "shpat_new", "expires_in": 3600, "scope": "s2",
                                 "refresh_token": "shprt_new", "refresh_token_expires_in": 7776000}}


def refresh_cases():
    fn = "refresh_token_exchanged_access_token"

    def A(**over):
        t = dict(STORED)
        for k, v in over.items():
            if v is DROP:
                t.pop(k, None)
            else:
                t[k] = v
        return {"access_token": t}

    ok = [RT_OK]
    add("refresh-within-60s-refreshes", fn, args=A(), http=ok)
    add("refresh-expired-refreshes", fn, args=A(expires=iso(NOW - 3600)), http=ok)
    add("refresh-exactly-60s-refreshes", fn, args=A(expires=iso(NOW + 60)), http=ok)
    add("refresh-token-still-valid-61s", fn, args=A(expires=iso(NOW + 61)), http=ok)
    add("refresh-token-still-valid-offset-format", fn, args=A(expires="2025-06-15T17:10:00+02:00"), http=ok)
    add("refresh-refresh-token-expired", fn, args=A(refresh_token_expires=iso(NOW - 1)), http=ok)
    add("refresh-refresh-token-expires-exactly-now", fn, args=A(refresh_token_expires=iso(NOW)), http=ok)
    add("refresh-refresh-token-expired-before-validation", fn,
        args=A(shop="", refresh_token_expires=iso(NOW - 1)), http=ok, config=CFG_NO_ID)
    add("refresh-refresh-token-expires-unparseable-ignored", fn,
        args=A(refresh_token_expires="someday"), http=ok)
    add("refresh-non-expiring-no-refresh-needed", fn,
        args=A(expires=None, refresh_token=None, refresh_token_expires=None), http=ok)
    add("refresh-non-expiring-empty-strings", fn,
        args=A(expires="", refresh_token="", refresh_token_expires=""), http=ok)
    add("refresh-expires-unparseable-refreshes", fn, args=A(expires="not-a-date"), http=ok)
    add("refresh-expires-empty-with-refresh-token", fn, args=A(expires=""), http=ok)
    add("refresh-shop-empty", fn, args=A(shop=""), http=ok)
    add("refresh-shop-not-string", fn, args=A(shop=7), http=ok)
    add("refresh-client-id-empty", fn, args=A(), http=ok, config=CFG_NO_ID)
    add("refresh-refresh-token-null", fn, args=A(refresh_token=None), http=ok)
    add("refresh-refresh-token-empty", fn, args=A(refresh_token=""), http=ok)
    add("refresh-online-user-copied", fn,
        args=A(access_mode="online", user={"id": 5, "first_name": "A", "last_name": "B", "scope": "s",
                                          "email": "a@b.c", "account_owner": False, "locale": "fr",
                                          "collaborator": True, "email_verified": True}), http=ok)
    add("refresh-success-minimal-body", fn, args=A(), http=[{"status": 200, "json": {}}])
    add("refresh-unvalidated-shop-goes-elsewhere", fn, args=A(shop="evil.com/x?"), http=ok)
    add("refresh-500-then-success", fn, args=A(), http=[{"status": 500}, RT_OK])
    add("refresh-502-503-then-success", fn, args=A(),
        http=[{"status": 502, "body": "bad gateway"}, {"status": 503}, RT_OK])
    add("refresh-5xx-three-times", fn, args=A(), http=[{"status": 504}, {"status": 500}, {"status": 501}])
    add("refresh-505-not-retried", fn, args=A(), http=[{"status": 505}, RT_OK])
    add("refresh-429-not-retried", fn, args=A(), http=[{"status": 429, "headers": {"Retry-After": "1"}}, RT_OK])
    add("refresh-invalid-grant", fn, args=A(), http=[{"status": 400, "json": {"error": "invalid_grant"}}])
    add("refresh-invalid-client", fn, args=A(), http=[{"status": 401, "json": {"error": "invalid_client"}}])
    add("refresh-other-error", fn, args=A(), http=[{"status": 400, "json": {"error": "invalid_request"}}])
    add("refresh-error-non-json", fn, args=A(), http=[{"status": 403, "body": "Forbidden"}])
    add("refresh-500-then-invalid-grant", fn, args=A(),
        http=[{"status": 500}, {"status": 400, "json": {"error": "invalid_grant"}}])
    for kind in ("connect", "timeout", "read"):
        add(f"refresh-network-{kind}", fn, args=A(), http=[{"raise": kind}, RT_OK])
    add("refresh-token-still-valid-other-clock", fn, args=A(), http=ok, now=NOW - 3600)
    add("refresh-500-then-network-error", fn, args=A(), http=[{"status": 500}, {"raise": "read"}])
    crash("refresh-naive-expires-timestamp", fn, args=A(expires="2025-06-15T15:07:40"), http=ok)
    crash("refresh-200-not-json", fn, args=A(), http=[{"status": 200, "body": "ok"}])


def client_credentials_cases():
    fn = "exchange_using_client_credentials"
    ok = [{"status": 200, "json": {"access_token": "shpat_cc", "scope": "read_products", "expires_in": 86399}}]
    add("cc-success", fn, args={"shop": "s1"}, http=ok)
    add("cc-shop-empty", fn, args={"shop": ""}, http=ok)
    add("cc-shop-not-string", fn, args={"shop": 7}, http=ok)
    add("cc-shop-full-domain-rejected", fn, args={"shop": "s1.myshopify.com"}, http=ok)
    add("cc-shop-leading-hyphen", fn, args={"shop": "-s1"}, http=ok)
    add("cc-shop-url-injection", fn, args={"shop": "evil.com/x?"}, http=ok)
    add("cc-shop-uppercase-accepted", fn, args={"shop": "S1-Shop"}, http=ok)
    add("cc-empty-client-id-sent", fn, args={"shop": "s1"}, http=ok, config=CFG_NO_ID)
    add("cc-success-no-expiry", fn, args={"shop": "s1"},
        http=[{"status": 200, "json": {"access_token": "shpat_cc", "scope": "read_products"}}])
    add("cc-success-empty-body-object", fn, args={"shop": "s1"}, http=[{"status": 200, "json": {}}])
    add("cc-invalid-client", fn, args={"shop": "s1"},
        http=[{"status": 400, "json": {"error": "invalid_client", "error_description": "bad"}}])
    add("cc-other-error", fn, args={"shop": "s1"}, http=[{"status": 400, "json": {"error": "unsupported_grant_type"}}])
    add("cc-500-non-json-no-retry", fn, args={"shop": "s1"}, http=[{"status": 500, "body": "boom"}] + ok)
    add("cc-429-no-retry", fn, args={"shop": "s1"}, http=[{"status": 429}] + ok)
    for kind in ("connect", "timeout", "read"):
        add(f"cc-network-{kind}", fn, args={"shop": "s1"}, http=[{"raise": kind}] + ok)
    crash("cc-shop-trailing-newline", fn, args={"shop": "s1\n"}, http=ok)
    crash("cc-200-not-json", fn, args={"shop": "s1"}, http=[{"status": 200, "body": "nope"}])


# ---------------------------------------------------------------------------------------------
# 10. Admin GraphQL
# ---------------------------------------------------------------------------------------------

GQL_ARGS = {"shop": "s1", "access_token": "shpat_x", "query": "{ shop { id } }", "api_version": "2025-01"}
GQL_OK = {"status": 200, "json": {"data": {"shop": {"id": "gid://shopify/Shop/1"}},
                                  "extensions": {"cost": {"requestedQueryCost": 1}}}}


def graphql_cases():
    fn = "admin_graphql_request"
    ok = [GQL_OK]
    a = GQL_ARGS
    add("gql-success", fn, args=a, http=ok)
    add("gql-429-then-success", fn, args=a, http=[{"status": 429}, GQL_OK])
    add("gql-missing-shop", fn, args=a | {"shop": ""}, http=ok)
    add("gql-missing-access-token", fn, args=a | {"access_token": ""}, http=ok)
    add("gql-missing-api-version", fn, args=a | {"api_version": None}, http=ok)
    add("gql-missing-query", fn, args=a | {"query": ""}, http=ok)
    add("gql-missing-everything-order", fn, args={"shop": "", "access_token": "", "query": "", "api_version": ""},
        http=ok)
    add("gql-with-variables", fn, args=a | {"query": "query($id: ID!) { node(id: $id) { id } }",
                                            "variables": {"id": "gid://shopify/Product/1", "name": "café"}},
        http=ok)
    add("gql-empty-variables-omitted", fn, args=a | {"variables": {}}, http=ok)
    add("gql-caller-headers-merge", fn,
        args=a | {"headers": {"Content-Type": "application/graphql+json", "X-Request-Id": "abc",
                              "content-type": "text/plain", "Authorization": "Bearer z"}}, http=ok)
    add("gql-caller-overrides-access-token-header", fn,
        args=a | {"headers": {"X-Shopify-Access-Token": "shpat_other"}}, http=ok)
    add("gql-graphql-errors", fn, args=a,
        http=[{"status": 200, "headers": {"X-Request-Id": "q1"},
               "json": {"errors": [{"message": "Field 'x' doesn't exist"}], "data": None}}])
    add("gql-throttled-in-200-body", fn, args=a,
        http=[{"status": 200, "json": {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                                       "extensions": {"cost": {"throttleStatus": {"currentlyAvailable": 0}}}}},
              GQL_OK])
    add("gql-empty-errors-is-success", fn, args=a, http=[{"status": 200, "json": {"errors": [], "data": {"x": 1}}}])
    add("gql-200-not-json-is-success", fn, args=a, http=[{"status": 200, "body": "<html>hi</html>"}])
    add("gql-200-no-data-no-extensions", fn, args=a, http=[{"status": 200, "json": {"other": True}}])
    add("gql-401-default-response", fn, args=a, http=[{"status": 401, "json": {"errors": "[API] Invalid token"}}])
    add("gql-401-with-invalid-token-response", fn, args=a | {"invalid_token_response": INVALID_TOKEN_RES},
        http=[{"status": 401}])
    add("gql-401-after-503-keeps-only-last-log", fn, args=a, http=[{"status": 503}, {"status": 401}])
    add("gql-429-three-times", fn, args=a, http=[{"status": 429}] * 3 + ok)
    add("gql-429-retry-after-ignored", fn, args=a,
        http=[{"status": 429, "headers": {"Retry-After": "5"}}, {"status": 429, "headers": {"retry-after": "9"}}, GQL_OK])
    add("gql-429-max-retries-0", fn, args=a | {"max_retries": 0}, http=[{"status": 429}] + ok)
    add("gql-429-max-retries-4", fn, args=a | {"max_retries": 4}, http=[{"status": 429}] * 5)
    add("gql-502-three-times", fn, args=a, jitter=37,
        http=[{"status": 502, "body": "Bad Gateway"}] * 3 + ok)
    add("gql-503-then-success", fn, args=a, jitter=100, http=[{"status": 503}, GQL_OK])
    add("gql-504-three-times", fn, args=a, jitter=0, http=[{"status": 504}] * 3)
    add("gql-503-then-429-then-success", fn, args=a, jitter=5, http=[{"status": 503}, {"status": 429}, GQL_OK])
    add("gql-502-max-retries-5", fn, args=a | {"max_retries": 5}, jitter=42, http=[{"status": 502}] * 6)
    add("gql-503-max-retries-0", fn, args=a | {"max_retries": 0}, http=[{"status": 503}] + ok)
    add("gql-503-then-500-keeps-only-last-log", fn, args=a, jitter=1, http=[{"status": 503}, {"status": 500}])
    add("gql-400", fn, args=a, http=[{"status": 400, "json": {"errors": {"query": "Required parameter missing"}}}])
    add("gql-403", fn, args=a, http=[{"status": 403, "body": "Forbidden", "headers": {"X-Request-Id": "f"}}])
    add("gql-500", fn, args=a, http=[{"status": 500, "body": "Internal"}] + ok)
    add("gql-501", fn, args=a, http=[{"status": 501}])
    add("gql-404", fn, args=a, http=[{"status": 404, "body": "Not Found"}])
    add("gql-402", fn, args=a, http=[{"status": 402, "body": "Payment Required"}])
    add("gql-302-not-followed", fn, args=a, http=[{"status": 302, "headers": {"Location": "https://x.example/"}}])
    for kind in ("connect", "timeout", "read"):
        add(f"gql-network-{kind}", fn, args=a, http=[{"raise": kind}] + ok)
    add("gql-429-then-network-error", fn, args=a, http=[{"status": 429}, {"raise": "timeout"}])
    add("gql-unvalidated-shop-goes-elsewhere", fn, args=a | {"shop": "evil.com/x#"}, http=ok)
    add("gql-api-version-not-validated", fn, args=a | {"api_version": "2025-01/extra"}, http=ok)
    add("gql-script-exhausted-599", fn, args=a, http=[])
    crash("gql-200-json-array", fn, args=a, http=[{"status": 200, "json": [1, 2]}])
    crash("gql-negative-max-retries", fn, args=a | {"max_retries": -1}, http=ok)


def build_cases():
    webhook_cases()
    flow_cases()
    proxy_cases()
    checkout_cases()
    customer_account_cases()
    admin_cases()
    pos_cases()
    app_home_cases()
    patch_page_cases()
    parent_redirect_cases()
    redirect_cases()
    token_exchange_cases()
    refresh_cases()
    client_credentials_cases()
    graphql_cases()


# ---------------------------------------------------------------------------------------------
# Harness: frozen clock, recorded sleeps, fixed jitter, scripted transport
# ---------------------------------------------------------------------------------------------


class _FakeTime:
    """Stands in for the `time` module inside the reference's modules."""

    def __init__(self, now, sleeps):
        self._now, self._sleeps = now, sleeps

    def time(self):
        return float(self._now)

    def sleep(self, seconds):
        self._sleeps.append(seconds)

    def __getattr__(self, name):
        return getattr(_time, name)


class _FakeRandom:
    def __init__(self, jitter):
        self._jitter = jitter

    def randint(self, a, b):
        if not a <= self._jitter <= b:
            raise ValueError(f"jitter {self._jitter} outside randint({a}, {b})")
        return self._jitter

    def __getattr__(self, name):
        raise AttributeError(f"random.{name} is not expected to be used")


class _VersionInfo:
    major, minor, micro = PINNED_PYTHON


class _FakeSys:
    """Stands in for `sys` in the User-Agent module: only version_info is pinned."""

    version_info = _VersionInfo

    def __getattr__(self, name):
        return getattr(sys, name)


def _frozen_datetime(now):
    class FrozenDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return _dt.datetime.fromtimestamp(now, tz)

    return FrozenDatetime


@contextlib.contextmanager
def _patched(now, jitter, sleeps):
    fake_time = _FakeTime(now, sleeps)
    fake_dt = _frozen_datetime(now)
    fake_sys = _FakeSys()
    targets = [
        (_proxy_mod, "time", fake_time),
        (_te_mod, "time", fake_time),
        (_gql_mod, "time", fake_time),
        (_gql_mod, "random", _FakeRandom(jitter)),
        (_te_mod, "datetime", fake_dt),
        (_rt_mod, "datetime", fake_dt),
        (_cc_mod, "datetime", fake_dt),
        (jwt.api_jwt, "datetime", fake_dt),
        (_ua_mod, "sys", fake_sys),
    ]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in targets]
    try:
        for mod, name, value in targets:
            setattr(mod, name, value)
        yield
    finally:
        for mod, name, value in saved:
            setattr(mod, name, value)


_RAISE = {
    "connect": lambda req: httpx.ConnectError("scripted connect failure", request=req),
    "timeout": lambda req: httpx.ReadTimeout("scripted timeout", request=req),
    "read": lambda req: httpx.ReadError("scripted read failure", request=req),
}


def _transport(script, recorded):
    queue = list(script)

    def handler(request: httpx.Request) -> httpx.Response:
        enc = request.headers.encoding
        recorded.append({
            "method": request.method,
            "url": str(request.url),
            "headers": [[k.decode(enc), v.decode(enc)] for k, v in request.headers.raw],
            "body": request.content.decode("utf-8"),
        })
        if not queue:
            return httpx.Response(599)
        answer = queue.pop(0)
        if "raise" in answer:
            raise _RAISE[answer["raise"]](request)
        headers = answer.get("headers") or {}
        if "json" in answer:
            return httpx.Response(answer["status"], headers=headers, json=answer["json"])
        body = answer.get("body")
        content = body.encode("utf-8") if body else None
        return httpx.Response(answer["status"], headers=headers, content=content)

    return httpx.MockTransport(handler)


def _call(case, client):
    fn, a, cfg = case["fn"], case["args"], dict(case["config"])
    req = copy.deepcopy(case.get("req"))
    opt = {k: copy.deepcopy(v) for k, v in a.items()}

    simple = {
        "verify_webhook_req": verify_webhook_req,
        "verify_flow_action_req": verify_flow_action_req,
        "verify_app_proxy_req": verify_app_proxy_req,
        "verify_checkout_ui_ext_req": verify_checkout_ui_ext_req,
        "verify_customer_account_ui_ext_req": verify_customer_account_ui_ext_req,
        "verify_admin_ui_ext_req": verify_admin_ui_ext_req,
        "verify_pos_ui_ext_req": verify_pos_ui_ext_req,
        "app_home_patch_id_token": app_home_patch_id_token,
    }
    if fn in simple:
        return simple[fn](req, cfg)
    if fn == "verify_app_home_req":
        # The facade's default for the path is "".
        return verify_app_home_req(req, cfg, opt.get("app_home_patch_id_token_path", ""))
    if fn == "app_home_parent_redirect":
        return app_home_parent_redirect(req, cfg, opt["redirect_url"], opt["shop"], opt.get("target"))
    if fn == "app_home_redirect":
        return app_home_redirect(req, cfg, opt["redirect_url"], opt["shop"])
    if fn == "exchange_using_token_exchange":
        kw = {k: opt[k] for k in ("id_token", "invalid_token_response", "expiring") if k in opt}
        return _te_mod.token_exchange(opt["access_mode"], cfg, http_client=client, **kw)
    if fn == "refresh_token_exchanged_access_token":
        return refresh_access_token(opt["access_token"], cfg, http_client=client)
    if fn == "exchange_using_client_credentials":
        return exchange_using_client_credentials(shop=opt["shop"], app_config=cfg, http_client=client)
    if fn == "admin_graphql_request":
        kw = {k: opt[k] for k in ("invalid_token_response", "variables", "headers", "max_retries") if k in opt}
        return admin_graphql_request(opt["query"], shop=opt["shop"], access_token=opt["access_token"],
                                     api_version=opt["api_version"], app_config=cfg, http_client=client, **kw)
    raise KeyError(fn)


def _plain(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _strip(result: dict) -> dict:
    """Drop the reference's prose and its redacted request copies."""
    out = dict(result)
    out["log"] = {"code": result["log"]["code"]}
    if out.get("http_logs") is not None:
        out["http_logs"] = [{"code": h["code"], "res": h["res"]} for h in result["http_logs"]]
    return out


def run_case(case: dict) -> dict:
    sleeps: list = []
    recorded: list = []
    now = case["now"] if case.get("now") is not None else int(_time.time())
    client = httpx.Client(transport=_transport(case.get("http", []), recorded), timeout=30.0)
    try:
        with _patched(now, case.get("jitter", 0), sleeps):
            result = _call(case, client)
    finally:
        client.close()
    return {
        "result": _strip(_plain(result)),
        "result_type": type(result).__name__,
        "sleeps": sleeps,
        "http_requests": recorded,
    }


def dumps(obj) -> str:
    return json.dumps(obj, indent=1, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def _check_versions():
    from importlib.metadata import version

    bad = {name: version(name) for name, want in PINNED.items() if version(name) != want}
    if bad:
        sys.exit(f"version mismatch, want {PINNED}, found {bad}")
    if sys.version_info[:2] != PINNED_PYTHON[:2]:
        print(f"warning: Python {sys.version.split()[0]} (the corpus was made with 3.11)", file=sys.stderr)


def check_samples(directory: Path) -> int:
    failures = 0
    for path in sorted((directory / "cases").glob("*.json")):
        case = json.loads(path.read_text(encoding="utf-8"))
        want = json.loads((directory / "expected" / path.name).read_text(encoding="utf-8"))
        want["result"] = _strip(want["result"])
        got = run_case(case)
        if got != want:
            failures += 1
            print(f"DIFF {path.name}\n  want {json.dumps(want)}\n  got  {json.dumps(got)}")
        else:
            print(f"ok   {path.name}")
    return failures


def main():
    # PyJWT warns about the short test secrets ("hush"); the warning changes nothing.
    warnings.filterwarnings("ignore", category=jwt.warnings.InsecureKeyLengthWarning)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="folder that gets cases/ and expected/")
    ap.add_argument("--check-samples", type=Path, metavar="DIR",
                    help="replay DIR/cases/*.json and compare with DIR/expected (detail/req ignored)")
    opts = ap.parse_args()
    _check_versions()
    if opts.check_samples:
        sys.exit(1 if check_samples(opts.check_samples) else 0)

    build_cases()
    slugs = [s for s, _ in CASES]
    dupes = {s for s in slugs if slugs.count(s) > 1}
    if dupes:
        sys.exit(f"duplicate slugs: {sorted(dupes)}")

    # Inputs on which the reference raises are run to confirm the crash, and never written.
    for slug, case in CRASHES:
        try:
            run_case(case)
        except Exception as exc:  # noqa: BLE001 - the point is that it escapes
            print(f"crash (skipped) {slug}: {type(exc).__name__}")
        else:
            sys.exit(f"{slug} was expected to crash but returned a result")

    cases_dir, expected_dir = opts.out / "cases", opts.out / "expected"
    cases_dir.mkdir(parents=True, exist_ok=True)
    expected_dir.mkdir(parents=True, exist_ok=True)
    for stale in list(cases_dir.glob("*.json")) + list(expected_dir.glob("*.json")):
        stale.unlink()
    per_fn: dict[str, int] = {}
    for i, (slug, case) in enumerate(CASES):
        name = f"{i:03d}-{slug}.json"
        expected = run_case(case)  # an exception here is a bug in the case list: let it escape
        (cases_dir / name).write_text(dumps(case), encoding="utf-8")
        (expected_dir / name).write_text(dumps(expected), encoding="utf-8")
        per_fn[case["fn"]] = per_fn.get(case["fn"], 0) + 1
    for fn, n in per_fn.items():
        print(f"{n:4d}  {fn}")
    print(f"{len(CASES):4d}  cases written to {cases_dir} and {expected_dir}; {len(CRASHES)} crash inputs skipped")


if __name__ == "__main__":
    main()
