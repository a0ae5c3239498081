"""The Matrix event model: room versions, PDUs, hashing, signing, redaction, authorisation, state resolution.

Shared by the client-server and federation sides, so it imports neither storage nor HTTP code.
"""
