"""The media repository: uploads and downloads of files, sealed at rest (thumbnails and URL previews too)."""
