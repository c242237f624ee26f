"""The official azure-iot-hub samples about modules, twins, methods, configurations and queries, run unchanged
against the emulator (vendored, pinned to the installed SDK version: fixtures/azure_iot_hub_samples beside this
file).

Every sample catches its own errors and prints them ("HttpOperationError error <body>", "Unexpected error"), so
a run is judged by its output: it must finish, and print exactly what Azure IoT Hub would answer.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support import REPO, HubProcess, registry_manager, trust_ca_for_requests

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).parent / "fixtures" / "azure_iot_hub_samples"
PINNED_VERSION = "2.7.0"  # the samples' commit sets this version (fixtures README)


def _run(hub: HubProcess, sample: str, module_id: str | None = None) -> str:
    trust_ca_for_requests(Path(hub.hub_json["ca_cert"]))
    env = {**os.environ, "IOTHUB_CONNECTION_STRING": hub.service_connection_string(),
           "IOTHUB_DEVICE_ID": hub.hub_json["device_id"], "IOTHUB_MODULE_ID": module_id or "",
           "REQUESTS_CA_BUNDLE": os.environ.get("REQUESTS_CA_BUNDLE", hub.hub_json["ca_cert"])}
    result = subprocess.run([sys.executable, str(SAMPLES / sample)], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"{sample} finished" in result.stdout
    return result.stdout


def test_samples_match_the_installed_sdk() -> None:
    assert importlib.metadata.version("azure-iot-hub") == PINNED_VERSION, "re-vendor the samples (README)"


def _error_code(out: str) -> int:
    body = json.loads(out.split("HttpOperationError error ", 1)[1].splitlines()[0])
    code: int = json.loads(body["Message"])["errorCode"]
    return code


def test_module_sample(probe_hub: HubProcess) -> None:
    # Module identity create / get / update, twin get / replace all succeed. The sample then updates the twin
    # with the etag it read before its own replace; IoT Hub changes a twin's etag on every service update and
    # answers a stale quoted etag with 412 (412001), so the sample stops there on Azure, and here.
    registry_manager(probe_hub)  # the CA bundle the sample's requests use
    module_id = f"sample-{uuid.uuid4().hex[:6]}"
    out = _run(probe_hub, "iothub_registry_manager_module_sample.py", module_id)
    assert "Unexpected error" not in out, out
    assert out.count(f"iothubModule.module_id                      = {module_id}") == 3  # create, get, update
    assert "iothubModule.managed_by                     = testManagedBy" in out
    assert _error_code(out) == 412001
    manager = registry_manager(probe_hub)
    device_id = probe_hub.hub_json["device_id"]
    assert manager.get_module_twin(device_id, module_id).properties.desired["telemetryInterval"] == 9000  # replaced
    manager.delete_module(device_id, module_id)  # what the sample would have done next


def test_module_method_sample_gets_azures_answer_for_an_offline_module(probe_hub: HubProcess) -> None:
    # The sample invokes a method on the module it has just created, which nothing runs: Azure answers 404103
    # DeviceNotOnline, so the sample prints that error and never reaches its delete; the emulator must agree.
    module_id = f"sample-{uuid.uuid4().hex[:6]}"
    out = _run(probe_hub, "iothub_registry_manager_module_method_sample.py", module_id)
    assert _error_code(out) == 404103
    registry_manager(probe_hub).delete_module(probe_hub.hub_json["device_id"], module_id)


def test_query_sample(probe_hub: HubProcess) -> None:
    out = _run(probe_hub, "iothub_registry_manager_query_sample.py")
    assert "HttpOperationError" not in out and "Unexpected error" not in out, out
    assert f"device_id                      = {probe_hub.hub_json['device_id']}" in out
    assert "Continuation token: None" in out


def test_configuration_sample(probe_hub: HubProcess) -> None:
    out = _run(probe_hub, "iothub_configuration_manager_sample.py")
    assert "HttpOperationError" not in out and "Unexpected error" not in out, out
    assert "Created configuration" in out and "Get configuration" in out
    assert "No configuration found" in out  # it deleted the only one
