"""Password hashes for a credential file held on the device (the site console's sign-in).

The file: `{"users": {"technician": "pbkdf2_sha256$<iterations>$<salt b64>$<hash b64>"}}`, readable by its
owner only. Written by `energy-edge console set-password` (and by the local run on first start); read by the
console module on every sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

ITERATIONS = 200_000


def hash_password(password: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, iterations, salt, digest = encoded.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def read_credentials(path: Path) -> dict[str, str]:
    """User → encoded hash; {} when the file is missing or unreadable."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    users = doc.get("users") if isinstance(doc, dict) else None
    return {str(k): str(v) for k, v in users.items()} if isinstance(users, dict) else {}


def write_credentials(path: Path, users: dict[str, str]) -> None:
    """Write hashes (user → encoded hash), readable by the owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"users": users}, f, indent=2)
    tmp.replace(path)


def set_password(path: Path, user: str, password: str) -> None:
    """Add or replace one user's password in the file, keeping the others."""
    write_credentials(path, {**read_credentials(path), user: hash_password(password)})
