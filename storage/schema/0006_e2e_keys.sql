-- End-to-end encryption keys: device identity keys, one-time and fallback keys, cross-signing
-- keys and their signatures, and the "device_lists" stream that tells /sync whose keys changed.
--
-- Everything here is public key material (clients publish it for others to download), so it is
-- stored as canonical JSON text, unsealed. A device's keys go with the device (ON DELETE CASCADE).

-- The signed device_keys object a device uploaded (without `unsigned`).
CREATE TABLE e2e_device_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

-- Unclaimed one-time keys; claiming one deletes its row. `id` orders claims by upload.
CREATE TABLE e2e_one_time_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    ts BIGINT NOT NULL,
    UNIQUE (user_id, device_id, algorithm, key_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

CREATE INDEX e2e_one_time_keys_claim ON e2e_one_time_keys (user_id, device_id, algorithm, id);

-- At most one fallback key per device and algorithm; `used` once handed out by a claim.
CREATE TABLE e2e_fallback_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, device_id, algorithm),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

-- The current master, self-signing and user-signing key of each user; key_id is the public key.
CREATE TABLE e2e_cross_signing_keys (
    user_id TEXT NOT NULL,
    key_type TEXT NOT NULL,         -- master, self_signing, user_signing
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, key_type)
);

-- Signatures added with /keys/signatures/upload, kept apart from the signed objects so that a
-- reader can show each requester only the signatures it may see. target_key_id is a device ID
-- or a master key's public key; signer_key_id is `ed25519:<device ID or public key>`.
CREATE TABLE e2e_cross_signing_signatures (
    target_user_id TEXT NOT NULL,
    target_key_id TEXT NOT NULL,
    signer_user_id TEXT NOT NULL,
    signer_key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
);

CREATE INDEX e2e_cross_signing_signatures_signer ON e2e_cross_signing_signatures (signer_user_id, signer_key_id);

-- One row per change of a user's devices or cross-signing keys. visible_to NULL: a change
-- everyone sharing a room with user_id hears about; else only visible_to hears about it (a
-- signature made with their own user-signing key on user_id's master key).
CREATE TABLE device_lists_stream (
    stream_id BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    device_id TEXT,
    visible_to TEXT
);

CREATE INDEX device_lists_stream_id ON device_lists_stream (stream_id);

-- /sync's device_lists needs the membership changes of other users in the syncing user's rooms.
CREATE INDEX room_memberships_room ON room_memberships (room_id, stream_ordering);
