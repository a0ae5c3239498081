"""The one error type of the config package."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration problem, stated so that an admin can fix it without reading code.

    `str(error)` is one line: the file, the key path (``listeners[0].port``) and what was
    expected. `key_path` is empty when the problem is not about one key (unreadable file,
    YAML syntax error).
    """

    def __init__(self, file: str, key_path: str, message: str) -> None:
        super().__init__(file, key_path, message)
        self.file = file
        self.key_path = key_path
        self.message = message

    def __str__(self) -> str:
        if self.key_path:
            return f"{self.file}: {self.key_path}: {self.message}"
        return f"{self.file}: {self.message}"
