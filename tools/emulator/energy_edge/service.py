"""The hub's service API as energy-edge's own tools call it: one connection-string parser and one client.

The operator commands use the official `azure-iot-hub` SDK for what it offers (twins, methods, configurations);
this client covers the rest: the emulator's `/admin` endpoints, raw JSON bodies, and calls from the local run's
live view. Both start from the same parsed `ServiceCredentials`.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from energy_edge.hub import identity

API_VERSION = "2021-04-12"


class ConnectionStringError(ValueError):
    """A connection string that cannot be used for the service API; the message says why."""


@dataclass(frozen=True)
class ServiceCredentials:
    """A service policy's connection string, parsed: `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`."""

    host: str
    policy: str
    key: str
    connection_string: str

    def token(self, ttl_s: int = 3600) -> str:
        return identity.make_sas(self.host, self.key, ttl_s, policy=self.policy)


def parse_connection_string(text: str) -> ServiceCredentials:
    fields: dict[str, str] = {}
    for part in text.strip().split(";"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not value:
            raise ConnectionStringError(f"connection string part {part!r} is not Key=Value")
        fields[key] = value
    missing = {"HostName", "SharedAccessKeyName", "SharedAccessKey"} - fields.keys()
    if missing:
        hint = " (that is a device or module connection string; use a service policy's)" if "DeviceId" in fields \
            else ""
        raise ConnectionStringError(f"connection string lacks {', '.join(sorted(missing))}{hint}")
    return ServiceCredentials(fields["HostName"], fields["SharedAccessKeyName"], fields["SharedAccessKey"],
                              text.strip())


class ServiceClient:
    """JSON over HTTPS to the hub's service API, authorised with a fresh SAS token per call."""

    def __init__(self, credentials: ServiceCredentials, ca_cert: str | None = None, timeout_s: float = 10.0) -> None:
        self.credentials = credentials
        self.context = ssl.create_default_context(cafile=ca_cert)
        self.timeout_s = timeout_s

    @classmethod
    def from_hub_json(cls, hub: dict[str, Any], timeout_s: float = 10.0) -> ServiceClient:
        """A client of the emulator that wrote `hub` (its hub.json)."""
        return cls(parse_connection_string(hub["service_connection_string"]), hub.get("ca_cert"), timeout_s)

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        """(status, decoded JSON body) of one request; an HTTP error status is returned, not raised."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(
            f"https://{self.credentials.host}{path}", data=data, method=method,
            headers={"Authorization": self.credentials.token(), "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=self.timeout_s) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            text = exc.read()
            try:
                return exc.code, json.loads(text or b"null")
            except ValueError:
                return exc.code, {"message": text.decode(errors="replace")}

    def invoke(self, device_id: str, module_id: str, method: str, payload: Any = None, timeout_s: int = 10,
               raw: bytes | None = None) -> tuple[int, Any]:
        """A direct method on a module; `raw` sends a body as it is (e.g. what an SDK would refuse to encode)."""
        body = {"methodName": method, "payload": payload, "responseTimeoutInSeconds": timeout_s}
        return self.call("POST", f"/twins/{device_id}/modules/{module_id}/methods?api-version={API_VERSION}",
                         None if raw is not None else body, raw)
