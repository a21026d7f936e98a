"""Subcommand groups of ``xrserver``; each module has ``register(subparsers)``."""

from types import ModuleType

from xrserver.commands import twin

COMMAND_MODULES: tuple[ModuleType, ...] = (twin,)
