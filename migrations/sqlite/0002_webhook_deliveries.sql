-- Webhook deliveries already handled, by X-Shopify-Webhook-Id: a repeated delivery is
-- answered 200 and skipped. Rows older than the retention window are purged.
CREATE TABLE webhook_deliveries (
    webhook_id  TEXT    PRIMARY KEY,
    topic       TEXT    NOT NULL,
    shop        TEXT    NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);
