"""Subcommand groups of ``xrserver``; each module has ``register(subparsers)``."""

from types import ModuleType

from xrserver.commands import bank, models, serve, twin, watch

COMMAND_MODULES: tuple[ModuleType, ...] = (twin, models, bank, serve, watch)
