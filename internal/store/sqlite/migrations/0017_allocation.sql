-- 0017: cloud-endpoint allocation (docs/front-doors.md, "Allocation"). A
-- product spreads its devices over endpoints by a policy: NULL is static
-- (cloud_endpoint, as before); otherwise a JSON object (kind, endpoints
-- with weights, webhook_url) and, for a webhook, its signing secret. A
-- device keeps the endpoint chosen at its first issuance; devices issued
-- a certificate before this migration keep their product's endpoint.

ALTER TABLE products ADD COLUMN allocation TEXT CHECK (allocation IS NULL OR length(allocation) <= 16384);
ALTER TABLE products ADD COLUMN allocation_secret BLOB CHECK (allocation_secret IS NULL OR length(allocation_secret) <= 256);
ALTER TABLE devices ADD COLUMN cloud_endpoint TEXT CHECK (cloud_endpoint IS NULL OR length(cloud_endpoint) <= 2048);
UPDATE devices SET cloud_endpoint = (SELECT cloud_endpoint FROM products WHERE products.id = devices.product_id)
	WHERE onboarded_at IS NOT NULL OR EXISTS (SELECT 1 FROM certificates WHERE certificates.identity = devices.identity);
