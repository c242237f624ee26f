"""IoT Hub's error vocabulary: named errors with their HTTP status and six-digit error code, and the JSON
body IoT Hub's service API answers them with.

The numeric codes are IoT Hub's (status x 1000 + detail), as the official SDKs list them
(`IotHubServiceErrorCode` in azure-iot-sdk-csharp) and the IoT Hub error-code documentation describes them.
`NotImplementedInEmulator` is the emulator's own: an operation Azure offers that this emulator does not.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

# name -> (HTTP status, IoT Hub error code)
ERRORS: dict[str, tuple[int, int]] = {
    "ArgumentInvalid": (400, 400004),
    "IotHubFormatError": (400, 400006),
    "InvalidConfigurationTargetCondition": (400, 400048),
    "InvalidConfigurationContent": (400, 400049),
    "IotHubUnauthorized": (401, 401003),
    "DeviceNotFound": (404, 404001),
    "ModuleNotFound": (404, 404010),
    "ConfigurationNotFound": (404, 404004),
    "DeviceNotOnline": (404, 404103),
    "ModuleAlreadyExistsOnDevice": (409, 409301),
    "ConfigurationAlreadyExists": (409, 409004),
    "PreconditionFailed": (412, 412001),
    "MessageTooLarge": (413, 413001),
    "NotImplementedInEmulator": (501, 501000),
    "GatewayTimeout": (504, 504101),
}


class HubError(Exception):
    """A request the hub refuses, named by IoT Hub's error name (a key of `ERRORS`)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        if error not in ERRORS:
            raise KeyError(f"unknown IoT Hub error {error!r}")
        self.error = error
        self.status, self.code = ERRORS[error]


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def error_body(error: str, message: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """IoT Hub's error body: `Message` is a JSON string with the numeric `errorCode`, plus `ExceptionMessage`."""
    _, code = ERRORS[error]
    tracking_id = uuid.uuid4().hex.upper()
    inner = {"errorCode": code, "trackingId": tracking_id, "message": message, "timestampUtc": _utc_now()}
    body: dict[str, Any] = {
        "Message": json.dumps(inner),
        "ExceptionMessage": f"Tracking ID:{tracking_id}-TimeStamp:{inner['timestampUtc']}",
    }
    if extra:
        body.update(extra)
    return body


def parse_error_body(body: Any) -> dict[str, Any]:
    """The inner error of an IoT Hub error body (what operators' scripts read), or {} if it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("Message"), str):
        return {}
    try:
        inner = json.loads(body["Message"])
    except ValueError:
        return {}
    return inner if isinstance(inner, dict) else {}
