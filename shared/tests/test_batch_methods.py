"""Batch methods: one call, one result per command, the single method's semantics for each."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel, Field

from energy_edge_base.methods import MethodError, MethodRegistry


class SetRequest(BaseModel):
    asset_id: str | None = None
    power_kw: float = Field(ge=-100, le=100)


class SetResponse(BaseModel):
    asset_id: str
    power_kw: float


KNOWN = {"a", "b", "c"}


def registry() -> tuple[MethodRegistry, list[tuple[str, float]]]:
    applied: list[tuple[str, float]] = []
    methods = MethodRegistry()

    async def set_power(request: SetRequest) -> SetResponse:
        if request.asset_id not in KNOWN:
            raise MethodError(404, f"unknown asset_id {request.asset_id!r}", known_assets=sorted(KNOWN))
        if request.asset_id == "c":
            raise RuntimeError("device exploded")  # a handler crash stays that item's 500
        await asyncio.sleep(0)
        applied.append((request.asset_id, request.power_kw))
        return SetResponse(asset_id=request.asset_id, power_kw=request.power_kw)

    methods.register("set_power", SetRequest, SetResponse, set_power)
    methods.register_batch("set_powers", "set_power")
    return methods, applied


@pytest.mark.parametrize(
    ("case", "payload", "status", "item_statuses", "applied", "error_field"),
    [
        ("all good", {"commands": [{"asset_id": "a", "power_kw": 10}, {"asset_id": "b", "power_kw": -5}]},
         200, [200, 200], [("a", 10), ("b", -5)], None),
        ("one unknown asset: only that item fails",
         {"commands": [{"asset_id": "a", "power_kw": 10}, {"asset_id": "x", "power_kw": 1}]},
         200, [200, 404], [("a", 10)], None),
        ("a crashing item is that item's 500",
         {"commands": [{"asset_id": "c", "power_kw": 1}, {"asset_id": "b", "power_kw": 2}]},
         200, [500, 200], [("b", 2)], None),
        ("an invalid item refuses the whole batch, naming the field",
         {"commands": [{"asset_id": "a", "power_kw": 10}, {"asset_id": "b", "power_kw": 500}]},
         400, None, [], "commands.1.power_kw"),
        ("the same asset twice is refused", {"commands": [{"asset_id": "a", "power_kw": 1},
                                                          {"asset_id": "a", "power_kw": 2}]},
         400, None, [], "commands.1.asset_id"),
        ("empty batch", {"commands": []}, 400, None, [], "commands"),
        ("not a list", {"commands": {"asset_id": "a"}}, 400, None, [], "commands"),
        ("unknown field", {"commands": [{"asset_id": "a", "power_kw": 1}], "force": True}, 400, None, [], "force"),
    ],
)
def test_batch(case: str, payload: Any, status: int, item_statuses: list[int] | None,
               applied: list[tuple[str, float]], error_field: str | None) -> None:
    methods, done = registry()
    result = asyncio.run(methods.dispatch("set_powers", payload))
    assert result.status == status, (case, result.payload)
    assert sorted(done) == sorted(applied), case
    if item_statuses is not None:
        assert [item["status"] for item in result.payload["results"]] == item_statuses
        ok = [item["payload"] for item in result.payload["results"] if item["status"] == 200]
        assert all(set(p) == {"asset_id", "power_kw"} for p in ok)
    if error_field is not None:
        assert error_field in [e["field"] for e in result.payload["errors"]], result.payload


def test_batch_is_described_like_any_method() -> None:
    methods, _ = registry()
    described = methods.describe()["set_powers"]
    assert described["request"]["properties"]["commands"]["type"] == "array"
    assert "results" in described["response"]["properties"]


def test_batch_of_an_unknown_method_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        MethodRegistry().register_batch("set_many", "set_one")
