"""Tokens per role, checked in constant time, never logged.

Roles and what they may do:

* ``operator``: receive overlays, send feedback on defects;
* ``supervisor``: everything an operator may, plus history, alerts and statistics;
* ``admin``: everything, including configuration;
* ``camera``: publish frames into the server (and nothing else).

Tokens come from the configuration or, when it sets none, are generated at start (as Jupyter
does), so even the default server is never open to anyone.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Role = Literal["operator", "supervisor", "admin", "camera"]
ROLES: tuple[Role, ...] = ("operator", "supervisor", "admin", "camera")
Permission = Literal["view", "feedback", "history", "configure", "publish"]

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    "operator": frozenset({"view", "feedback"}),
    "supervisor": frozenset({"view", "feedback", "history"}),
    "admin": frozenset({"view", "feedback", "history", "configure"}),
    "camera": frozenset({"publish"}),
}
MIN_TOKEN_CHARS = 16


class AuthError(Exception):
    """A missing, unknown or insufficient token. The message never contains the token."""


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role

    def can(self, permission: Permission) -> bool:
        return permission in PERMISSIONS[self.role]


class TokenAuth:
    """Maps tokens to roles. Several tokens may share a role; a token has one role."""

    def __init__(self, tokens: Mapping[Role, list[str]]) -> None:
        self._tokens: list[tuple[str, Role]] = []
        for role, values in tokens.items():
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; use one of {ROLES}")
            for token in values:
                if len(token) < MIN_TOKEN_CHARS:
                    raise ValueError(f"a {role} token is shorter than {MIN_TOKEN_CHARS} characters")
                self._tokens.append((token, role))
        if len({t for t, _ in self._tokens}) != len(self._tokens):
            raise ValueError("the same token is given to more than one role")

    @classmethod
    def generate(cls) -> TokenAuth:
        """One fresh random token per role."""
        return cls({role: [secrets.token_urlsafe(24)] for role in ROLES})

    def token_for(self, role: Role) -> str:
        for token, r in self._tokens:
            if r == role:
                return token
        raise KeyError(f"no token for role {role!r}")

    def authenticate(self, token: str | None) -> Principal:
        """The principal holding ``token``; raises :class:`AuthError` for a missing or unknown one."""
        if not token:
            raise AuthError("missing token")
        found: Role | None = None
        for candidate, role in self._tokens:  # compare with every token: time does not reveal which matched
            if hmac.compare_digest(candidate.encode(), token.encode()):
                found = role
        if found is None:
            raise AuthError("unknown token")
        return Principal(found)

    def require(self, token: str | None, permission: Permission) -> Principal:
        principal = self.authenticate(token)
        if not principal.can(permission):
            raise AuthError(f"role {principal.role} may not {permission}")
        return principal

    def redactor(self) -> RedactTokens:
        return RedactTokens([t for t, _ in self._tokens])


class RedactTokens(logging.Filter):
    """A logging filter that replaces every known token, and any ``token=...`` query value, by ``***``."""

    _QUERY = re.compile(r"(token=)[^&\s\"']+")

    def __init__(self, tokens: list[str]) -> None:
        super().__init__()
        self._tokens = sorted(tokens, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self._QUERY.sub(r"\1***", message)
        for token in self._tokens:
            clean = clean.replace(token, "***")
        if clean != message:
            record.msg, record.args = clean, None
        return True
