-- A delivery is claimed (done = 0) while its work runs and marked done (1) after. A claim
-- whose work was cut off (crash, dropped connection) is taken over once it is stale.
ALTER TABLE webhook_deliveries ADD COLUMN done INTEGER NOT NULL DEFAULT 1;
