"""How deep a JSON document nests: the emulator refuses what no IoT Hub request carries (a method payload or a
reported patch nested thousands deep ended Python's decoder with a RecursionError, a 500 or a dropped link)."""

from __future__ import annotations

from typing import Any

MAX_JSON_DEPTH = 32  # no request IoT Hub takes nests deeper (twin sections stop at 10 levels)


def json_depth(doc: Any, limit: int) -> int:
    """Nesting depth of a decoded JSON document, counting no further than `limit` + 1 (breadth first, no recursion)."""
    depth, level = 0, [doc]
    while level and depth <= limit:
        level = [v for item in level if isinstance(item, (dict, list))
                 for v in (item.values() if isinstance(item, dict) else item)]
        depth += 1
    return depth
