-- Redeliveries asked for (POST /v1/deliveries/{id}/redeliver), counted. The notify function
-- reads the count when an attempt starts and records the attempt's outcome as 'pending' when
-- the count moved meanwhile: a redelivery asked for while an attempt is in flight (the receiver
-- has the webhook, notify has not yet written that it answered) is not overwritten by that
-- attempt's 'delivered' or 'failed', and so is not lost.
ALTER TABLE webhook_deliveries ADD COLUMN redeliveries integer NOT NULL DEFAULT 0;
