"""Writes energy_edge_base/devices/sunspec_models.json from the SunSpec model definitions pysunspec2 ships.

The modules and the simulator read the SunSpec models (point order, types, sizes, scale-factor points, access,
units, labels) from that committed file, not from pysunspec2: pysunspec2 is a development dependency (an
independent SunSpec client the tests scan the simulator with), and the edge modules should not carry it nor
move with its releases. A test runs `--check`, so the file always equals what pysunspec2's JSON says.

    python -m energy_edge.sim.sunspecgen          # rewrite the file
    python -m energy_edge.sim.sunspecgen --check  # exit 1 when it differs
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any

# The models energy-edge's devices use: common, three-phase inverter, nameplate, immediate controls, storage,
# DER storage capacity.
MODEL_IDS = (1, 103, 120, 123, 124, 713)
OUT_PATH = Path(str(resources.files("energy_edge_base.devices").joinpath("sunspec_models.json")))
_KEEP = ("name", "type", "size", "sf", "access", "units", "label", "desc")


def build() -> dict[str, Any]:
    """The file's content from pysunspec2's model_<id>.json (top-level points; these models have no groups)."""
    import sunspec2

    folder = Path(sunspec2.__file__).parent / "models" / "json"
    models: dict[str, Any] = {}
    for model_id in MODEL_IDS:
        group = json.loads((folder / f"model_{model_id}.json").read_text(encoding="utf-8"))["group"]
        if group.get("groups"):
            raise ValueError(f"model {model_id} has repeating groups: not supported")
        points = [{key: p[key] for key in _KEEP if key in p} for p in group["points"]]
        for p in points:
            p.setdefault("access", "R")
        models[str(model_id)] = {"name": group["name"], "label": group.get("label", ""), "points": points}
    return {"source": f"pysunspec2 {version('pysunspec2')}, sunspec2/models/json/model_<id>.json",
            "models": models}


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not current, write nothing")
    args = parser.parse_args(argv)
    fresh = render()
    if args.check:
        if OUT_PATH.read_text(encoding="utf-8") != fresh:
            print(f"{OUT_PATH} is stale: run python -m energy_edge.sim.sunspecgen", file=sys.stderr)
            return 1
        return 0
    OUT_PATH.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
