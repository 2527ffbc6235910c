-- Who holds a delivery's claim: a random id per claim, so that one statement can claim or
-- report, and only the holder can finish or release its own claim (a copy whose stale claim
-- was taken over cannot undo the new holder's).
ALTER TABLE webhook_deliveries ADD COLUMN claim_id TEXT;
