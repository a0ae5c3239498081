-- OpenID tokens: short-lived tokens a user hands to a third party (an integration manager, a
-- widget) so it can learn their Matrix ID from /_matrix/federation/v1/openid/userinfo.
-- Only the SHA-256 of a token is kept; an expired row is useless and is deleted when a new
-- token is issued.
CREATE TABLE openid_tokens (
    token_hash BLOB NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    valid_until_ms BIGINT NOT NULL
);
CREATE INDEX openid_tokens_valid_until ON openid_tokens (valid_until_ms);
CREATE INDEX openid_tokens_user ON openid_tokens (user_id);
