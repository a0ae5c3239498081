-- Privacy policy consent and server-notice rooms (issue 6).
--
-- Nothing here is user-written text: user and room IDs, policy versions and times only.

-- Who accepted which version of the privacy policy, and when (at registration through
-- m.login.terms, or later through the consent endpoint). Kept as a record: one row per
-- (user, version), never updated.
CREATE TABLE privacy_policy_consents (
    user_id TEXT NOT NULL,
    version TEXT NOT NULL,
    accepted_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, version)
);

-- The accounts the server created as its server-notices sender. Start-up refuses a configured
-- system localpart that belongs to an account not listed here (a person's account).
CREATE TABLE server_notices_system_users (
    user_id TEXT NOT NULL PRIMARY KEY,
    created_ts BIGINT NOT NULL
);

-- One server-notices room per user. A room listed here was made by the server, is not end-to-end
-- encrypted (the server writes its notices itself) and users can't post in it.
CREATE TABLE server_notice_rooms (
    user_id TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL UNIQUE,
    created_ts BIGINT NOT NULL
);

-- One job per policy version announced to every local user: `last_user_id` is how far it got
-- (users are walked in user ID order), so a restart resumes; `finished_ts` is set when done.
CREATE TABLE privacy_policy_announcements (
    version TEXT NOT NULL PRIMARY KEY,
    started_ts BIGINT NOT NULL,
    last_user_id TEXT NOT NULL DEFAULT '',
    finished_ts BIGINT
);

-- Which users were told about which version, with the notice's event: a version is announced
-- to a user at most once, whatever restarts happen.
CREATE TABLE privacy_policy_notices (
    user_id TEXT NOT NULL,
    version TEXT NOT NULL,
    event_id TEXT NOT NULL,
    sent_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, version)
);
