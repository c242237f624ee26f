"""Register map codec: data types, word order, scaling, SunSpec scale factors and sentinels, planning."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from energy_edge_base.modbus import ReadBlock, Register, RegisterMap, RegisterValueError


def reg(**kwargs: Any) -> Register:
    """A register with test defaults (address 0, holding, read/write)."""
    return Register(**{"name": "value", "address": 0, "access": "rw", **kwargs})


# ------------------------------------------------------------------------ data types and word order

ROUND_TRIPS = [
    # data_type, word_order, value, words on the wire
    ("uint16", "big", 0, [0x0000]),
    ("uint16", "big", 65535, [0xFFFF]),
    ("uint16", "little", 0x1234, [0x1234]),  # word order is moot for one register
    ("int16", "big", -1, [0xFFFF]),
    ("int16", "big", -32768, [0x8000]),
    ("int16", "big", 32767, [0x7FFF]),
    ("int16", "big", 1234, [0x04D2]),
    ("uint32", "big", 0x12345678, [0x1234, 0x5678]),
    ("uint32", "little", 0x12345678, [0x5678, 0x1234]),
    ("uint32", "big", 0xFFFF_FFFE, [0xFFFF, 0xFFFE]),
    ("int32", "big", -2, [0xFFFF, 0xFFFE]),
    ("int32", "little", -2, [0xFFFE, 0xFFFF]),
    ("int32", "big", -0x7FFF_FFFF, [0x8000, 0x0001]),
    ("float32", "big", 1.5, [0x3FC0, 0x0000]),
    ("float32", "little", 1.5, [0x0000, 0x3FC0]),
    ("float32", "big", -50.25, [0xC249, 0x0000]),
    ("uint64", "big", 0x0102_0304_0506_0708, [0x0102, 0x0304, 0x0506, 0x0708]),
    ("uint64", "little", 0x0102_0304_0506_0708, [0x0708, 0x0506, 0x0304, 0x0102]),
    ("int64", "big", -1, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF]),
    ("int64", "little", -0x7FFF_FFFF_FFFF_FFFF, [0x0001, 0x0000, 0x0000, 0x8000]),
    ("bitfield16", "big", 0b1000_0000_0000_1010, [0x800A]),
]


@pytest.mark.parametrize(("data_type", "word_order", "value", "words"), ROUND_TRIPS)
def test_round_trip_every_numeric_type(data_type: str, word_order: str, value: Any, words: list[int]) -> None:
    register = reg(data_type=data_type, word_order=word_order)
    assert register.encode(value) == words
    decoded = register.decode(words)
    assert decoded == value
    assert type(decoded) is type(value)  # unscaled integers stay int, floats stay float
    assert register.word_count == len(words)


@pytest.mark.parametrize(
    ("length", "value", "words", "decoded"),
    [
        (3, "AB", [0x4142, 0x0000, 0x0000], "AB"),
        (3, "ABCDE", [0x4142, 0x4344, 0x4500], "ABCDE"),
        (2, "ABCD", [0x4142, 0x4344], "ABCD"),
        (2, "", [0x0000, 0x0000], ""),
        (3, "SN 1", [0x534E, 0x2031, 0x0000], "SN 1"),
    ],
)
def test_string_round_trip(length: int, value: str, words: list[int], decoded: str) -> None:
    register = reg(data_type="string", length=length)
    assert register.encode(value) == words
    assert register.decode(words) == decoded


@pytest.mark.parametrize(
    ("words", "decoded"),
    [
        ([0x4142, 0x2020], "AB"),  # space padding, as some devices do
        ([0x4142, 0x0043], "AB"),  # text after the NUL terminator is ignored
    ],
)
def test_string_decode_trims_padding(words: list[int], decoded: str) -> None:
    assert reg(data_type="string", length=2).decode(words) == decoded


# ------------------------------------------------------------------------ scale

SCALED = [
    # data_type, scale, value written, words, value read back
    ("uint16", 0.1, 23.4, [234], 23.4),
    ("uint16", 0.1, 23.46, [235], 23.5),  # rounded to the register's resolution
    ("uint16", 0.1, 23.44, [234], 23.4),
    ("uint16", 0.1, 0.05, [1], 0.1),  # half a step rounds away from zero
    ("int16", 0.01, -1.5, [0xFF6A], -1.5),
    ("int16", 0.1, -0.05, [0xFFFF], -0.1),
    ("uint16", 0.5, 2.5, [5], 2.5),
    ("uint32", 10.0, 12340, [0x0000, 1234], 12340.0),
    ("int32", 0.001, -2.5, [0xFFFF, 0xF63C], -2.5),
    ("float32", 1000.0, 1500.0, [0x3FC0, 0x0000], 1500.0),
    ("uint16", 1.0, 7.6, [8], 8),  # no scale: rounding only, value stays an int
    ("uint16", 0.1, 12.35, [124], 12.4),  # decimal half step: float math would give 123.4999...
    ("uint16", 0.01, 1.005, [101], 1.01),
]


@pytest.mark.parametrize(("data_type", "scale", "value", "words", "read_back"), SCALED)
def test_scale_is_applied_and_inverted(
    data_type: str, scale: float, value: float, words: list[int], read_back: float
) -> None:
    register = reg(data_type=data_type, scale=scale)
    assert register.encode(value) == words
    assert register.decode(words) == read_back
    assert register.values_match(value, read_back)


@pytest.mark.parametrize(
    ("data_type", "value"),
    [("int16", 2.5), ("int16", -2.5), ("int16", 0.5), ("int16", -0.5)],
)
def test_rounding_is_half_away_from_zero(data_type: str, value: float) -> None:
    expected = math.copysign(math.floor(abs(value) + 0.5), value)
    assert reg(data_type=data_type).decode(reg(data_type=data_type).encode(value)) == expected


# ------------------------------------------------------------------------ SunSpec scale factors

SUNSPEC_MAP = RegisterMap(
    name="sunspec_inverter",
    registers=(
        Register(name="ac_power_w", address=0, data_type="int16", scale_factor_register="w_sf", unit="W"),
        Register(name="w_sf", address=1, data_type="int16", not_implemented=True),
        Register(
            name="energy_wh", address=2, data_type="uint32", scale_factor_register="wh_sf", unit="Wh"
        ),
        Register(
            name="power_limit_pct",
            address=4,
            data_type="uint16",
            scale_factor_register="w_sf",
            unit="%",
            access="rw",
        ),
        # The scale factor lives in the other table, so it is read in another block.
        Register(name="wh_sf", address=0, table="input", data_type="int16"),
    ),
)


@pytest.mark.parametrize(
    ("raw_words", "sf", "expected"),
    [
        ([12345], -2, 123.45),
        ([0xFFFB], -1, -0.5),  # int16 -5 with a negative exponent
        ([42], 0, 42.0),
        ([42], 2, 4200.0),
        ([1], -3, 0.001),
        ([3], -1, 0.3),  # exact, not 0.30000000000000004
        ([0x7FFF], -10, 32767e-10),
    ],
)
def test_sunspec_scale_factor(raw_words: list[int], sf: int, expected: float) -> None:
    sf_word = sf & 0xFFFF
    blocks = SUNSPEC_MAP.plan_reads(["ac_power_w"])
    assert blocks == (ReadBlock("holding", 0, 2, ("ac_power_w", "w_sf")),)
    values = SUNSPEC_MAP.decode_blocks([(blocks[0], [*raw_words, sf_word])])
    assert values == {"ac_power_w": pytest.approx(expected, rel=1e-12), "w_sf": sf}
    assert SUNSPEC_MAP["ac_power_w"].encode(expected, sf) == raw_words


def test_scale_factor_from_another_block_and_table() -> None:
    blocks = SUNSPEC_MAP.plan_reads()
    words = {
        ("holding", 0): [1500, 0xFFFF, 0x0001, 0x86A0, 995],  # 1500 W * 10**-1, 100000 Wh raw, 99.5 %
        ("input", 0): [0x0001],  # wh_sf = +1
    }
    values = SUNSPEC_MAP.decode_blocks([(b, words[(b.table, b.address)]) for b in blocks])
    assert values == {
        "ac_power_w": 150.0,
        "w_sf": -1,
        "energy_wh": 1_000_000.0,
        "power_limit_pct": 99.5,
        "wh_sf": 1,
    }
    # decode_block takes exponents it cannot see from the caller.
    holding = next(b for b in blocks if b.table == "holding")
    assert SUNSPEC_MAP.decode_block(holding, words[("holding", 0)], {"wh_sf": 2})["energy_wh"] == 10_000_000.0
    with pytest.raises(RegisterValueError, match="wh_sf"):
        SUNSPEC_MAP.decode_block(holding, words[("holding", 0)])


@pytest.mark.parametrize(
    ("sf_word", "reason"),
    [(0x8000, "scale factor not implemented"), (0x0014, "exponent 20 is outside SunSpec's -10..10")],
)
def test_unusable_scale_factor_gives_none(sf_word: int, reason: str) -> None:
    block = SUNSPEC_MAP.plan_reads(["ac_power_w"])[0]
    assert SUNSPEC_MAP.decode_blocks([(block, [1500, sf_word])])["ac_power_w"] is None, reason
    with pytest.raises(RegisterValueError, match="scale factor"):
        SUNSPEC_MAP.encode("power_limit_pct", 50, scale_factor=None)


def test_scale_factor_write_round_trip() -> None:
    assert SUNSPEC_MAP.encode("power_limit_pct", 99.5, scale_factor=-1) == [995]
    assert SUNSPEC_MAP.encode("power_limit_pct", 99.5, scale_factor=-2) == [9950]
    assert SUNSPEC_MAP.encode("power_limit_pct", 1200, scale_factor=2) == [12]
    assert SUNSPEC_MAP["power_limit_pct"].values_match(99.54, 99.5, -1)
    assert not SUNSPEC_MAP["power_limit_pct"].values_match(99.6, 99.5, -1)


# ------------------------------------------------------------------------ not-implemented sentinels

SENTINELS = [
    # data_type, sentinel words, raw value when sentinels are not honoured
    ("int16", [0x8000], -32768),
    ("uint16", [0xFFFF], 65535),
    ("bitfield16", [0xFFFF], 65535),
    ("int32", [0x8000, 0x0000], -0x8000_0000),
    ("uint32", [0xFFFF, 0xFFFF], 0xFFFF_FFFF),
    ("int64", [0x8000, 0x0000, 0x0000, 0x0000], -(2**63)),
    ("uint64", [0xFFFF] * 4, 2**64 - 1),
    ("float32", [0x7FC0, 0x0000], math.nan),
]


@pytest.mark.parametrize(("data_type", "words", "raw"), SENTINELS)
def test_not_implemented_sentinel_decodes_to_none(data_type: str, words: list[int], raw: Any) -> None:
    honoured = reg(data_type=data_type, not_implemented=True)
    assert honoured.decode(words) is None
    assert honoured.not_implemented_words() == words
    plain = reg(data_type=data_type)
    value = plain.decode(words)
    assert math.isnan(value) if isinstance(raw, float) else value == raw


INTEGER_SENTINELS = [s for s in SENTINELS if s[0] != "float32"]


@pytest.mark.parametrize(("data_type", "words", "raw"), INTEGER_SENTINELS)
def test_sentinel_is_none_even_when_scaled(data_type: str, words: list[int], raw: int) -> None:
    if data_type != "bitfield16":  # bit fields cannot be scaled
        assert reg(data_type=data_type, scale=0.1, not_implemented=True).decode(words) is None


@pytest.mark.parametrize(("data_type", "words", "raw"), INTEGER_SENTINELS)
def test_sentinel_cannot_be_written(data_type: str, words: list[int], raw: int) -> None:
    with pytest.raises(RegisterValueError, match="sentinel"):
        reg(data_type=data_type, not_implemented=True).encode(raw)
    assert reg(data_type=data_type).encode(raw) == words  # without sentinels it is an ordinary value


def test_not_implemented_string_is_all_nul() -> None:
    register = reg(data_type="string", length=2, not_implemented=True)
    assert register.decode([0, 0]) is None
    assert register.decode([0x4100, 0]) == "A"


# ------------------------------------------------------------------------ encode errors

ENCODE_ERRORS = [
    # register fields, value, message fragment
    ({"data_type": "uint16"}, -1, "outside uint16"),
    ({"data_type": "uint16"}, 65536, "outside uint16"),
    ({"data_type": "int16"}, 32768, "outside int16"),
    ({"data_type": "int16"}, -32769, "outside int16"),
    ({"data_type": "int16", "scale": 0.1}, 3276.8, "raw 32768"),
    ({"data_type": "uint16", "scale": 0.1}, -0.06, "raw -1"),
    ({"data_type": "uint32"}, 2**32, "outside uint32"),
    ({"data_type": "int32"}, -(2**31) - 1, "outside int32"),
    ({"data_type": "uint64"}, -1, "outside uint64"),
    ({"data_type": "int64"}, 2**63, "outside int64"),
    ({"data_type": "bitfield16"}, 0x1_0000, "outside bitfield16"),
    ({"data_type": "float32"}, math.nan, "not a finite number"),
    ({"data_type": "float32"}, 1e39, "overflows float32"),
    ({"data_type": "uint16"}, math.inf, "not a finite number"),
    ({"data_type": "uint16"}, None, "cannot write None"),
    ({"data_type": "uint16"}, "12", "expected a number"),
    ({"data_type": "string", "length": 2}, "ABCDE", "do not fit"),
    ({"data_type": "string", "length": 2}, 12, "expected a string"),
]


@pytest.mark.parametrize(("fields", "value", "message"), ENCODE_ERRORS)
def test_encode_range_errors(fields: dict[str, Any], value: Any, message: str) -> None:
    with pytest.raises(RegisterValueError, match=message):
        reg(**fields).encode(value)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ac_power_w", 100, "read-only"),
        ("no_such_register", 1, "unknown register"),
        ("power_limit_pct", -1, "outside uint16"),
    ],
)
def test_map_encode_errors(name: str, value: Any, message: str) -> None:
    with pytest.raises(RegisterValueError, match=message):
        SUNSPEC_MAP.encode(name, value, scale_factor=-1)


def test_map_encode_can_bypass_access_for_fakes() -> None:
    assert SUNSPEC_MAP.encode("ac_power_w", 100, scale_factor=-1, check_access=False) == [1000]


# ------------------------------------------------------------------------ validation of maps


def _map(*registers: Register) -> RegisterMap:
    return RegisterMap(name="bad", registers=registers)


INVALID_REGISTERS = [
    ({"name": "ACPower"}, "snake_case"),
    ({"name": "ac_power", "unit": "W"}, "must end with"),
    ({"name": "soc", "unit": "%"}, "must end with"),
    ({"data_type": "string"}, "needs length"),
    ({"data_type": "uint32", "length": 2}, "only for strings"),
    ({"data_type": "string", "length": 2, "word_order": "little"}, "numbers only"),
    ({"scale": 0.0}, "non-zero"),
    ({"scale": 0.1, "scale_factor_register": "w_sf"}, "not both"),
    ({"data_type": "bitfield16", "scale": 2.0}, "cannot be scaled"),
    ({"table": "input", "access": "rw"}, "only holding registers are writable"),
    ({"address": 0xFFFF, "data_type": "uint32"}, "past address 65535"),
    ({"address": -1}, "greater than or equal"),
    ({"data_type": "float64"}, "data_type"),
    ({"table": "coil"}, "table"),
]


@pytest.mark.parametrize(("fields", "message"), INVALID_REGISTERS)
def test_invalid_register_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        reg(**fields)


INVALID_MAPS = [
    ((reg(name="a_w", unit="W"), reg(name="a_w", address=5, unit="W")), "duplicate register name"),
    ((reg(name="a", data_type="uint32"), reg(name="b", address=1)), "'b' overlaps 'a'"),
    ((reg(name="a", address=10, data_type="string", length=4), reg(name="b", address=12)), "overlaps"),
    ((reg(name="a", scale_factor_register="a_sf"),), "unknown scale factor"),
    ((reg(name="a", scale_factor_register="a_sf"), reg(name="a_sf", address=1, data_type="uint16")), "int16"),
    (
        (
            reg(name="a", scale_factor_register="a_sf"),
            reg(name="a_sf", address=1, data_type="int16", scale=2),
        ),
        "unscaled int16",
    ),
]


@pytest.mark.parametrize(("registers", "message"), INVALID_MAPS)
def test_invalid_map_is_refused(registers: tuple[Register, ...], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _map(*registers)


def test_same_address_in_different_tables_is_fine_and_maps_load_from_data() -> None:
    data = {
        "name": "meter",
        "registers": [
            {"name": "grid_power_w", "address": 0, "table": "holding", "data_type": "int32", "unit": "W"},
            {"name": "grid_voltage_v", "address": 0, "table": "input", "data_type": "uint16", "scale": 0.1,
             "unit": "V"},
        ],
    }
    register_map = RegisterMap.model_validate(data)
    assert register_map.names == ("grid_power_w", "grid_voltage_v")
    assert RegisterMap.model_validate_json(register_map.model_dump_json()) == register_map
    assert "grid_power_w" in register_map and "nope" not in register_map
    with pytest.raises(RegisterValueError, match="unknown register"):
        register_map["nope"]


# ------------------------------------------------------------------------ read planning


def _layout(*spans: tuple[str, int, str]) -> RegisterMap:
    """Registers from (table, address, data_type) triples, named r0, r1, ..."""
    return RegisterMap(
        name="layout",
        registers=tuple(
            Register(name=f"r{i}", table=table, address=address, data_type=data_type)  # type: ignore[arg-type]
            for i, (table, address, data_type) in enumerate(spans)
        ),
    )


H, IN = "holding", "input"
PLANS = [
    # layout, max gap, max block, expected (table, address, count) blocks
    pytest.param(
        [(H, 0, "uint16"), (H, 1, "uint32"), (H, 3, "uint16")], 0, 125, [(H, 0, 4)], id="contiguous"
    ),
    pytest.param([(H, 0, "uint16"), (H, 2, "uint16")], 0, 125, [(H, 0, 1), (H, 2, 1)], id="gap-not-bridged"),
    pytest.param([(H, 0, "uint16"), (H, 2, "uint16")], 1, 125, [(H, 0, 3)], id="gap-1-bridged"),
    pytest.param([(H, 0, "uint16"), (H, 6, "uint16")], 4, 125, [(H, 0, 1), (H, 6, 1)], id="gap-5-over-4"),
    pytest.param([(H, 0, "uint16"), (H, 5, "uint16")], 4, 125, [(H, 0, 6)], id="gap-4-at-4"),
    pytest.param([(H, 10, "uint16"), (H, 0, "uint16")], 0, 125, [(H, 0, 1), (H, 10, 1)], id="sorted"),
    pytest.param([(H, 0, "uint16"), (IN, 1, "uint16")], 8, 125, [(H, 0, 1), (IN, 1, 1)], id="tables-apart"),
    pytest.param([(H, a, "uint16") for a in range(130)], 0, 125, [(H, 0, 125), (H, 125, 5)], id="split-125"),
    pytest.param(
        [(H, a, "uint32") for a in range(0, 126, 2)],
        0,
        125,
        [(H, 0, 124), (H, 124, 2)],
        id="never-split-a-value",
    ),
    pytest.param([(H, 0, "uint64"), (H, 4, "uint64")], 0, 6, [(H, 0, 4), (H, 4, 4)], id="device-limit"),
    pytest.param([(H, 0, "uint16"), (H, 120, "uint16")], 125, 125, [(H, 0, 121)], id="wide-gap-allowed"),
    pytest.param(
        [(H, 0, "uint16"), (H, 125, "uint16")], 125, 125, [(H, 0, 1), (H, 125, 1)], id="gap-but-125"
    ),
]


@pytest.mark.parametrize(("layout", "max_gap", "max_block", "expected"), PLANS)
def test_plan_reads(
    layout: list[tuple[str, int, str]], max_gap: int, max_block: int, expected: list[tuple[str, int, int]]
) -> None:
    register_map = _layout(*layout)
    blocks = register_map.plan_reads(max_gap_registers=max_gap, max_block_registers=max_block)
    assert [(b.table, b.address, b.count) for b in blocks] == expected
    # Every register is read exactly once, inside its block.
    covered = [name for b in blocks for name in b.names]
    assert sorted(covered) == sorted(register_map.names)
    for block in blocks:
        assert block.count <= max_block
        for name in block.names:
            register = register_map[name]
            assert block.address <= register.address < register.end_address <= block.end_address


def test_plan_uses_map_defaults_and_adds_scale_factors() -> None:
    register_map = RegisterMap(
        name="gappy",
        max_read_gap_registers=3,
        max_read_registers=10,
        registers=(
            Register(name="a_w", address=0, unit="W", scale_factor_register="w_sf"),
            Register(name="b", address=4),
            Register(name="c", address=9, data_type="uint32"),
            Register(name="w_sf", address=40, data_type="int16"),
        ),
    )
    assert [(b.address, b.count) for b in register_map.plan_reads()] == [(0, 5), (9, 2), (40, 1)]
    assert register_map.plan_reads(["a_w"]) == (
        ReadBlock("holding", 0, 1, ("a_w",)),
        ReadBlock("holding", 40, 1, ("w_sf",)),
    )
    with pytest.raises(RegisterValueError, match="unknown register"):
        register_map.plan_reads(["zzz"])


def test_decode_refuses_a_short_block() -> None:
    block = SUNSPEC_MAP.plan_reads(["ac_power_w"])[0]
    with pytest.raises(RegisterValueError, match="expected 2 words"):
        SUNSPEC_MAP.decode_blocks([(block, [1])])


@pytest.mark.parametrize(
    ("data_type", "raw", "words"),
    [("int16", -2, [0xFFFE]), ("uint32", 0x12345678, [0x1234, 0x5678]), ("int32", -1, [0xFFFF, 0xFFFF]),
     ("float32", 1.0, [0x3F80, 0]), ("uint16", 0x10000, None), ("int16", 1.5, None), ("string", 1, None)],
)
def test_encode_raw(data_type: str, raw: int | float, words: list[int] | None) -> None:
    """A device image (the simulator) packs raw values through the same codec; out of range is refused."""
    register = Register(name="value", address=0, data_type=data_type, length=2 if data_type == "string" else None)
    if words is None:
        with pytest.raises(RegisterValueError):
            register.encode_raw(raw)
    else:
        assert register.encode_raw(raw) == words
        assert register.decode_raw(words) == raw
