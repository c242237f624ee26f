"""Module configuration from the twin: validate, apply atomically or reject, report back.

The desired properties (less `$version`) are one pydantic model. A patch is merged into the last
desired document, validated as a whole, then applied; if validation or the module's own apply
step fails, the previous configuration stays in force. Either way the outcome is reported under
one reported key, `config`:

    {"config": {"status": "applied" | "rejected", "desired_version": n, "applied_version": m,
                "applied": {...}, "errors": [{"field", "message"}], "updated": "<UTC ISO 8601>"}}
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from energy_edge_base.methods import validation_errors

log = logging.getLogger("energy_edge_base.config")

ConfigT = TypeVar("ConfigT", bound=BaseModel)
REPORTED_KEY = "config"


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Twin merge semantics: nested objects merge, `None` deletes, everything else replaces."""
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            base = result.get(key)
            result[key] = merge_patch(base if isinstance(base, dict) else {}, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


class ConfigRejected(Exception):
    """Raised by a module's apply step to refuse a configuration that validated but can't be used."""

    def __init__(self, message: str, field_name: str = "(config)") -> None:
        super().__init__(message)
        self.field_name = field_name


@dataclass
class ConfigOutcome:
    status: str  # "applied" | "rejected"
    desired_version: int | None
    errors: list[dict[str, str]] = field(default_factory=list)


class TwinConfig(Generic[ConfigT]):
    """Holds the configuration in force and turns desired documents into outcomes."""

    def __init__(self, model: type[ConfigT], apply: Callable[[ConfigT], Awaitable[None]]) -> None:
        self.model = model
        self._apply = apply
        self.current: ConfigT = model()
        self.applied_version: int | None = None
        self._desired: dict[str, Any] = {}
        self.last: ConfigOutcome | None = None

    async def initial(self, desired: dict[str, Any]) -> ConfigOutcome:
        """Start-up: the full desired document from the twin. Defaults apply when it is refused."""
        self._desired = {}
        outcome = await self._try(merge_patch({}, desired), desired.get("$version"))
        if outcome.status == "rejected":
            await self._apply(self.current)  # defaults, so the module runs in a known state
        return outcome

    async def patch(self, patch: dict[str, Any]) -> ConfigOutcome:
        return await self._try(merge_patch(self._desired, patch), patch.get("$version"))

    async def _try(self, candidate_doc: dict[str, Any], version: int | None) -> ConfigOutcome:
        try:
            candidate = self.model.model_validate(candidate_doc)
            await self._apply(candidate)
        except ValidationError as exc:
            outcome = ConfigOutcome("rejected", version, validation_errors(exc))
        except ConfigRejected as exc:
            outcome = ConfigOutcome("rejected", version, [{"field": exc.field_name, "message": str(exc)}])
        else:
            self.current = candidate
            self.applied_version = version
            outcome = ConfigOutcome("applied", version)
        # The desired document is tracked even when refused: the next patch merges onto what
        # the operator actually asked for, as IoT Hub does.
        self._desired = candidate_doc
        if outcome.status == "rejected":
            log.warning("desired configuration v%s rejected: %s", version, outcome.errors)
        else:
            log.info("configuration v%s applied", version)
        self.last = outcome
        return outcome

    def reported(self, outcome: ConfigOutcome) -> dict[str, Any]:
        return {
            REPORTED_KEY: {
                "status": outcome.status,
                "desired_version": outcome.desired_version,
                "applied_version": self.applied_version,
                "applied": self.current.model_dump(mode="json"),
                "errors": outcome.errors,
                "updated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            }
        }
