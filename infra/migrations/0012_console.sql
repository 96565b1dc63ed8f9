-- Console sign-ins: a tenant token exchanged for a session cookie. Only the SHA-256 digest of
-- the cookie's secret is kept. A session speaks with its token's tenant and scope and stops
-- working when the token is revoked or expires, when it is ended (sign-out), or at expires_at.
CREATE TABLE console_sessions (
    session_sha256 text        PRIMARY KEY,
    tenant         text        NOT NULL REFERENCES tenants (id),
    token_id       text        NOT NULL REFERENCES tenant_tokens (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    ended_at       timestamptz
);
CREATE INDEX console_sessions_token ON console_sessions (token_id);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- The console's function board shows each tenant its recent failures: failed attempts only
-- are indexed, so the function path's inserts of successes pay nothing for it.
CREATE INDEX invocations_tenant_failures ON invocations (tenant, id)
    WHERE outcome IN ('failed', 'timed_out', 'dead_lettered');
