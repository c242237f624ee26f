"""How the controller module sends its commands: batches per module, singles, fallbacks and retries.

The asset modules are replaced by a recorder of direct-method calls (the batch method itself is tested on
the registry in shared/tests/test_batch_methods.py and over the real stack in the module tests).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from controller_module.core.config import ControllerConfig
from controller_module.core.controller import Decision
from controller_module.module import ControllerModule


class Recorder(ControllerModule):
    def __init__(self, batch_known: bool = True, failing: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.batch_known, self.failing = batch_known, failing
        self._config = ControllerConfig()

    @property
    def config(self) -> ControllerConfig:  # type: ignore[override]
        return self._config

    def _answer(self, asset_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        if asset_id in self.failing:
            return {"status": 503, "payload": {"error": f"{asset_id} is offline"}}
        return {"status": 200, "payload": {"applied": payload}}

    async def invoke(self, module_id: str, method: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        self.calls.append((module_id, method, payload))
        if method in ("set_powers", "set_outputs"):
            if not self.batch_known:
                return {"status": 404, "payload": {"error": "unknown method", "known_methods": ["set_power"]}}
            results = [self._answer(c["asset_id"], c) for c in payload["commands"]]
            return {"status": 200, "payload": {"results": results}}
        return self._answer(payload["asset_id"], payload)


def write(module: Recorder, battery_kw: dict[str, float], solar_kw: dict[str, float | None] | None = None) -> None:
    decision = Decision(battery_kw, solar_kw or {}, {}, cast(Any, None))
    asyncio.run(module._write(decision, None))


@pytest.mark.parametrize(
    ("case", "battery_kw", "solar_kw", "expected_calls"),
    [
        ("one battery: the single method", {"b1": 10.0}, {}, [("battery", "set_power")]),
        ("three batteries: one batch", {"b1": 10.0, "b2": -5.0, "b3": 0.0}, {}, [("battery", "set_powers")]),
        ("batteries and inverters: one batch each", {"b1": 10.0, "b2": 5.0}, {"pv1": 40.0, "pv2": None},
         [("battery", "set_powers"), ("solar", "set_outputs")]),
    ],
)
def test_commands_are_batched_per_module(case: str, battery_kw: dict[str, float],
                                         solar_kw: dict[str, float | None],
                                         expected_calls: list[tuple[str, str]]) -> None:
    module = Recorder()
    write(module, battery_kw, solar_kw)
    assert sorted((m, method) for m, method, _ in module.calls) == sorted(expected_calls), case
    sent_assets = {asset_id for asset_id, _ in module.sent}
    assert sent_assets == set(battery_kw) | set(solar_kw), case


def test_batch_payload_carries_each_command() -> None:
    module = Recorder()
    write(module, {"b1": 10.0, "b2": -5.0}, {"pv1": None})
    batch = next(p for _, method, p in module.calls if method == "set_powers")
    assert batch == {"commands": [{"asset_id": "b1", "power_kw": 10.0}, {"asset_id": "b2", "power_kw": -5.0}]}
    single = next(p for _, method, p in module.calls if method == "set_output")
    assert single == {"asset_id": "pv1", "percent": 100}


def test_module_without_batch_method_gets_single_calls_from_then_on() -> None:
    module = Recorder(batch_known=False)
    write(module, {"b1": 10.0, "b2": -5.0})
    assert [method for _, method, _ in module.calls] == ["set_powers", "set_power", "set_power"]
    module.calls.clear()
    write(module, {"b1": 20.0, "b2": -15.0})
    assert [method for _, method, _ in module.calls] == ["set_power", "set_power"]


def test_a_failed_item_is_retried_and_the_others_are_not_resent() -> None:
    module = Recorder(failing=frozenset({"b2"}))
    write(module, {"b1": 10.0, "b2": -5.0, "b3": 3.0})
    assert set(module.sent) == {("b1", "set_power"), ("b3", "set_power")}
    module.failing = frozenset()
    module.calls.clear()
    write(module, {"b1": 10.2, "b2": -5.0, "b3": 3.0})  # b1 moved less than the deadband
    assert module.calls == [("battery", "set_power", {"asset_id": "b2", "power_kw": -5.0})]
