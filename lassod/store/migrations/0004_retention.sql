-- Indexes for retention: finished deliveries by age, the deliveries of an
-- event (to find events no delivery refers to) and events by age.
-- deliveries_by_event may already exist from an earlier migration with the
-- same definition.

CREATE INDEX deliveries_finished ON deliveries(status, updated_ms)
    WHERE status != 'pending';
CREATE INDEX IF NOT EXISTS deliveries_by_event ON deliveries(event_id, endpoint_id);
CREATE INDEX events_by_created ON events(created_ms, id);
