-- Suppressions caused by feedback (bounces, complaints) are decided by rules
-- (shared/suppression_rules.py) that replay can re-run; the entry says where it came
-- from, and soft bounces are remembered per address until they add up.
ALTER TABLE suppressions ADD COLUMN source text NOT NULL DEFAULT 'manual';

CREATE TABLE suppression_soft_bounces (
    address text PRIMARY KEY,
    history jsonb NOT NULL  -- [[event_id, occurred_at], ...] within the window
);
