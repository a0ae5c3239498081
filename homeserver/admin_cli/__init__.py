"""`piman admin ...` subcommands beyond media: one module per subject (users, holds, export...).

Each module defines `add_commands(admin_sub)`, which adds its subparsers to `piman admin` and sets
`func` on each; `homeserver.cli` calls every module's `add_commands`.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def add_all_commands(admin_sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_commands"):
            module.add_commands(admin_sub)
