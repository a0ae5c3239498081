"""Fixtures of the end-to-end tests (defined in server_process)."""

from tests.e2e.server_process import homeserver

__all__ = ["homeserver"]
