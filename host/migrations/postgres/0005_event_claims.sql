-- A webhook delivery being processed is claimed until `claimed_until`, so
-- that of replicas looking at once only one turns it into a run; when a
-- replica dies holding it, the claim lapses and another takes it.
ALTER TABLE events ADD COLUMN claimed_until timestamptz;
