"""Writes the vendor register tables of docs/register-maps.md from the device type data files.

Each generated table sits between two markers naming its source, so the prose around it stays
hand-written while the rows have one owner (energy_edge_base/devices/<type>.json):

    <!-- device-table boiler input -->
    ...rows written here...
    <!-- /device-table -->

A data file no hand-written section marks gets a section of its own, written whole between

    <!-- device-types-other -->
    ...
    <!-- /device-types-other -->

so a new vendor's file is documented the moment it is added. `python -m energy_edge.sim.regdoc` rewrites the
file; `--check` exits 1 when it is stale (a test runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from energy_edge_base.devices import device_type_names, load_device_type

DOC_PATH = Path(__file__).resolve().parents[4] / "docs" / "register-maps.md"
_BLOCK = re.compile(r"(<!-- device-table (?P<type>[a-z0-9_]+) (?P<table>input|holding) -->\n)"
                    r"(?P<body>.*?)(<!-- /device-table -->)", re.DOTALL)
_OTHER = re.compile(r"(<!-- device-types-other -->\n)(?P<body>.*?)(<!-- /device-types-other -->)", re.DOTALL)
_TABLE_TITLES = {"input": "Input registers (FC4):", "holding": "Holding registers (FC3 read, FC6/FC16 write):"}


def _scale(scale: float) -> str:
    return "" if scale == 1.0 else f"x{scale:g}"


def device_table(device_type: str, table: str) -> str:
    """The Markdown table of one register table of a device type."""
    lines = ["| Address | Name | Type | Scale | Units | Access | Meaning |", "|---:|---|---|---|---|---|---|"]
    for r in load_device_type(device_type).registers:
        if r.table != table:
            continue
        span = str(r.address) if r.word_count == 1 else f"{r.address}-{r.end_address - 1}"
        data_type = r.data_type + (", low word first" if r.word_order == "little" else "")
        lines.append(f"| {span} | {r.name} | {data_type} | {_scale(r.scale)} | {r.unit} | {r.access.upper()} "
                     f"| {r.description} |")
    if len(lines) == 2:
        raise ValueError(f"device type {device_type!r} has no {table} registers")
    return "\n".join(lines) + "\n"


def other_device_types(text: str) -> str:
    """Sections for the vendor device types that no hand-written section of `text` marks."""
    marked = {m["type"] for m in _BLOCK.finditer(text)}
    sections = []
    for name in device_type_names():
        device = load_device_type(name)
        if name in marked or device.protocol != "vendor":
            continue
        parts = [f"### {device.title} (`kind: {device.kind}`, `device_type: {name}`)\n"]
        for table in ("input", "holding"):
            if any(r.table == table for r in device.registers):
                parts.append(f"{_TABLE_TITLES[table]}\n\n{device_table(name, table)}")
        sections.append("\n".join(parts))
    return "\n".join(sections)


def render(text: str) -> str:
    """`text` with every marked table rewritten from its data file, and the unmarked types' sections."""
    text = _BLOCK.sub(lambda m: m.group(1) + device_table(m["type"], m["table"]) + m.group(5), text)
    return _OTHER.sub(lambda m: m.group(1) + "\n" + other_device_types(text) + "\n" + m.group(3), text)


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
