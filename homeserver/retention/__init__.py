"""Message and media retention (MSC1763), set by the organisation's admins.

`policy`: policies and the organisation's bounds; `handler`: hiding expired events from every read
path and checking policies sent by local users; `purge`: the background jobs deleting expired
events and old media from storage. The SQL is in storage/stores/retention.py.
"""
