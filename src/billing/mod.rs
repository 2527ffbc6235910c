//! Billing: the app's plans, whether a shop pays for one, and the Billing API calls
//! (`appSubscriptionCreate`, `appPurchaseOneTimeCreate`, `appSubscriptionCancel`,
//! `appUsageRecordCreate`, `appSubscriptionLineItemUpdate`), through a shop's [`AdminApi`].
//!
//! The plans live in one place, `crate::app_billing::PLANS`. [`gate`] puts a plan in front of
//! routes in one line. Answers are cached per shop ([`CACHE_FOR`]) and dropped when Shopify
//! says a subscription changed (`app_subscriptions/update`) or the merchant comes back from
//! the confirmation page (`charge_id`).

pub mod gate;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;

use crate::error::AppError;
use crate::shop_cache::ShopCache;
use crate::shopify::clock::Clock;
use crate::shopify::graphql::GraphqlRequest;
use crate::web::admin_api::{AdminApi, GraphqlError};

/// How long a shop's billing answer is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(5 * 60);

/// A plan the app sells.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Its name, shown to the merchant and matched against active charges.
    pub name: &'static str,
    /// What it costs.
    pub charge: Charge,
}

/// How a plan is charged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Charge {
    /// A subscription, renewed every interval.
    Recurring {
        /// The price per interval, as a decimal (`"10.00"`).
        amount: &'static str,
        /// ISO 4217 (`"USD"`).
        currency_code: &'static str,
        /// How often it renews.
        interval: Interval,
        /// Free days before the first charge.
        trial_days: u32,
        /// A usage component, charged by [`Billing::create_usage_record`] up to a cap.
        usage: Option<UsageTerms>,
        /// A discount on the recurring price.
        discount: Option<Discount>,
    },
    /// A single purchase.
    OneTime {
        /// The price, as a decimal.
        amount: &'static str,
        /// ISO 4217.
        currency_code: &'static str,
    },
}

/// A recurring charge's interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// `EVERY_30_DAYS`.
    Every30Days,
    /// `ANNUAL`.
    Annual,
}

impl Interval {
    fn as_graphql(self) -> &'static str {
        match self {
            Interval::Every30Days => "EVERY_30_DAYS",
            Interval::Annual => "ANNUAL",
        }
    }
}

/// A usage component: charges up to `capped_amount` per interval, described by `terms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageTerms {
    /// The cap per interval, as a decimal.
    pub capped_amount: &'static str,
    /// What the merchant is charged for, shown on the confirmation page.
    pub terms: &'static str,
}

/// A discount on a recurring price: a percentage or an amount off, for some intervals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Discount {
    /// `Some(0.2)` for 20 % off.
    pub percentage: Option<f64>,
    /// An amount off, as a decimal.
    pub amount: Option<&'static str>,
    /// For how many intervals; `None`: for as long as the subscription lasts.
    pub duration_limit_in_intervals: Option<u32>,
}

/// Where plans live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// In code (`app_billing::PLANS`): the app creates the charges.
    Plans,
    /// Shopify's managed pricing: plans in the Partner Dashboard, chosen on Shopify's page for
    /// the app `handle`.
    Managed {
        /// The app's handle (`SHOPIFY_APP_HANDLE`).
        handle: String,
    },
}

/// A charge the shop has.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivePayment {
    /// Its GID.
    pub id: String,
    /// The plan's name.
    pub name: String,
    /// `ACTIVE`...
    pub status: String,
    /// A test charge (no money moves).
    pub test: bool,
    /// A subscription's line items: the usage one is where usage records go.
    #[serde(default)]
    pub line_items: Vec<LineItem>,
}

/// A subscription's line item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "LineItemData")]
pub struct LineItem {
    /// Its GID.
    pub id: String,
    /// Whether it is the usage component.
    pub usage: bool,
}

/// A line item as [`STATUS`] asks for it.
#[derive(Deserialize)]
struct LineItemData {
    id: String,
    #[serde(default)]
    plan: Option<LineItemPlan>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LineItemPlan {
    pricing_details: Typename,
}

#[derive(Deserialize)]
struct Typename {
    #[serde(rename = "__typename")]
    name: String,
}

impl From<LineItemData> for LineItem {
    fn from(item: LineItemData) -> Self {
        let usage = item.plan.is_some_and(|plan| plan.pricing_details.name == "AppUsagePricing");
        Self { id: item.id, usage }
    }
}

/// What a shop pays for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillingStatus {
    /// Active subscriptions.
    pub subscriptions: Vec<ActivePayment>,
    /// Active one-time purchases.
    pub one_time_purchases: Vec<ActivePayment>,
}

impl BillingStatus {
    /// The active charge for one of `plans` (any name when `plans` is `None`), if any; a test
    /// charge counts only when `test_charges` (while `SHOPIFY_BILLING_TEST` is true: a test
    /// charge taken then is no payment once it is false).
    pub fn active<'a>(&'a self, plans: Option<&[&str]>, test_charges: bool) -> Option<&'a ActivePayment> {
        self.subscriptions.iter().chain(&self.one_time_purchases).find(|payment| {
            payment.status == "ACTIVE"
                && (test_charges || !payment.test)
                && plans.is_none_or(|plans| plans.contains(&payment.name.as_str()))
        })
    }
}

/// Why a billing call failed: shown to the merchant as a page or JSON, never a 500.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// The plan is not in `app_billing::PLANS`.
    #[error("no plan is named {0:?}")]
    UnknownPlan(String),
    /// The subscription to change is not one the shop has.
    #[error("no such active subscription")]
    NotTheShops,
    /// Shopify refused (`userErrors`), the call failed, or its answer had another shape.
    #[error(transparent)]
    Api(GraphqlError),
    /// No offline token, a rejected token, a database failure.
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<GraphqlError> for BillingError {
    fn from(error: GraphqlError) -> Self {
        match error {
            GraphqlError::App(error) => Self::App(error),
            error => Self::Api(error),
        }
    }
}

/// `currentAppInstallation`'s payments, as [`STATUS`] asks for them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusData {
    current_app_installation: Installation,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Installation {
    active_subscriptions: Vec<ActivePayment>,
    #[serde(default)]
    one_time_purchases: Option<Nodes<ActivePayment>>,
}

#[derive(Deserialize)]
struct Nodes<T> {
    nodes: Vec<T>,
}

/// A charge mutation's payload: the page the merchant approves it on.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Confirmation {
    confirmation_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageRecordPayload {
    app_usage_record: Id,
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

const STATUS: &str = "query billingStatus {
  currentAppInstallation {
    activeSubscriptions {
      id name status test
      lineItems { id plan { pricingDetails { __typename } } }
    }
    oneTimePurchases(first: 50, sortKey: CREATED_AT, reverse: true) { nodes { id name status test } }
  }
}";

const SUBSCRIPTION_CREATE: &str = "mutation subscribe($name: String!, $returnUrl: URL!, $trialDays: Int, $test: Boolean, $lineItems: [AppSubscriptionLineItemInput!]!) {
  appSubscriptionCreate(name: $name, returnUrl: $returnUrl, trialDays: $trialDays, test: $test, lineItems: $lineItems) {
    confirmationUrl
    appSubscription { id }
    userErrors { field message }
  }
}";

const ONE_TIME_CREATE: &str =
    "mutation purchase($name: String!, $price: MoneyInput!, $returnUrl: URL!, $test: Boolean) {
  appPurchaseOneTimeCreate(name: $name, price: $price, returnUrl: $returnUrl, test: $test) {
    confirmationUrl
    appPurchaseOneTime { id }
    userErrors { field message }
  }
}";

const CANCEL: &str = "mutation cancel($id: ID!, $prorate: Boolean) {
  appSubscriptionCancel(id: $id, prorate: $prorate) {
    appSubscription { id status }
    userErrors { field message }
  }
}";

const USAGE_RECORD: &str = "mutation usage($lineItemId: ID!, $description: String!, $price: MoneyInput!, $idempotencyKey: String) {
  appUsageRecordCreate(subscriptionLineItemId: $lineItemId, description: $description, price: $price, idempotencyKey: $idempotencyKey) {
    appUsageRecord { id }
    userErrors { field message }
  }
}";

const CAPPED_AMOUNT: &str = "mutation capped($id: ID!, $cappedAmount: MoneyInput!) {
  appSubscriptionLineItemUpdate(id: $id, cappedAmount: $cappedAmount) {
    confirmationUrl
    userErrors { field message }
  }
}";

/// The shops' billing answers, cached, and the Billing API calls.
pub struct Billing {
    plans: &'static [Plan],
    mode: Mode,
    test: bool,
    cache: ShopCache<BillingStatus>,
}

impl std::fmt::Debug for Billing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Billing").field("mode", &self.mode).field("test", &self.test).finish_non_exhaustive()
    }
}

impl Billing {
    /// Billing for `plans` in `mode`; with `test`, every charge is a test charge.
    pub fn new(plans: &'static [Plan], mode: Mode, test: bool, clock: Arc<dyn Clock>) -> Self {
        Self { plans, mode, test, cache: ShopCache::new(CACHE_FOR, clock) }
    }

    /// Where plans live.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The app's plans.
    pub fn plans(&self) -> &'static [Plan] {
        self.plans
    }

    /// The shop's active payment for one of `plans` (`&[]`: any plan of the app; with
    /// managed pricing, any subscription), test charges counting only in test mode.
    pub fn paid_for<'a>(&self, status: &'a BillingStatus, plans: &[&str]) -> Option<&'a ActivePayment> {
        let names: Vec<&str> = self.plans.iter().map(|plan| plan.name).collect();
        let plans = match (&self.mode, plans) {
            (Mode::Managed { .. }, []) => None,
            (_, []) => Some(names.as_slice()),
            (_, plans) => Some(plans),
        };
        status.active(plans, self.test)
    }

    /// Drops `shop`'s cached answer (its subscription changed).
    pub fn forget(&self, shop: &str) {
        self.cache.forget(shop);
    }

    /// What `api`'s shop pays for, from the cache when fresh.
    pub async fn check(&self, api: &AdminApi) -> Result<Arc<BillingStatus>, BillingError> {
        if let Some(status) = self.cache.fresh(&api.shop) {
            return Ok(status);
        }
        let data: StatusData = api.query(GraphqlRequest::new(STATUS)).await?;
        let installation = data.current_app_installation;
        let status = BillingStatus {
            subscriptions: installation.active_subscriptions,
            one_time_purchases: installation.one_time_purchases.map(|purchases| purchases.nodes).unwrap_or_default(),
        };
        Ok(self.cache.insert(&api.shop, status))
    }

    /// Creates the charge for plan `name`, returning to `return_url` once the merchant
    /// decided; answers the confirmation page's URL.
    pub async fn request(&self, api: &AdminApi, name: &str, return_url: &str) -> Result<String, BillingError> {
        let plan = self
            .plans
            .iter()
            .find(|plan| plan.name == name)
            .ok_or_else(|| BillingError::UnknownPlan(name.to_owned()))?;
        let (query, field, variables) = match plan.charge {
            Charge::Recurring { amount, currency_code, interval, trial_days, usage, discount } => {
                let mut recurring = json!({
                    "price": { "amount": amount, "currencyCode": currency_code },
                    "interval": interval.as_graphql(),
                });
                if let Some(discount) = discount {
                    let value = match (discount.percentage, discount.amount) {
                        (Some(percentage), _) => json!({ "percentage": percentage }),
                        (None, amount) => json!({ "amount": amount }),
                    };
                    recurring["discount"] =
                        json!({ "value": value, "durationLimitInIntervals": discount.duration_limit_in_intervals });
                }
                let mut line_items = vec![json!({ "plan": { "appRecurringPricingDetails": recurring } })];
                if let Some(usage) = usage {
                    line_items.push(json!({ "plan": { "appUsagePricingDetails": {
                        "cappedAmount": { "amount": usage.capped_amount, "currencyCode": currency_code },
                        "terms": usage.terms,
                    } } }));
                }
                let variables = json!({
                    "name": plan.name, "returnUrl": return_url, "trialDays": trial_days,
                    "test": self.test, "lineItems": line_items,
                });
                (SUBSCRIPTION_CREATE, "appSubscriptionCreate", variables)
            }
            Charge::OneTime { amount, currency_code } => {
                let variables = json!({
                    "name": plan.name, "returnUrl": return_url, "test": self.test,
                    "price": { "amount": amount, "currencyCode": currency_code },
                });
                (ONE_TIME_CREATE, "appPurchaseOneTimeCreate", variables)
            }
        };
        let payload: Confirmation = api.mutate(GraphqlRequest::new(query).variables(variables), field).await?;
        Ok(payload.confirmation_url)
    }

    /// Cancels subscription `id` (refunding the unused part when `prorate`).
    pub async fn cancel(&self, api: &AdminApi, id: &str, prorate: bool) -> Result<(), BillingError> {
        let request = GraphqlRequest::new(CANCEL).variables(json!({ "id": id, "prorate": prorate }));
        api.mutate::<IgnoredAny>(request, "appSubscriptionCancel").await?;
        self.forget(&api.shop);
        Ok(())
    }

    /// Charges `amount` on usage line item `line_item_id`; `idempotency_key` makes a repeated
    /// call charge once. Answers the usage record's id.
    pub async fn create_usage_record(
        &self,
        api: &AdminApi,
        line_item_id: &str,
        description: &str,
        (amount, currency_code): (&str, &str),
        idempotency_key: &str,
    ) -> Result<String, BillingError> {
        let variables = json!({
            "lineItemId": line_item_id, "description": description,
            "price": { "amount": amount, "currencyCode": currency_code }, "idempotencyKey": idempotency_key,
        });
        let request = GraphqlRequest::new(USAGE_RECORD).variables(variables);
        let payload: UsageRecordPayload = api.mutate(request, "appUsageRecordCreate").await?;
        Ok(payload.app_usage_record.id)
    }

    /// Asks to raise usage line item `line_item_id`'s cap; answers the confirmation page's URL
    /// the merchant must approve.
    pub async fn update_capped_amount(
        &self,
        api: &AdminApi,
        line_item_id: &str,
        (amount, currency_code): (&str, &str),
    ) -> Result<String, BillingError> {
        let variables =
            json!({ "id": line_item_id, "cappedAmount": { "amount": amount, "currencyCode": currency_code } });
        let request = GraphqlRequest::new(CAPPED_AMOUNT).variables(variables);
        let payload: Confirmation = api.mutate(request, "appSubscriptionLineItemUpdate").await?;
        Ok(payload.confirmation_url)
    }
}
