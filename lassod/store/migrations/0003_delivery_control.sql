-- Delivery control and receiver etiquette.
--
-- endpoints.failing_since_ms: start of the first failed attempt since the
-- endpoint's last success (NULL while it succeeds); a subscription failing
-- for delivery.disable_after_failing_s is deactivated.
-- endpoints.disabled_reason / disabled_ms: why and when lassod deactivated
-- the endpoint (a 410 Gone answer, or failing too long).
-- deliveries.redelivery_of: the delivery that a redeliver or recover copied.

ALTER TABLE endpoints ADD COLUMN failing_since_ms INTEGER;
ALTER TABLE endpoints ADD COLUMN disabled_reason TEXT;
ALTER TABLE endpoints ADD COLUMN disabled_ms INTEGER;
ALTER TABLE deliveries ADD COLUMN redelivery_of TEXT;

CREATE INDEX deliveries_by_event ON deliveries(event_id, endpoint_id);
