"""The microgrid-controller device over MQTT, against a real Mosquitto broker the test starts.

A small MQTT "controller" publishes the topic map's points and confirms set commands, as a site
controller that speaks MQTT would.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from energy_edge_base.methods import MethodError
from energy_edge_base.modbus import DeviceUnavailable
from microgrid_controller_module.config import PccSettings
from microgrid_controller_module.device import PccDevice
from microgrid_controller_module.registers import PCC_TOPICS

pytestmark = pytest.mark.integration

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if not Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is not installed (make install installs it: apt-get install mosquitto)")
    port = free_port()
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(10)


class MqttSiteController:
    """Publishes the points every 0.2 s and echoes accepted commands, like a real controller."""

    def __init__(self, port: int, prefix: str) -> None:
        self.prefix = prefix
        self.values: dict[str, float] = {"grid_import_w": 42_000, "site_load_w": 90_000, "frequency_hz": 50.0,
                                         "voltage_v": 400.0, "status": 0b101, "import_energy_kwh": 10.0,
                                         "export_energy_kwh": 1.0, "fault_code": 0, "heartbeat": 0,
                                         "import_limit_w": 150_000, "peak_shaving_enable": 1, "der_enable": 0,
                                         "reset": 0}
        self.ignore_commands = False
        self.client = paho.Client(client_id="site-controller", protocol=paho.MQTTv311)
        self.client.on_message = self._on_command
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{prefix}/set/#", qos=1)
        self.client.loop_start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish_loop, daemon=True)
        self._thread.start()

    def _on_command(self, client: Any, userdata: Any, message: Any) -> None:
        if self.ignore_commands:
            return  # keeps publishing its old values, as a controller in local mode would
        topic = message.topic.removeprefix(f"{self.prefix}/set/")
        point = next(p for p in PCC_TOPICS if p.topic == topic)
        self.values[point.name] = float(json.loads(message.payload)["value"])
        client.publish(f"{self.prefix}/{point.topic}", json.dumps({"value": self.values[point.name]}), qos=1)

    def _publish_loop(self) -> None:
        while not self._stop.wait(0.2):
            self.values["heartbeat"] = int(time.monotonic()) % 65536  # its own clock: the data is live
            for point in PCC_TOPICS:
                payload = str(self.values[point.name])  # plain numbers work as well as {"value": …}
                self.client.publish(f"{self.prefix}/{point.topic}", payload, qos=0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)  # no publish may follow close()
        self.client.disconnect()
        self.client.loop_stop()


async def poll_until(device: PccDevice, predicate: Any, timeout_s: float = 10) -> None:
    import asyncio

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await device.poll()
            if predicate(device.values):
                return
        except DeviceUnavailable:
            pass
        assert time.monotonic() < deadline, f"values never matched: {device.values}"
        await asyncio.sleep(0.1)


async def test_mqtt_controller_telemetry_and_commands(broker: int) -> None:
    controller = MqttSiteController(broker, "site7/pcc")
    device = PccDevice(PccSettings(asset_id="mgc-mqtt", host="127.0.0.1", port=broker, protocol="mqtt",
                                   topic_prefix="site7/pcc", stale_after_s=1.0), None)
    try:
        await poll_until(device, lambda v: {p.name for p in PCC_TOPICS} <= set(v))
        device.health.poll_outcome(None)  # what the poll loop records for a good poll
        telemetry = device.telemetry("site-7")
        assert telemetry.grid_import_kw == 42.0  # type: ignore[attr-defined]
        assert telemetry.peak_shaving_active is True  # type: ignore[attr-defined]
        assert telemetry.der_active is False  # type: ignore[attr-defined]
        assert telemetry.import_limit_kw == 150.0  # type: ignore[attr-defined]

        assert await device.write("import_limit_w", 120_000) == 120_000
        assert controller.values["import_limit_w"] == 120_000
        assert await device.write("der_enable", 1) == 1

        controller.close()  # the controller goes away: silent, offline after stale_after_s
        deadline = time.monotonic() + 5
        with pytest.raises(DeviceUnavailable):
            while time.monotonic() < deadline:
                await device.poll()
                time.sleep(0.1)
        with pytest.raises(MethodError) as refused:  # and nobody confirms a command
            await device.write("import_limit_w", 100_000)
        assert refused.value.status == 503
    finally:
        controller.close()
        await device.close()
