"""Writes the vendor register tables of docs/register-maps.md from the device type data files.

Each generated table sits between two markers naming its source, so the prose around it stays
hand-written while the rows have one owner (energy_edge_base/devices/<type>.json):

    <!-- device-table boiler input -->
    ...rows written here...
    <!-- /device-table -->

`python -m energy_edge.sim.regdoc` rewrites the file; `--check` exits 1 when it is stale (a test runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from energy_edge_base.devices import load_device_type

DOC_PATH = Path(__file__).resolve().parents[3] / "docs" / "register-maps.md"
_BLOCK = re.compile(r"(<!-- device-table (?P<type>[a-z0-9_]+) (?P<table>input|holding) -->\n)"
                    r"(?P<body>.*?)(<!-- /device-table -->)", re.DOTALL)


def _scale(scale: float) -> str:
    return "" if scale == 1.0 else f"x{scale:g}"


def device_table(device_type: str, table: str) -> str:
    """The Markdown table of one register table of a device type."""
    lines = ["| Address | Name | Type | Scale | Units | Access | Meaning |", "|---:|---|---|---|---|---|---|"]
    for r in load_device_type(device_type).registers:
        if r.table != table:
            continue
        span = str(r.address) if r.word_count == 1 else f"{r.address}-{r.end_address - 1}"
        lines.append(f"| {span} | {r.name} | {r.data_type} | {_scale(r.scale)} | {r.unit} | {r.access.upper()} "
                     f"| {r.description} |")
    if len(lines) == 2:
        raise ValueError(f"device type {device_type!r} has no {table} registers")
    return "\n".join(lines) + "\n"


def render(text: str) -> str:
    """`text` with every marked table rewritten from its data file."""
    return _BLOCK.sub(lambda m: m.group(1) + device_table(m["type"], m["table"]) + m.group(5), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not current, write nothing")
    parser.add_argument("--path", type=Path, default=DOC_PATH)
    args = parser.parse_args(argv)
    text = args.path.read_text(encoding="utf-8")
    fresh = render(text)
    if args.check:
        if fresh != text:
            print(f"{args.path} is stale: run python -m energy_edge.sim.regdoc", file=sys.stderr)
            return 1
        return 0
    args.path.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
