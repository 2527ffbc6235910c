-- Seed for the load harness (`--seed NAME=sql:<this file>`): the app's database at scale.
-- s1's offline token as the app stores it (plaintext: the harness sets no encryption key),
-- 100,000 other shops, and 1,000,000 delivery ids inside the retention window, so that the
-- harness can show that the cost of App Home and of a webhook does not grow with the data.
INSERT INTO access_tokens (shop, access_mode, user_id, token, scope, expires_at, refresh_token,
                           refresh_token_expires_at, updated_at, obtained_at)
VALUES (:shop_name, 'offline', 0, :token, :scope, CAST(strftime('%s', :expires) AS INTEGER), :refresh_token,
        CAST(strftime('%s', :refresh_token_expires) AS INTEGER), CAST(strftime('%s', :now) AS INTEGER),
        CAST(strftime('%s', :now) AS INTEGER) * 1000);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO access_tokens (shop, access_mode, user_id, token, scope, expires_at, refresh_token,
                           refresh_token_expires_at, updated_at, obtained_at)
SELECT 'shop-' || i, 'offline', 0, 'shpat_' || hex(randomblob(16)), :scope,
       CAST(strftime('%s', :expires) AS INTEGER), 'shprt_' || hex(randomblob(16)),
       CAST(strftime('%s', :refresh_token_expires) AS INTEGER), CAST(strftime('%s', :now) AS INTEGER),
       CAST(strftime('%s', :now) AS INTEGER) * 1000
FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
INSERT INTO webhook_deliveries (webhook_id, topic, shop, received_at, done)
SELECT lower(hex(randomblob(16))), 'orders/create', 'shop-' || (i % 100000),
       CAST(strftime('%s', :now) AS INTEGER) - (i % 500000), 1
FROM n;
