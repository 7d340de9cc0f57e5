-- Hourly usage by region, SKU and quantity, so reserved capacity (which
-- covers instance-hours of one SKU in one region) can be applied before
-- savings plans, as AWS does.
ALTER TABLE usage_hourly ADD COLUMN region TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_hourly ADD COLUMN sku TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_hourly ADD COLUMN quantity_nanos INTEGER NOT NULL DEFAULT 0;
