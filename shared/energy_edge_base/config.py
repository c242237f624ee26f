"""Module configuration from the twin: validate, apply atomically or reject, report back.

The desired properties (less `$version`) are one pydantic model. A patch is merged into the last
desired document, validated as a whole, then applied; if validation or the module's own apply
step fails, the previous configuration stays in force. Either way the outcome is reported under
one reported key, `config`:

    {"config": {"status": "applied" | "rejected", "desired_version": n, "applied_version": m,
                "applied": {...}, "errors": [{"field", "message"}], "fallback": null | "...",
                "updated": "<UTC ISO 8601>"}}

Configuration is never lost: every applied configuration is written to the module's volume
(`store`), and a module whose twin holds an invalid desired document at start-up runs on that last
applied configuration (not on defaults, which for an asset module would mean no devices: a battery
neither polled, commanded nor watched) and says so in `fallback`.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from energy_edge_base.methods import validation_errors

log = logging.getLogger("energy_edge_base.config")

ConfigT = TypeVar("ConfigT", bound=BaseModel)
REPORTED_KEY = "config"


MAX_DEPTH = 10  # IoT Hub allows 10 levels of nesting in twin properties (5 in desired/reported objects' values)


def merge_patch(target: dict[str, Any], patch: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """Twin merge semantics: nested objects merge, `None` deletes, everything else replaces."""
    if depth > MAX_DEPTH:
        raise ValueError(f"twin document nested deeper than {MAX_DEPTH} levels")
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            base = result.get(key)
            result[key] = merge_patch(base if isinstance(base, dict) else {}, value, depth + 1)
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
    fallback: str | None = None  # what runs instead of a rejected start-up document


class TwinConfig(Generic[ConfigT]):
    """Holds the configuration in force and turns desired documents into outcomes."""

    def __init__(self, model: type[ConfigT], apply: Callable[[ConfigT], Awaitable[None]],
                 store: Path | None = None) -> None:
        self.model = model
        self._apply = apply
        self.store = store
        self.current: ConfigT = model()
        self.applied_version: int | None = None
        self._desired: dict[str, Any] = {}
        self.last: ConfigOutcome | None = None

    async def initial(self, desired: dict[str, Any]) -> ConfigOutcome:
        """Start-up: the full desired document from the twin. When it is refused, the last applied
        configuration from the store runs (defaults only when there is none), and `fallback` says which."""
        self._desired = {}
        outcome = await self._merge_and_try({}, desired)
        if outcome.status == "rejected":
            kept = await self._restore()
            if kept is None:
                await self._apply(self.current)  # defaults, so the module runs in a known state
                outcome.fallback = "defaults (no configuration was ever applied here)"
            else:
                outcome.fallback = f"the last applied configuration (v{kept}) from {self.store}"
                log.warning("running on %s", outcome.fallback)
        return outcome

    async def _restore(self) -> int | None:
        """Apply the stored configuration; its version, or None when there is none that still validates."""
        if self.store is None:
            return None
        try:
            record = json.loads(self.store.read_text())
            candidate = self.model.model_validate(record["desired"])
            await self._apply(candidate)
        except FileNotFoundError:
            return None
        except Exception as exc:  # unreadable, or refused by a newer model: defaults, said in the log
            log.warning("stored configuration %s not usable: %s", self.store, exc)
            return None
        self.current = candidate
        self.applied_version = record.get("version") if isinstance(record.get("version"), int) else None
        return self.applied_version if self.applied_version is not None else -1

    def _save(self, desired: dict[str, Any], version: int | None) -> None:
        if self.store is None:
            return
        try:
            self.store.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.store.with_suffix(".tmp")
            tmp.write_text(json.dumps({"version": version, "desired": desired}))
            tmp.replace(self.store)
        except OSError as exc:
            log.warning("applied configuration not stored in %s: %s", self.store, exc)

    async def patch(self, patch: dict[str, Any]) -> ConfigOutcome:
        return await self._merge_and_try(self._desired, patch)

    async def _merge_and_try(self, base: dict[str, Any], patch: dict[str, Any]) -> ConfigOutcome:
        version = patch.get("$version") if isinstance(patch.get("$version"), int) else None
        try:
            candidate_doc = merge_patch(base, patch)
        except (ValueError, RecursionError) as exc:  # nothing in force changes; the operator is told
            outcome = ConfigOutcome("rejected", version, [{"field": "(config)", "message": str(exc)}])
            log.warning("desired configuration v%s rejected: %s", version, exc)
            self.last = outcome
            return outcome
        return await self._try(candidate_doc, version)

    async def _try(self, candidate_doc: dict[str, Any], version: int | None) -> ConfigOutcome:
        try:
            candidate = self.model.model_validate(candidate_doc)
            await self._apply(candidate)
        except ValidationError as exc:
            outcome = ConfigOutcome("rejected", version, validation_errors(exc))
        except ConfigRejected as exc:
            outcome = ConfigOutcome("rejected", version, [{"field": exc.field_name, "message": str(exc)}])
        except Exception as exc:  # a module's apply step that failed: reported as a rejection, not lost
            log.exception("applying desired configuration v%s failed", version)
            outcome = ConfigOutcome("rejected", version, [{"field": "(config)", "message": f"apply failed: {exc}"}])
        else:
            self.current = candidate
            self.applied_version = version
            outcome = ConfigOutcome("applied", version)
            self._save(candidate_doc, version)
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
                "fallback": outcome.fallback,
                "updated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            }
        }
