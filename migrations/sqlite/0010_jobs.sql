-- Durable jobs (src/jobs): webhook deliveries handed to workers, jobs the app enqueues, and
-- periodic jobs. A row is due when `run_at` has passed and it has not failed for good: a
-- pending job waits for `run_at`; a running one holds a lease (`lease_id`) and `run_at` is
-- when the lease runs out, after which another worker runs it again. A job that succeeds is
-- deleted; one that ran out of attempts stays with `failed` set and its last error (the
-- dead-letter list).
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT    NOT NULL,
    shop         TEXT,
    payload      TEXT    NOT NULL,
    failed       BOOLEAN NOT NULL DEFAULT FALSE,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at       INTEGER NOT NULL,
    lease_id     TEXT,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs (failed, run_at);
-- shop/redact deletes a shop's waiting and failed jobs.
CREATE INDEX jobs_shop ON jobs (shop);

-- The last period each periodic job was enqueued for: one instance wins each period.
CREATE TABLE job_periods (
    name   TEXT    PRIMARY KEY,
    period INTEGER NOT NULL
);
