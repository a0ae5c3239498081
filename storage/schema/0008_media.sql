-- The media repository's metadata; the files themselves live sealed under media_store_path.
--
-- Columns marked SEALED hold blobs sealed with the organisation's data key.

-- One row per local media ID. A row with upload_ts NULL was reserved by
-- POST /_matrix/media/v1/create and waits (until expires_ts) for its content.
CREATE TABLE local_media (
    media_id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,             -- the uploader, so their media can be listed and deleted
    created_ts BIGINT NOT NULL,
    expires_ts BIGINT,                 -- for a reserved ID: when it stops accepting an upload
    upload_ts BIGINT,                  -- NULL until the content is stored
    content_type TEXT,
    size BIGINT,
    upload_name BLOB                   -- SEALED file name given by the uploader
);

CREATE INDEX local_media_user ON local_media (user_id, created_ts);

-- Generated thumbnails of local media, sealed on disk like the originals.
CREATE TABLE local_media_thumbnails (
    media_id TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    method TEXT NOT NULL,              -- "scale" or "crop"
    animated BOOLEAN NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (media_id, width, height, method, animated)
);
