"""Subcommand groups of ``xrserver``; each module has ``register(subparsers)``."""

from types import ModuleType

from xrserver.commands import serve, twin

COMMAND_MODULES: tuple[ModuleType, ...] = (twin, serve)
