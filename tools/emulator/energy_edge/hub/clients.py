"""Real Azure IoT SDK module clients for the emulator's modules, made the way a module makes its own.

`IoTHubModuleClient.create_from_edge_environment()` reads the `IOTEDGE_*` variables IoT Edge gives a module
and asks the workload API for its token. The emulator's `hub.json` holds those variables per module; a test,
a benchmark or a script that plays a module sets them for the duration of the factory call, so the client it
gets is the production client, connected through the production path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any


@contextlib.contextmanager
def module_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration, then restore them (the SDK's factories read os.environ)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def module_client(hub_json: Mapping[str, Any], module_id: str, *, asyncio: bool = True, **options: Any) -> Any:
    """A real `IoTHubModuleClient` (the asyncio one, or the synchronous one) for `module_id` of this hub.

    `options` go to the factory (e.g. `sastoken_ttl`). KeyError when the hub has no such module."""
    env = hub_json["modules"][module_id]["env"]
    if asyncio:
        from azure.iot.device.aio import IoTHubModuleClient
    else:
        from azure.iot.device import IoTHubModuleClient  # type: ignore[assignment]
    with module_environment(env):
        return IoTHubModuleClient.create_from_edge_environment(**options)
