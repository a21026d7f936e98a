"""Subcommand groups of ``xrserver``; each module has ``register(subparsers)``."""

from types import ModuleType

from xrserver.commands import models, serve, twin, watch

COMMAND_MODULES: tuple[ModuleType, ...] = (twin, models, serve, watch)
