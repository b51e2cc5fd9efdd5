"""Who may do what on the avatar gateway: the three roles, their tokens and their operations.

Roles: ``operator`` (talks to the twin: may stream the browser microphone and type to it),
``trainer`` (may type to the twin, and steers the mission: pause, resume, skip a phase, fire an
inject, end) and ``viewer`` (read-only).

Tokens come from the session's secret (``twin.actor.SessionInfo.secret``: made by the runtime for
each session, passed to the actors, never written to the session log)::

    token(role) = base64url(HMAC-SHA256(secret, "<session id>/<role>"))[:32]

so the links ``twin run`` prints and the gateway agree without the tokens being stored anywhere,
and a gateway that Ray restarts accepts the same links. A gateway started without a secret (a
bare test) makes one of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Role = Literal["operator", "trainer", "viewer"]
ROLES: tuple[Role, ...] = ("operator", "trainer", "viewer")

# What each role may send beyond "hello" and "ping" (which every role may).
OPERATIONS: dict[Role, frozenset[str]] = {
    "operator": frozenset({"audio", "say"}),
    "trainer": frozenset({"control", "say"}),
    "viewer": frozenset(),
}
ALWAYS = frozenset({"hello", "ping"})


def derive_token(secret: str, session: str, role: Role) -> str:
    """The token of ``role`` in ``session`` (see the module docstring)."""
    digest = hmac.new(secret.encode(), f"{session}/{role}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:32]


@dataclass(frozen=True)
class Access:
    """The tokens of one session and the checks made on every socket."""

    tokens: Mapping[Role, str]

    @classmethod
    def from_secret(cls, secret: str, session: str) -> Access:
        return cls({role: derive_token(secret, session, role) for role in ROLES})

    @classmethod
    def random(cls) -> Access:
        return cls.from_secret(secrets.token_urlsafe(24), "local")

    def role_of(self, token: object) -> Role | None:
        """The role ``token`` opens, or None (compared in constant time, every role checked)."""
        if not isinstance(token, str) or not token:
            return None
        found: Role | None = None
        for role, expected in self.tokens.items():
            if hmac.compare_digest(token.encode(), expected.encode()):
                found = role
        return found

    @staticmethod
    def may(role: Role, operation: str) -> bool:
        return operation in ALWAYS or operation in OPERATIONS[role]

    def links(self, base_url: str) -> dict[str, str]:
        """One link per role: the page at ``base_url`` with the token in the fragment (so it
        never reaches a server log or a Referer header)."""
        base = base_url.rstrip("/")
        return {role: f"{base}/#token={self.tokens[role]}" for role in ROLES}
