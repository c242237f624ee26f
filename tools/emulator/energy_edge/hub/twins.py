"""Module twins as IoT Hub keeps them: desired and reported documents with `$version`, an etag.

Patches are JSON merge patches where `null` deletes a key (IoT Hub twin semantics).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
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


# IoT Hub's twin limits (docs: "Device and module twins"; edgeHub's reported-properties validator).
SECTION_MAX_BYTES = 32 * 1024  # properties.desired, properties.reported, each
TAGS_MAX_BYTES = 8 * 1024
VALUE_MAX_BYTES = 4 * 1024  # one string value
KEY_MAX_BYTES = 1024
MAX_DEPTH = 10
# edgeHub refuses reported integers outside ±(2^52 - 1): larger ones do not survive a double.
MAX_SAFE_INT = 2**52 - 1


def json_size(doc: JsonObject) -> int:
    """Size of a twin section as IoT Hub counts it: compact UTF-8 JSON without `$version`/`$metadata`."""
    clean = {k: v for k, v in doc.items() if k not in _SYSTEM_KEYS}
    return len(json.dumps(clean, separators=(",", ":"), ensure_ascii=False).encode())


def validate_patch(patch: Any, what: str, integers_limited: bool = False) -> JsonObject:
    if not isinstance(patch, dict):
        raise TwinError(f"{what} must be a JSON object")
    _check_document(patch, what, 1, integers_limited)
    return patch


def _check_document(doc: JsonObject, path: str, depth: int, integers_limited: bool) -> None:
    if depth > MAX_DEPTH:
        raise TwinError(f"{path}: nesting deeper than {MAX_DEPTH} levels")
    for key, value in doc.items():
        if key in _SYSTEM_KEYS:
            continue
        if not key or any(ch in key for ch in ". $") or any(ord(ch) < 32 for ch in key):
            raise TwinError(f"{path}.{key}: property names may not be empty or contain '.', ' ' or '$'")
        if len(key.encode()) > KEY_MAX_BYTES:
            raise TwinError(f"{path}.{key[:40]}...: property name of {len(key.encode())} bytes, "
                            f"more than {KEY_MAX_BYTES}")
        _check_value(value, f"{path}.{key}", depth, integers_limited)


def _check_value(value: Any, path: str, depth: int, integers_limited: bool) -> None:
    if isinstance(value, dict):
        _check_document(value, path, depth + 1, integers_limited)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _check_value(item, f"{path}[{n}]", depth, integers_limited)
    elif isinstance(value, str):
        size = len(value.encode())
        if size > VALUE_MAX_BYTES:
            raise TwinError(f"{path}: string value of {size} bytes, more than {VALUE_MAX_BYTES}")
    elif isinstance(value, int) and not isinstance(value, bool):
        if integers_limited and abs(value) > MAX_SAFE_INT:
            raise TwinError(f"{path}: integer {value} outside ±(2^52 - 1)")


def _check_size(doc: JsonObject, what: str, limit: int) -> None:
    size = json_size(doc)
    if size > limit:
        raise TwinError(f"{what}: {size} bytes, more than the {limit} bytes IoT Hub allows")


def check_desired(doc: Any, what: str) -> None:
    """Raise TwinError unless `doc` may be a twin's whole properties.desired."""
    _check_size(validate_patch(doc, what), what, SECTION_MAX_BYTES)


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def metadata_for(doc: JsonObject, stamp: JsonObject) -> JsonObject:
    """A `$metadata` tree for `doc` where every node carries `stamp` ($lastUpdated[, $lastUpdatedVersion])."""
    meta: JsonObject = dict(stamp)
    for key, value in doc.items():
        if key in _SYSTEM_KEYS:
            continue
        meta[key] = metadata_for(value, stamp) if isinstance(value, dict) else dict(stamp)
    return meta


def update_metadata(meta: JsonObject, patch: JsonObject, stamp: JsonObject) -> JsonObject:
    """`meta` after `patch` was merged: touched nodes (and their parents) get `stamp`, deleted ones go."""
    result = {**meta, **stamp}
    for key, value in patch.items():
        if key in _SYSTEM_KEYS:
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            child = result.get(key)
            result[key] = update_metadata(child if isinstance(child, dict) else {}, value, stamp)
        else:
            result[key] = dict(stamp)
    return result


@dataclass
class Twin:
    """A module twin, or the device twin when `module_id` is None."""

    device_id: str
    module_id: str | None
    desired: JsonObject = field(default_factory=dict)
    reported: JsonObject = field(default_factory=dict)
    desired_version: int = 1
    reported_version: int = 1
    version: int = 1
    tags: JsonObject = field(default_factory=dict)
    desired_metadata: JsonObject = field(default_factory=dict)
    reported_metadata: JsonObject = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Records written before twins kept $metadata get one stamped now.
        if not self.desired_metadata:
            self.desired_metadata = metadata_for(self.desired, self._desired_stamp())
        if not self.reported_metadata:
            self.reported_metadata = metadata_for(self.reported, {"$lastUpdated": _now_iso()})

    @property
    def etag(self) -> str:
        return base64.b64encode(self.version.to_bytes(8, "big")).decode()

    def _desired_stamp(self) -> JsonObject:
        return {"$lastUpdated": _now_iso(), "$lastUpdatedVersion": self.desired_version}

    def patch_desired(self, patch: JsonObject) -> JsonObject:
        """Merge a desired patch; returns the notification body for the module (with `$version`)."""
        validate_patch(patch, "properties.desired")
        merged = merge_patch(self.desired, patch)
        _check_size(merged, "properties.desired", SECTION_MAX_BYTES)
        self.desired = merged
        self.desired_version += 1
        self.version += 1
        self.desired_metadata = update_metadata(self.desired_metadata, patch, self._desired_stamp())
        return {**{k: v for k, v in patch.items() if k not in _SYSTEM_KEYS}, "$version": self.desired_version}

    def replace_desired(self, desired: JsonObject) -> JsonObject | None:
        """Replace the desired document; returns the notification (None when nothing changed)."""
        validate_patch(desired, "properties.desired")
        clean = {k: copy.deepcopy(v) for k, v in desired.items() if k not in _SYSTEM_KEYS}
        _check_size(clean, "properties.desired", SECTION_MAX_BYTES)
        patch = removal_patch(self.desired, clean)
        if not patch:
            return None
        self.desired = clean
        self.desired_version += 1
        self.version += 1
        self.desired_metadata = update_metadata(self.desired_metadata, patch, self._desired_stamp())
        return {**patch, "$version": self.desired_version}

    def patch_reported(self, patch: JsonObject) -> int:
        # edgeHub's validator: limited integers; the merged section must stay within 32 KB.
        validate_patch(patch, "properties.reported", integers_limited=True)
        merged = merge_patch(self.reported, patch)
        _check_size(merged, "properties.reported", SECTION_MAX_BYTES)
        self.reported = merged
        self.reported_version += 1
        self.version += 1
        self.reported_metadata = update_metadata(self.reported_metadata, patch, {"$lastUpdated": _now_iso()})
        return self.reported_version

    def check_tags(self, patch: JsonObject, replace: bool = False) -> JsonObject:
        """The tags after `patch` (or `replace`), validated; raises TwinError over the limits."""
        validate_patch(patch, "tags")
        tags = copy.deepcopy(patch) if replace else merge_patch(self.tags, patch)
        _check_size(tags, "tags", TAGS_MAX_BYTES)
        return tags

    def set_tags(self, tags: JsonObject) -> bool:
        """Store tags checked by `check_tags`; returns whether they changed."""
        if tags == self.tags:
            return False
        self.tags = tags
        self.version += 1
        return True

    def device_view(self) -> JsonObject:
        """The body of a twin GET over MQTT."""
        return {
            "desired": {**self.desired, "$version": self.desired_version},
            "reported": {**self.reported, "$version": self.reported_version},
        }

    def service_view(self, connected: bool) -> JsonObject:
        """The Twin object the service API returns."""
        view: JsonObject = {"deviceId": self.device_id}
        if self.module_id is not None:
            view["moduleId"] = self.module_id
        view.update({
            "etag": self.etag,
            "deviceEtag": self.etag,
            "status": "enabled",
            "statusUpdateTime": "0001-01-01T00:00:00Z",
            "connectionState": "Connected" if connected else "Disconnected",
            "lastActivityTime": "0001-01-01T00:00:00Z",
            "cloudToDeviceMessageCount": 0,
            "authenticationType": "sas",
            "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
            "version": self.version,
            "tags": self.tags,
            "properties": {
                "desired": {**self.desired, "$metadata": self.desired_metadata, "$version": self.desired_version},
                "reported": {**self.reported, "$metadata": self.reported_metadata,
                             "$version": self.reported_version},
            },
        })
        if self.module_id is None:
            view["capabilities"] = {"iotEdge": True}
        return view

    def to_record(self) -> JsonObject:
        return {
            "desired": self.desired,
            "reported": self.reported,
            "desired_version": self.desired_version,
            "reported_version": self.reported_version,
            "version": self.version,
            "tags": self.tags,
            "desired_metadata": self.desired_metadata,
            "reported_metadata": self.reported_metadata,
        }

    @classmethod
    def from_record(cls, device_id: str, module_id: str | None, record: JsonObject) -> Twin:
        return cls(device_id, module_id, **record)
