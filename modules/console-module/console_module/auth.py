"""Sign-in for operator actions: a credential file on the device, sessions, CSRF tokens and lock-out.

The credential lives on the module's volume (or wherever `CONSOLE_CREDENTIALS_FILE` points), never in the
twin: whoever can edit the twin can enable actions, not sign in. The file holds PBKDF2-SHA256 hashes:
`{"users": {"technician": "pbkdf2_sha256$<iterations>$<salt b64>$<hash b64>"}}`
(`energy-edge console set-password` writes it; `energy_edge_base.credentials`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from energy_edge_base.credentials import hash_password, read_credentials, verify_password

# one address may try more often than one user name (a shared tablet, several technicians), but not without end
ADDRESS_FACTOR = 4


class Credentials:
    """The file is read on every sign-in: a password changed on the device takes effect without a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def users(self) -> dict[str, str]:
        return read_credentials(self.path)

    @property
    def configured(self) -> bool:
        return bool(self.users())

    def check(self, user: str, password: str) -> bool:
        encoded = self.users().get(user)
        if encoded is None:
            verify_password(password, hash_password("x", salt=b"\0" * 16))  # same cost for unknown names
            return False
        return verify_password(password, encoded)


@dataclass
class Session:
    user: str
    csrf: str
    expires_s: float


@dataclass
class Failures:
    times: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class Sessions:
    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.failures: dict[str, Failures] = {}

    def create(self, user: str, now_s: float, ttl_s: float) -> tuple[str, Session]:
        self.sessions = {k: s for k, s in self.sessions.items() if s.expires_s > now_s}
        token = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), now_s + ttl_s)
        self.sessions[token] = session
        return token, session

    def get(self, token: str | None, now_s: float) -> Session | None:
        session = self.sessions.get(token or "")
        if session is None or session.expires_s <= now_s:
            return None
        return session

    def end(self, token: str | None) -> None:
        self.sessions.pop(token or "", None)

    # ------------------------------------------------------------ lock-out

    def locked_until(self, keys: list[str], now_s: float) -> float:
        return max((f.locked_until for k in keys if (f := self.failures.get(k)) and f.locked_until > now_s),
                   default=0.0)

    def failed(self, user: str, address: str, now_s: float, max_failures: int, lockout_s: float) -> None:
        """Count a failed sign-in against the user name and the address; lock when either reaches its bound
        within the lock-out window."""
        for key, bound in ((f"user:{user}", max_failures), (f"addr:{address}", ADDRESS_FACTOR * max_failures)):
            entry = self.failures.setdefault(key, Failures())
            entry.times = [t for t in entry.times if t > now_s - lockout_s] + [now_s]
            if len(entry.times) >= bound:
                entry.locked_until, entry.times = now_s + lockout_s, []

    def succeeded(self, user: str) -> None:
        self.failures.pop(f"user:{user}", None)
