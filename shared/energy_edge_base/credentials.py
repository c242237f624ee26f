"""Password hashes for a credential file held on the device (the site console's sign-in).

The file: `{"users": {"technician": "pbkdf2_sha256$<iterations>$<salt b64>$<hash b64>"}}`, readable by its
owner only. Written by `energy-edge console set-password` (and by the local run on first start), or inside the
console's container, where the CLI is not installed: `python -m energy_edge_base.credentials` (asks for the
password; defaults to `$STATE_DIR/console-credentials.json` and user `technician`). Read by the console module on
every sign-in.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import json
import os
import secrets
import sys
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


MIN_PASSWORD_CHARS = 10


def main(argv: list[str] | None = None) -> int:
    """Set a user's password in the credential file (from standard input with --password-stdin, else asked twice)."""
    parser = argparse.ArgumentParser(prog="energy-edge console set-password",
                                     description="Add or change a user's password in the console's credential file.")
    parser.add_argument("--file", default=str(Path(os.environ.get("STATE_DIR", "data")) / "console-credentials.json"),
                        help="credential file (default: $STATE_DIR/console-credentials.json, the console's volume)")
    parser.add_argument("--user", default="technician")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    args = parser.parse_args(argv)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"new password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            print("the two passwords differ; nothing was written", file=sys.stderr)
            return 1
    if len(password) < MIN_PASSWORD_CHARS:
        print(f"password: at least {MIN_PASSWORD_CHARS} characters; nothing was written", file=sys.stderr)
        return 1
    set_password(Path(args.file), args.user, password)
    print(f"{args.user}: password set in {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
