"""`energy-edge console set-password`: the site console's sign-in credential, held on the device.

The console module reads `CONSOLE_CREDENTIALS_FILE` (default `$STATE_DIR/console-credentials.json`, on the
module's volume) on every sign-in. Run this on the device (or write the file to the volume); the twin never
carries a credential.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from energy_edge_base.credentials import set_password

MIN_PASSWORD_CHARS = 10


def _set_password(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"new password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            print("energy-edge: the two passwords differ; nothing was written", file=sys.stderr)
            return 1
    if len(password) < MIN_PASSWORD_CHARS:
        print(f"energy-edge: password: at least {MIN_PASSWORD_CHARS} characters; nothing was written", file=sys.stderr)
        return 1
    set_password(Path(args.file), args.user, password)
    print(f"{args.user}: password set in {args.file}")
    return 0


def add_console_parser(subparsers: Any) -> None:
    console = subparsers.add_parser("console", help="the site console's sign-in credential")
    console_sub = console.add_subparsers(dest="console_command", required=True)
    setpw = console_sub.add_parser("set-password", help="add or change a user's password in the credential file")
    setpw.add_argument("--file", required=True,
                       help="credential file, e.g. the console volume's /app/data/console-credentials.json")
    setpw.add_argument("--user", default="technician")
    setpw.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    setpw.set_defaults(func=_set_password)
