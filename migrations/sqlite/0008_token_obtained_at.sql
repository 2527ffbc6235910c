-- When each access token was obtained (token exchange, authorization code or refresh), in unix
-- milliseconds of the app's clock: an `app/uninstalled` delivery triggered before it belongs to
-- an earlier install and leaves it alone. Existing rows take their last update.
ALTER TABLE access_tokens ADD COLUMN obtained_at INTEGER NOT NULL DEFAULT 0;
UPDATE access_tokens SET obtained_at = updated_at * 1000;
