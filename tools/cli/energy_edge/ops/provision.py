"""`energy-edge provision`: zero-touch provisioning of IoT Edge devices through DPS.

A DPS group enrollment with symmetric-key attestation holds one group key. Each device proves membership
with a key derived from it and its registration id, so no per-device secret has to be created in Azure:

    device key = base64( HMAC-SHA256( base64decode(group key), registration id as UTF-8 ) )

    energy-edge provision device-key --registration-id site-berlin-01-edge   # group key from DPS_GROUP_KEY
    energy-edge provision device-key --group-key "$KEY" --registration-id site-berlin-01-edge

The device writes the derived key to a file the IoT Edge key service reads, and its /etc/aziot/config.toml
names the DPS ID scope and the registration id (deployment/ansible/ does both over SSH).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import os
import re
import sys
from typing import Any

GROUP_KEY_ENV = "DPS_GROUP_KEY"
# DPS: alphanumeric, lower case, and '-', '.', '_', ':'; at most 128 characters.
_REGISTRATION_ID = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,127}$")


class ProvisioningError(ValueError):
    """Bad input for provisioning; the message says which and why."""


def check_registration_id(registration_id: str) -> str:
    if not _REGISTRATION_ID.match(registration_id):
        raise ProvisioningError(
            f"registration id {registration_id!r} is not valid for DPS: lower-case letters, digits, "
            "'-', '.', '_' and ':', starting with a letter or digit, at most 128 characters")
    return registration_id


def decode_key(key: str) -> bytes:
    try:
        raw = base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProvisioningError("the group key is not base64 (copy the enrollment group's primary key)") from exc
    if len(raw) < 16:
        raise ProvisioningError(f"the group key decodes to {len(raw)} bytes; a DPS symmetric key has 32 or 64")
    return raw


def derive_device_key(group_key: str, registration_id: str) -> str:
    """The device's symmetric key for a DPS group enrollment (the derivation DPS applies itself)."""
    digest = hmac.new(decode_key(group_key), check_registration_id(registration_id).encode("utf-8"),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _device_key_command(args: argparse.Namespace) -> int:
    group_key = args.group_key or os.environ.get(GROUP_KEY_ENV, "")
    if not group_key:
        print(f"energy-edge provision device-key: give --group-key or set {GROUP_KEY_ENV}", file=sys.stderr)
        return 2
    try:
        print(derive_device_key(group_key, args.registration_id))
    except ProvisioningError as exc:
        print(f"energy-edge provision device-key: {exc}", file=sys.stderr)
        return 2
    return 0


def add_provision_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `provision device-key` to an argparse subparsers object; `func(args)` returns the exit code."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "provision", help="zero-touch provisioning through DPS: derive a device's key from the group key",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="provision_command", required=True)
    device_key = commands.add_parser("device-key", help="a device's symmetric key for a DPS group enrollment")
    device_key.add_argument("--group-key", help=f"the enrollment group's primary or secondary key "
                                                f"(default: ${GROUP_KEY_ENV}, which keeps it out of the shell history)")
    device_key.add_argument("--registration-id", required=True, help="the device's registration id in DPS")
    device_key.set_defaults(func=_device_key_command)
    return parser
