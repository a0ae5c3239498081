"""Errors the storage layer raises for an operator to read and act on."""

from __future__ import annotations


class StorageError(Exception):
    """Base of the storage layer's own errors; the message is meant for an admin."""


class DatabaseConfigError(StorageError):
    """The `database` config section cannot be used (bad engine name, missing driver, ...)."""


class IncompatibleDatabaseError(StorageError):
    """The database exists but is unsafe or unusable for us (locale, encoding, version)."""


class SchemaTooNewError(IncompatibleDatabaseError):
    """The database was upgraded by a newer release than this one."""


class DatabaseClosedError(StorageError):
    """A transaction was requested after `Database.close()`."""


class DatabaseInUseError(StorageError):
    """Another process holds the database's exclusive lock (a running server, or an admin command)."""
