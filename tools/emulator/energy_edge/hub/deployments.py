"""IoT Edge automatic deployments: configurations with a target condition and a priority, and the effective
deployment of a device, as IoT Hub computes it.

- A *base* deployment carries complete `properties.desired` documents for `$edgeAgent` and `$edgeHub`.
- A *layered* deployment carries property paths instead (`properties.desired.modules.x`,
  `properties.desired.routes.r`, `properties.desired.some.setting`) and no complete `$edgeAgent` document.
- A device gets the base deployment of highest priority that targets it (ties: the most recently created),
  then every layered deployment that targets it, applied in ascending priority (ties: creation order), so a
  higher-priority layer's value wins on the same path.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
from dataclasses import dataclass
from typing import Any

from energy_edge.hub.errors import HubError
from energy_edge.hub.query import QueryError, QueryNotSupported, parse_condition

DESIRED = "properties.desired"
MAX_CONFIGURATIONS = 100  # IoT Hub's limit on configurations per hub (standard tiers)


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Configuration:
    """One configuration (deployment) as the service API stores it."""

    id: str
    content: dict[str, Any]
    target_condition: str
    priority: int
    labels: dict[str, str]
    created: str
    updated: str
    version: int = 1

    @property
    def modules_content(self) -> dict[str, Any]:
        content: dict[str, Any] = self.content.get("modulesContent", {})
        return content

    @property
    def kind(self) -> str:
        """`edge` (an IoT Edge deployment), `device` or `module` (automatic device management)."""
        if self.content.get("modulesContent"):
            return "edge"
        return "device" if self.content.get("deviceContent") else "module"

    @property
    def layered(self) -> bool:
        agent = self.modules_content.get("$edgeAgent", {})
        return not (isinstance(agent, dict) and DESIRED in agent)

    @property
    def etag(self) -> str:
        # IoT Hub's configuration etags look like base64 of a counter ("MQ==")
        return base64.b64encode(str(self.version).encode()).decode()

    def view(self, targeted_count: int = 0, applied_count: int = 0) -> dict[str, Any]:
        """The service API's Configuration; system metrics count this hub's one device."""
        return {
            "id": self.id,
            "schemaVersion": "1.0",
            "labels": self.labels,
            "content": self.content,
            "targetCondition": self.target_condition,
            "createdTimeUtc": self.created,
            "lastUpdatedTimeUtc": self.updated,
            "priority": self.priority,
            "systemMetrics": {"results": {"targetedCount": targeted_count, "appliedCount": applied_count},
                              "queries": {}},
            "metrics": {"results": {}, "queries": {}},
            "etag": self.etag,
        }

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "content": self.content, "target_condition": self.target_condition,
                "priority": self.priority, "labels": self.labels, "created": self.created,
                "updated": self.updated, "version": self.version}


def parse_configuration(config_id: str, body: Any, previous: Configuration | None) -> Configuration:
    """Validate a configuration PUT body; raises HubError with IoT Hub's error names."""
    if not isinstance(body, dict):
        raise HubError("ArgumentInvalid", "the configuration must be a JSON object")
    if body.get("id") not in (None, config_id):
        raise HubError("ArgumentInvalid", f"id {body.get('id')!r} does not match the URL's {config_id!r}")
    content = body.get("content")
    if not isinstance(content, dict):
        raise HubError("InvalidConfigurationContent", "content must be an object")
    kinds = [k for k in ("modulesContent", "deviceContent", "moduleContent") if content.get(k)]
    if len(kinds) != 1:
        raise HubError("InvalidConfigurationContent",
                       "content needs exactly one of modulesContent, deviceContent, moduleContent (non-empty)")
    if kinds[0] != "modulesContent":
        _check_paths(content[kinds[0]], kinds[0])
        modules_content: dict[str, Any] = {}
    else:
        modules_content = content["modulesContent"]
        if not isinstance(modules_content, dict):
            raise HubError("InvalidConfigurationContent", "content.modulesContent must be an object")
    for module, section in modules_content.items():
        if not isinstance(section, dict) or not section:
            raise HubError("InvalidConfigurationContent", f"modulesContent.{module} must be a non-empty object")
        for key, value in section.items():
            if key != DESIRED and not key.startswith(DESIRED + "."):
                raise HubError("InvalidConfigurationContent",
                               f"modulesContent.{module}: {key!r} is not 'properties.desired[.path]'")
            if key == DESIRED and not isinstance(value, dict):
                raise HubError("InvalidConfigurationContent", f"modulesContent.{module}.{key} must be an object")
    agent, hub = modules_content.get("$edgeAgent", {}), modules_content.get("$edgeHub", {})  # {} for ADM
    if (DESIRED in agent) != (DESIRED in hub):
        raise HubError("InvalidConfigurationContent",
                       "a base deployment needs complete properties.desired for both $edgeAgent and $edgeHub")
    target = body.get("targetCondition", "")
    if not isinstance(target, str):
        raise HubError("InvalidConfigurationTargetCondition", "targetCondition must be a string")
    try:
        if target:
            parse_condition(target)
    except QueryNotSupported as exc:
        raise HubError("NotImplementedInEmulator", f"targetCondition: {exc}") from exc
    except QueryError as exc:
        raise HubError("InvalidConfigurationTargetCondition", f"targetCondition: {exc}") from exc
    priority = body.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
        raise HubError("ArgumentInvalid", "priority must be a non-negative integer")
    labels = body.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise HubError("ArgumentInvalid", "labels must be an object of strings")
    now = _now_iso()
    if previous is not None and previous.content != content:
        # IoT Hub: a deployment's content cannot change; create a new one instead.
        raise HubError("InvalidConfigurationContent",
                       f"configuration {config_id!r}: content cannot be modified once created")
    return Configuration(
        id=config_id, content=copy.deepcopy(content), target_condition=target, priority=priority,
        labels=labels, created=previous.created if previous else now, updated=now,
        version=previous.version + 1 if previous else 1,
    )


def _check_paths(section: Any, what: str) -> None:
    if not isinstance(section, dict):
        raise HubError("InvalidConfigurationContent", f"content.{what} must be an object")
    for key in section:
        if not key.startswith(DESIRED + "."):
            raise HubError("InvalidConfigurationContent", f"content.{what}: {key!r} is not 'properties.desired.<path>'")


def device_desired_patch(configs: list[Configuration], device_twin_view: dict[str, Any]) -> dict[str, Any]:
    """What the automatic device configurations that target the device set in its desired properties;
    on the same path the higher priority wins."""
    patch: dict[str, Any] = {}
    chosen = [c for c in configs if c.kind == "device" and targets(c, device_twin_view)]
    for config in sorted(chosen, key=lambda c: (c.priority, c.created)):
        for key, value in config.content["deviceContent"].items():
            _set_path(patch, key[len(DESIRED) + 1:].split("."), value)
    return patch


def targets(config: Configuration, device_twin_view: dict[str, Any]) -> bool:
    """Whether the configuration's target condition selects this device (an empty condition selects none)."""
    if not config.target_condition.strip():
        return False
    return parse_condition(config.target_condition)(device_twin_view) is True


def _set_path(doc: dict[str, Any], path: list[str], value: Any) -> None:
    for step in path[:-1]:
        child = doc.get(step)
        if not isinstance(child, dict):
            child = doc[step] = {}
        doc = child
    doc[path[-1]] = copy.deepcopy(value)


def effective_content(configs: list[Configuration], device_twin_view: dict[str, Any]) -> dict[str, Any] | None:
    """The device's effective `{"modulesContent": ...}`, or None when no base deployment targets it."""
    selected = [c for c in configs if c.kind == "edge" and targets(c, device_twin_view)]
    order = {c.id: n for n, c in enumerate(sorted(configs, key=lambda c: c.created))}
    bases = sorted((c for c in selected if not c.layered), key=lambda c: (c.priority, c.created))
    if not bases:
        return None
    modules_content = copy.deepcopy(bases[-1].modules_content)
    layers = sorted((c for c in selected if c.layered), key=lambda c: (c.priority, order[c.id]))
    for layer in layers:
        for module, section in layer.modules_content.items():
            target = modules_content.setdefault(module, {})
            desired = target.setdefault(DESIRED, {})
            for key, value in section.items():
                if key == DESIRED:
                    target[DESIRED] = copy.deepcopy(value)
                    desired = target[DESIRED]
                else:
                    _set_path(desired, key[len(DESIRED) + 1:].split("."), value)
    return {"modulesContent": modules_content, "appliedConfigurations": [c.id for c in [bases[-1], *layers]]}
