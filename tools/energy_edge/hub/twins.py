"""Module twins as IoT Hub keeps them: desired and reported documents with `$version`, an etag.

Patches are JSON merge patches where `null` deletes a key (IoT Hub twin semantics).
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field
from typing import Any

from energy_edge_base.config import merge_patch  # the modules merge desired patches the same way

JsonObject = dict[str, Any]

# Keys IoT Hub manages itself inside a properties document.
_SYSTEM_KEYS = ("$version", "$metadata")


class TwinError(ValueError):
    """A patch the hub refuses (status 400)."""


def removal_patch(old: JsonObject, new: JsonObject) -> JsonObject:
    """The merge patch that turns `old` into `new` (used to notify a module of a full replace)."""
    patch: JsonObject = {}
    for key in old:
        if key in _SYSTEM_KEYS:
            continue
        if key not in new:
            patch[key] = None
    for key, value in new.items():
        if key in _SYSTEM_KEYS:
            continue
        if isinstance(value, dict) and isinstance(old.get(key), dict):
            sub = removal_patch(old[key], value)
            if sub:
                patch[key] = sub
        elif old.get(key, _MISSING) != value:
            patch[key] = copy.deepcopy(value)
    return patch


_MISSING = object()


def validate_patch(patch: Any, what: str) -> JsonObject:
    if not isinstance(patch, dict):
        raise TwinError(f"{what} must be a JSON object")
    _check_depth_and_keys(patch, what, depth=1)
    return patch


def _check_depth_and_keys(doc: JsonObject, path: str, depth: int) -> None:
    # IoT Hub: at most 10 levels of nesting in properties; keys may not contain '.', ' ', '$'
    if depth > 10:
        raise TwinError(f"{path}: nesting deeper than 10 levels")
    for key, value in doc.items():
        if key in _SYSTEM_KEYS:
            continue
        if not key or any(ch in key for ch in ". $") or any(ord(ch) < 32 for ch in key):
            raise TwinError(f"{path}.{key}: property names may not be empty or contain '.', ' ' or '$'")
        if isinstance(value, dict):
            _check_depth_and_keys(value, f"{path}.{key}", depth + 1)


@dataclass
class Twin:
    device_id: str
    module_id: str
    desired: JsonObject = field(default_factory=dict)
    reported: JsonObject = field(default_factory=dict)
    desired_version: int = 1
    reported_version: int = 1
    version: int = 1
    tags: JsonObject = field(default_factory=dict)

    @property
    def etag(self) -> str:
        return base64.b64encode(self.version.to_bytes(8, "big")).decode()

    def patch_desired(self, patch: JsonObject) -> JsonObject:
        """Merge a desired patch; returns the notification body for the module (with `$version`)."""
        validate_patch(patch, "properties.desired")
        self.desired = merge_patch(self.desired, patch)
        self.desired_version += 1
        self.version += 1
        return {**{k: v for k, v in patch.items() if k not in _SYSTEM_KEYS}, "$version": self.desired_version}

    def replace_desired(self, desired: JsonObject) -> JsonObject | None:
        """Replace the desired document; returns the notification (None when nothing changed)."""
        validate_patch(desired, "properties.desired")
        clean = {k: copy.deepcopy(v) for k, v in desired.items() if k not in _SYSTEM_KEYS}
        patch = removal_patch(self.desired, clean)
        if not patch:
            return None
        self.desired = clean
        self.desired_version += 1
        self.version += 1
        return {**patch, "$version": self.desired_version}

    def patch_reported(self, patch: JsonObject) -> int:
        validate_patch(patch, "properties.reported")
        self.reported = merge_patch(self.reported, patch)
        self.reported_version += 1
        self.version += 1
        return self.reported_version

    def patch_tags(self, patch: JsonObject) -> None:
        self.tags = merge_patch(self.tags, validate_patch(patch, "tags"))
        self.version += 1

    def device_view(self) -> JsonObject:
        """The body of a twin GET over MQTT."""
        return {
            "desired": {**self.desired, "$version": self.desired_version},
            "reported": {**self.reported, "$version": self.reported_version},
        }

    def service_view(self, connected: bool) -> JsonObject:
        """The Twin object the service API returns."""
        return {
            "deviceId": self.device_id,
            "moduleId": self.module_id,
            "etag": self.etag,
            "deviceEtag": self.etag,
            "status": "enabled",
            "connectionState": "Connected" if connected else "Disconnected",
            "version": self.version,
            "tags": self.tags,
            "properties": {
                "desired": {**self.desired, "$version": self.desired_version},
                "reported": {**self.reported, "$version": self.reported_version},
            },
        }

    def to_record(self) -> JsonObject:
        return {
            "desired": self.desired,
            "reported": self.reported,
            "desired_version": self.desired_version,
            "reported_version": self.reported_version,
            "version": self.version,
            "tags": self.tags,
        }

    @classmethod
    def from_record(cls, device_id: str, module_id: str, record: JsonObject) -> Twin:
        return cls(device_id, module_id, **record)
