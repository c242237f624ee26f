"""`energy-edge console set-password`: the site console's sign-in credential, held on the device.

The console module reads `CONSOLE_CREDENTIALS_FILE` (default `$STATE_DIR/console-credentials.json`, on the
module's volume) on every sign-in; the twin never carries a credential. The same command runs inside the
console's container as `python -m energy_edge_base.credentials`.
"""

from __future__ import annotations

import argparse
from typing import Any

from energy_edge_base import credentials


def _set_password(args: argparse.Namespace) -> int:
    argv = ["--user", args.user, *(["--file", args.file] if args.file else []),
            *(["--password-stdin"] if args.password_stdin else [])]
    return credentials.main(argv)


def add_console_parser(subparsers: Any) -> None:
    console = subparsers.add_parser("console", help="the site console's sign-in credential")
    console_sub = console.add_subparsers(dest="console_command", required=True)
    setpw = console_sub.add_parser("set-password", help="add or change a user's password in the credential file")
    setpw.add_argument("--file", help="credential file (default: $STATE_DIR/console-credentials.json)")
    setpw.add_argument("--user", default="technician")
    setpw.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    setpw.set_defaults(func=_set_password)
