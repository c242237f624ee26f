"""Direct methods as a registry: each method declares a pydantic request and response model.

Answers follow HTTP semantics, as IoT Hub relays them to the caller:
- 200 with the response model;
- 400 with the validation errors (field, message) for an invalid payload: values are checked strictly
  (a boolean is not a number, a string is not a number, numbers must be finite) and nested no deeper
  than MAX_PAYLOAD_DEPTH;
- 404 with the list of known methods for an unknown method;
- a handler's own `MethodError` status (e.g. 409 when the device is offline);
- 500 with an error id, also logged, when a handler fails; the module keeps running.

A batch method (`register_batch`) runs one method for many assets in one call, with a result per item:
a gateway module driving 100 devices answers one call instead of 100 (IoT Hub relays direct methods one
HTTP request at a time per client).
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

log = logging.getLogger("energy_edge_base.methods")

Req = TypeVar("Req", bound=BaseModel)
Resp = TypeVar("Resp", bound=BaseModel)


class MethodError(Exception):
    """A handler's refusal with a status and a message for the caller (not a crash)."""

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.details = details


@dataclass(frozen=True)
class MethodResult:
    status: int
    payload: Any


@dataclass(frozen=True)
class MethodSpec(Generic[Req, Resp]):
    name: str
    request_model: type[Req]
    response_model: type[Resp]
    handler: Callable[[Req], Awaitable[Resp]]
    description: str


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as `{field, message}` pairs a caller can act on."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(payload)", "message": err["msg"]}
        for err in exc.errors()
    ]


MAX_BATCH_ITEMS = 1000
MAX_PAYLOAD_DEPTH = 32  # no method takes more than a few levels; deeper is an attack or a bug


def payload_problems(payload: Any, path: str = "", depth: int = 0) -> list[dict[str, str]]:
    """What no model should even see: non-finite numbers (JSON has none; Python's json reads NaN) and
    nesting deeper than MAX_PAYLOAD_DEPTH. Each problem names its field."""
    if depth > MAX_PAYLOAD_DEPTH:
        return [{"field": path or "(payload)", "message": f"nested deeper than {MAX_PAYLOAD_DEPTH} levels"}]
    if isinstance(payload, float) and not math.isfinite(payload):
        return [{"field": path or "(payload)", "message": "Input should be a finite number"}]
    items: Any = payload.items() if isinstance(payload, dict) else (
        enumerate(payload) if isinstance(payload, list) else ())
    problems: list[dict[str, str]] = []
    for key, value in items:
        problems += payload_problems(value, f"{path}.{key}" if path else str(key), depth + 1)
        if problems:
            break
    return problems


class BatchItemResult(BaseModel):
    """One item of a batch: the status and payload the single method would have answered."""

    status: int
    payload: Any


class BatchResponse(BaseModel):
    results: list[BatchItemResult] = Field(description="One result per command, in the order given.")


class MethodRegistry:
    def __init__(self) -> None:
        self._methods: dict[str, MethodSpec[Any, Any]] = {}
        self.on_result: list[Callable[[str, int], None]] = []  # metrics hook: (method, status)

    @property
    def names(self) -> list[str]:
        return sorted(self._methods)

    def register(self, name: str, request_model: type[Req], response_model: type[Resp],
                 handler: Callable[[Req], Awaitable[Resp]], description: str = "") -> None:
        if name in self._methods:
            raise ValueError(f"method {name!r} registered twice")
        self._methods[name] = MethodSpec(name, request_model, response_model, handler, description)

    def register_batch(self, name: str, single: str, description: str = "") -> None:
        """`name` takes `{"commands": [<request of single>, ...]}` and runs `single` for each, concurrently,
        answering one result per command. Commands addressing the same asset twice are refused (400):
        which one should win is not the module's guess."""
        spec = self._methods[single]
        request_model = create_model(
            f"{spec.request_model.__name__}Batch",
            __config__=ConfigDict(extra="forbid"),
            commands=(list[spec.request_model],  # type: ignore[name-defined]
                      Field(min_length=1, max_length=MAX_BATCH_ITEMS, description=f"Requests of `{single}`.")),
        )

        async def handler(request: Any) -> BatchResponse:
            seen: dict[Any, int] = {}
            for index, command in enumerate(request.commands):
                asset_id = getattr(command, "asset_id", None)
                if asset_id in seen:
                    raise MethodError(400, f"asset {asset_id!r} appears twice in one batch", errors=[
                        {"field": f"commands.{index}.asset_id", "message": f"same asset as commands.{seen[asset_id]}"}])
                seen[asset_id] = index
            results = await asyncio.gather(*(self._run(spec, command) for command in request.commands))
            return BatchResponse(results=[BatchItemResult(status=r.status, payload=r.payload) for r in results])

        self.register(name, request_model, BatchResponse, handler, description or f"`{single}` for many assets.")

    def method(self, name: str, request_model: type[Req], response_model: type[Resp], description: str = ""
               ) -> Callable[[Callable[[Req], Awaitable[Resp]]], Callable[[Req], Awaitable[Resp]]]:
        """Decorator form of `register`."""

        def decorate(handler: Callable[[Req], Awaitable[Resp]]) -> Callable[[Req], Awaitable[Resp]]:
            self.register(name, request_model, response_model, handler, description or (handler.__doc__ or ""))
            return handler

        return decorate

    def describe(self) -> dict[str, Any]:
        """Method names with their request/response JSON Schemas (for docs and the operator CLI)."""
        return {
            name: {
                "description": spec.description.strip(),
                "request": spec.request_model.model_json_schema(),
                "response": spec.response_model.model_json_schema(),
            }
            for name, spec in sorted(self._methods.items())
        }

    async def dispatch(self, name: str, payload: Any) -> MethodResult:
        result = await self._dispatch(name, payload)
        for hook in self.on_result:
            hook(name if name in self._methods else "(unknown)", result.status)
        return result

    async def _dispatch(self, name: str, payload: Any) -> MethodResult:
        spec = self._methods.get(name)
        if spec is None:
            return MethodResult(404, {"error": f"unknown method {name!r}", "known_methods": self.names})
        # No payload arrives as None from the device SDK, or as "" from some service callers.
        payload = {} if payload is None or payload == "" else payload
        problems = payload_problems(payload)
        if problems:
            return MethodResult(400, {"error": f"invalid payload for {name!r}", "errors": problems})
        try:
            # strict: `true` is not the number 1 and "5" is not 5 (set_output {"percent": true} curtailed PV to 1 %)
            request = spec.request_model.model_validate(payload, strict=True)
        except ValidationError as exc:
            errors = validation_errors(exc)
            return MethodResult(400, {"error": f"invalid payload for {name!r}", "errors": errors})
        return await self._run(spec, request)

    async def _run(self, spec: MethodSpec[Any, Any], request: Any) -> MethodResult:
        try:
            response = await spec.handler(request)
        except MethodError as exc:
            return MethodResult(exc.status, {"error": str(exc), **exc.details})
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            log.exception("method %s failed (error id %s)", spec.name, error_id)
            return MethodResult(500, {"error": f"method {spec.name!r} failed", "error_id": error_id})
        return MethodResult(200, spec.response_model.model_validate(response).model_dump(mode="json"))
