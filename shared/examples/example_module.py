"""A small module on the runtime: the shape every energy-edge module has, without a device.

It sends a counter on output `telemetry` every `interval_s`, answers `set_setpoint` (clamped to
`max_setpoint_kw`), `get_state` and `fail` (a handler that raises, to show the 500 path), and goes
to setpoint 0 as its safe state. The integration tests drive it through the emulator.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys

from pydantic import BaseModel, ConfigDict, Field

from energy_edge_base.config import ConfigRejected
from energy_edge_base.runtime import EdgeModule, run_module

log = logging.getLogger("example")


class ExampleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", title="example module configuration")
    site_id: str = Field("site-1", min_length=1, description="Site the module belongs to.")
    interval_s: float = Field(1.0, ge=0.05, le=3600, description="Telemetry interval, seconds.")
    max_setpoint_kw: float = Field(50.0, gt=0, le=10_000, description="Largest setpoint accepted, kW.")
    label: str = Field("example", description="Free text echoed in telemetry.")


class SetpointRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    setpoint_kw: float = Field(description="Requested setpoint, kW (+ = deliver to the site bus).")


class SetpointResponse(BaseModel):
    requested_kw: float
    applied_kw: float
    clamped: bool


class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StateResponse(BaseModel):
    setpoint_kw: float
    sent: int
    label: str


class ExampleModule(EdgeModule[ExampleConfig]):
    name = "example"
    config_model = ExampleConfig
    outputs = EdgeModule.outputs | {"telemetry"}

    def __init__(self) -> None:
        super().__init__()
        self.setpoint_kw = 0.0
        self.sent = 0
        self.methods.register("set_setpoint", SetpointRequest, SetpointResponse, self.set_setpoint)
        self.methods.register("get_state", Empty, StateResponse, self.get_state)
        self.methods.register("fail", Empty, Empty, self.fail)

    async def apply_config(self, config: ExampleConfig) -> None:
        if config.label == "forbidden":  # stands for a check only the module can make
            raise ConfigRejected("label 'forbidden' is reserved", "label")
        self.setpoint_kw = max(-config.max_setpoint_kw, min(config.max_setpoint_kw, self.setpoint_kw))

    async def run(self) -> None:
        while True:
            self.send(
                "telemetry",
                {
                    "site_id": self.config.site_id,
                    "seq": self.sent,
                    "setpoint_kw": self.setpoint_kw,
                    "label": self.config.label,
                    "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(),
                },
                {"messageType": "telemetry", "assetType": "example", "schemaVersion": "1.0"},
            )
            self.sent += 1
            await asyncio.sleep(self.config.interval_s)

    async def safe_state(self) -> None:
        self.setpoint_kw = 0.0
        log.info("safe state: setpoint 0 kW")

    async def set_setpoint(self, request: SetpointRequest) -> SetpointResponse:
        limit = self.config.max_setpoint_kw
        applied = max(-limit, min(limit, request.setpoint_kw))
        self.setpoint_kw = applied
        return SetpointResponse(requested_kw=request.setpoint_kw, applied_kw=applied,
                                clamped=applied != request.setpoint_kw)

    async def get_state(self, request: Empty) -> StateResponse:
        return StateResponse(setpoint_kw=self.setpoint_kw, sent=self.sent, label=self.config.label)

    async def fail(self, request: Empty) -> Empty:
        raise RuntimeError("this handler always fails")


if __name__ == "__main__":
    sys.exit(run_module(ExampleModule()))
