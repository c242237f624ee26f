"""SunSpec maps are read in a few long requests: the block from the `SunS` marker on is contiguous."""

from __future__ import annotations

import pytest

from energy_edge_base.modbus.registers import MAX_READ_REGISTERS
from energy_edge_base.sunspec import MODELS, build_map


def contiguous_layout(models: tuple[int, ...], first_address: int = 40002) -> dict[int, int]:
    """Model header addresses as a device lays them out: each model right after the previous one."""
    layout, address = {}, first_address
    for model_id in models:
        layout[model_id] = address
        address += max(p.offset + (p.length or 1) for p in MODELS[model_id])
    return layout


@pytest.mark.parametrize(
    ("device", "models", "max_requests"),
    [
        ("battery", (1, 103, 120, 124, 713), 2),  # the battery module's models
        ("inverter", (1, 103, 120, 123), 2),  # the solar module's models
        ("inverter without model 120", (1, 103, 123), 2),
    ],
)
def test_poll_needs_few_requests(device: str, models: tuple[int, ...], max_requests: int) -> None:
    register_map = build_map(device, contiguous_layout(models), models)
    blocks = register_map.plan_reads()
    assert len(blocks) <= max_requests, (device, blocks)
    assert all(block.count <= MAX_READ_REGISTERS for block in blocks)
    # every mapped register is inside one of the planned reads
    covered = {a for b in blocks for a in range(b.address, b.address + b.count)}
    assert all(r.address in covered for r in register_map.registers), device
