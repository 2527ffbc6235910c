-- Durable jobs (src/jobs): see migrations/sqlite/0010_jobs.sql for what each column means.
CREATE TABLE jobs (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         TEXT    NOT NULL,
    shop         TEXT,
    payload      TEXT    NOT NULL,
    failed       BOOLEAN NOT NULL DEFAULT FALSE,
    attempts     BIGINT  NOT NULL DEFAULT 0,
    max_attempts BIGINT  NOT NULL,
    run_at       BIGINT  NOT NULL,
    lease_id     TEXT,
    last_error   TEXT,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX jobs_due ON jobs (failed, run_at);
-- shop/redact deletes a shop's waiting and failed jobs.
CREATE INDEX jobs_shop ON jobs (shop);

CREATE TABLE job_periods (
    name   TEXT   PRIMARY KEY,
    period BIGINT NOT NULL
);

-- The products/update example: see migrations/sqlite/0011_products.sql.
CREATE TABLE products (
    shop        TEXT   NOT NULL,
    product_id  TEXT   NOT NULL,
    title       TEXT   NOT NULL,
    status      TEXT   NOT NULL,
    updated_at  TEXT   NOT NULL,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (shop, product_id)
);
CREATE INDEX products_recorded_at ON products (shop, recorded_at);
