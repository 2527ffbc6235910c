-- The products/update example (src/app_jobs/products.rs): the latest state of each updated
-- product, read through the Admin API by the webhook's job, shown on App Home.
CREATE TABLE products (
    shop        TEXT    NOT NULL,
    product_id  TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (shop, product_id)
);
CREATE INDEX products_recorded_at ON products (shop, recorded_at);
