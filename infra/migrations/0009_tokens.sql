-- Credentials: a tenant has any number of bearer tokens, each with a scope (publish, read
-- or admin), an optional expiry and a revocation time. Only SHA-256 digests are kept; the
-- id (`tok_…`) is what listings show and `tokens revoke` takes.
CREATE TABLE tenant_tokens (
    id            text        PRIMARY KEY,
    tenant        text        NOT NULL REFERENCES tenants (id),
    scope         text        NOT NULL CHECK (scope IN ('publish', 'read', 'admin')),
    token_sha256  text        NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX tenant_tokens_tenant ON tenant_tokens (tenant, created_at);

-- The one token each tenant had becomes its admin token.
INSERT INTO tenant_tokens (id, tenant, scope, token_sha256)
SELECT 'tok_' || left(token_sha256, 16), id, 'admin', token_sha256 FROM tenants;
ALTER TABLE tenants DROP COLUMN token_sha256;

-- Webhook secret rotation: the previous secret keeps signing beside the new one until
-- `previous_until`, so receivers can switch over without missing a delivery.
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret text, ADD COLUMN previous_until timestamptz;
