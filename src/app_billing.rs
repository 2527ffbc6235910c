//! The app's plans, declared in one place. `BILLING_REQUIRED=true` puts the gate
//! ([`crate::billing::gate`]) in front of App Home; add plans here and name them in the gate.

use crate::billing::{Charge, Interval, Plan, UsageTerms};

/// The demo plan: $10 every 30 days after a 7-day trial, with usage charges up to $100.
pub const PRO: Plan = Plan {
    name: "Pro",
    charge: Charge::Recurring {
        amount: "10.00",
        currency_code: "USD",
        interval: Interval::Every30Days,
        trial_days: 7,
        usage: Some(UsageTerms { capped_amount: "100.00", terms: "$1 per 100 synced products" }),
        discount: None,
    },
};

/// Every plan the app sells.
pub const PLANS: &[Plan] = &[PRO];
