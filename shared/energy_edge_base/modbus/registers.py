"""Modbus register maps declared as data, and the one codec that reads and writes them.

A device is a :class:`RegisterMap` instance: a table of :class:`Register` rows. There is no
per-device code: decoding, scaling, sentinel handling, read planning and write encoding are
all driven by the rows.

Conventions (fixed here so every module agrees):

* ``address`` is the 0-based PDU address (what goes on the wire), not the 4xxxx/3xxxx number.
* Bytes inside a 16-bit word are always big-endian (the Modbus standard); ``word_order``
  only says whether the most significant word comes first (``big``, "ABCD") or last
  (``little``, "CDAB").
* Engineering value = raw * ``scale``, or raw * 10**sf with a SunSpec scale-factor register.
"""

from __future__ import annotations

import itertools
import math
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

__all__ = [
    "MAX_READ_REGISTERS",
    "MAX_WRITE_REGISTERS",
    "Access",
    "DataType",
    "ReadBlock",
    "Register",
    "RegisterMap",
    "RegisterValue",
    "RegisterValueError",
    "Table",
    "WordOrder",
]

DataType = Literal["uint16", "int16", "uint32", "int32", "float32", "uint64", "int64", "string", "bitfield16"]
Table = Literal["holding", "input"]
WordOrder = Literal["big", "little"]
Access = Literal["r", "rw"]
RegisterValue = int | float | str | None

#: Protocol limits: FC3/FC4 read at most 125 registers, FC16 writes at most 123.
MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123

# SunSpec scale factors are int16 exponents in -10..10; anything else is a broken device.
_SUNSPEC_SF_RANGE = range(-10, 11)

# (register count, struct code) for the fixed-width types.
_FIXED: dict[str, tuple[int, str]] = {
    "uint16": (1, "H"),
    "int16": (1, "h"),
    "bitfield16": (1, "H"),
    "uint32": (2, "I"),
    "int32": (2, "i"),
    "float32": (2, "f"),
    "uint64": (4, "Q"),
    "int64": (4, "q"),
}

# Precompiled (value, words) structs per fixed-width type: the simulator packs every register of its images
# through this codec on every plant step, so the packing is kept cheap.
_STRUCTS: dict[str, tuple[struct.Struct, struct.Struct]] = {
    data_type: (struct.Struct(f">{code}"), struct.Struct(f">{count}H")) for data_type, (count, code) in _FIXED.items()
}

# SunSpec "not implemented" raw values; float32 uses NaN and string all-NUL (handled inline).
_SENTINELS: dict[str, int] = {
    "uint16": 0xFFFF,
    "bitfield16": 0xFFFF,
    "int16": -0x8000,
    "uint32": 0xFFFF_FFFF,
    "int32": -0x8000_0000,
    "uint64": 0xFFFF_FFFF_FFFF_FFFF,
    "int64": -0x8000_0000_0000_0000,
}

_INT_RANGES: dict[str, tuple[int, int]] = {
    "uint16": (0, 0xFFFF),
    "bitfield16": (0, 0xFFFF),
    "int16": (-0x8000, 0x7FFF),
    "uint32": (0, 0xFFFF_FFFF),
    "int32": (-0x8000_0000, 0x7FFF_FFFF),
    "uint64": (0, 0xFFFF_FFFF_FFFF_FFFF),
    "int64": (-0x8000_0000_0000_0000, 0x7FFF_FFFF_FFFF_FFFF),
}

_FLOAT32_MAX = struct.unpack(">f", b"\x7f\x7f\xff\xff")[0]
# Half an ulp of float32, relative: the worst rounding a float32 round trip can add.
_FLOAT32_REL_TOL = 2.0**-23

_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")

# Names carry units: for the units we know, the name must end with the matching suffix
# (``ac_power_w`` for W). Unknown units are not policed, so a new unit never blocks a map.
UNIT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "W": ("_w",),
    "kW": ("_kw",),
    "Wh": ("_wh",),
    "kWh": ("_kwh",),
    "VA": ("_va",),
    "kVA": ("_kva",),
    "var": ("_var",),
    "kvar": ("_kvar",),
    "V": ("_v",),
    "A": ("_a",),
    "Hz": ("_hz",),
    "%": ("_pct",),
    "degC": ("_c", "_degc"),
    "s": ("_s",),
    "ms": ("_ms",),
}


class RegisterValueError(ValueError):
    """A value cannot be encoded or decoded: unknown register, out of range, or read-only."""


@dataclass(frozen=True)
class ReadBlock:
    """One contiguous FC3/FC4 read covering the registers named in ``names``."""

    table: Table
    address: int
    count: int
    names: tuple[str, ...]

    @property
    def end_address(self) -> int:
        """First address after the block."""
        return self.address + self.count


def _inverse_integer(scale: float) -> int | None:
    """Return n when scale == 1/n (0.1, 0.01, 0.5 ...), so we can divide/multiply by an exact int."""
    inverse = 1.0 / scale
    nearest = round(inverse)
    if nearest != 0 and abs(inverse - nearest) < 1e-9 * abs(inverse):
        return int(nearest)
    return None


class Register(BaseModel):
    """One named value on the device: where it lives, how it is encoded, how it is scaled."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    address: int = Field(ge=0, le=0xFFFF)
    table: Table = "holding"
    data_type: DataType = "uint16"
    #: Register count; required for ``string`` only (other types have a fixed width).
    length: int | None = Field(default=None, ge=1, le=MAX_READ_REGISTERS)
    word_order: WordOrder = "big"
    scale: float = 1.0
    scale_factor_register: str | None = None
    unit: str = ""
    access: Access = "r"
    description: str = ""
    #: Decode the SunSpec "not implemented" sentinel of the data type to None.
    not_implemented: bool = False

    @model_validator(mode="after")
    def _check(self) -> Register:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"register name {self.name!r} must be snake_case")
        suffixes = UNIT_SUFFIXES.get(self.unit)
        if suffixes and not self.name.endswith(suffixes):
            raise ValueError(f"register {self.name!r} in {self.unit} must end with one of {suffixes}")
        if self.data_type == "string":
            if self.length is None:
                raise ValueError(f"string register {self.name!r} needs length (registers)")
            if self.word_order != "big":
                raise ValueError(f"string register {self.name!r}: word_order applies to numbers only")
        elif self.length is not None:
            raise ValueError(f"register {self.name!r}: length is only for strings")
        if not math.isfinite(self.scale) or self.scale == 0:
            raise ValueError(f"register {self.name!r}: scale must be finite and non-zero")
        if self.scale_factor_register is not None:
            if self.scale != 1.0:
                raise ValueError(f"register {self.name!r}: use scale or scale_factor_register, not both")
            if self.data_type == "float32":
                raise ValueError(f"register {self.name!r}: SunSpec scale factors apply to integers")
            if self.scale_factor_register == self.name:
                raise ValueError(f"register {self.name!r} cannot be its own scale factor")
        if self.data_type in ("string", "bitfield16") and (
            self.scale != 1.0 or self.scale_factor_register is not None
        ):
            raise ValueError(f"register {self.name!r}: {self.data_type} cannot be scaled")
        if self.access == "rw" and self.table != "holding":
            raise ValueError(f"register {self.name!r}: only holding registers are writable")
        if self.address + self.word_count > 0x10000:
            raise ValueError(f"register {self.name!r} runs past address 65535")
        return self

    # ------------------------------------------------------------------ shape

    @property
    def word_count(self) -> int:
        """Number of 16-bit registers the value occupies."""
        if self.data_type == "string":
            assert self.length is not None  # enforced by the validator
            return self.length
        return _FIXED[self.data_type][0]

    def raw_range(self) -> tuple[int, int]:
        """The lowest and highest raw integer the data type holds (strings and float32 have none)."""
        if self.data_type not in _INT_RANGES:
            raise RegisterValueError(f"{self.name}: {self.data_type} has no integer range")
        return _INT_RANGES[self.data_type]

    @property
    def end_address(self) -> int:
        """First address after the register."""
        return self.address + self.word_count

    @property
    def writable(self) -> bool:
        """True when the register may be written."""
        return self.access == "rw"

    @property
    def is_scaled(self) -> bool:
        """True when the decoded value is a float in engineering units rather than the raw int."""
        return self.scale != 1.0 or self.scale_factor_register is not None

    def not_implemented_words(self) -> list[int]:
        """The SunSpec sentinel for this data type as register words (for fakes and tests)."""
        if self.data_type == "string":
            return [0] * self.word_count
        if self.data_type == "float32":
            return self._pack(math.nan)
        return self._pack(_SENTINELS[self.data_type])

    # ------------------------------------------------------------------ raw codec

    def encode_raw(self, raw: int | float) -> list[int]:
        """An unscaled value to words, range-checked: for a device image, which holds raw values already."""
        if self.data_type == "string":
            raise RegisterValueError(f"{self.name}: strings are encoded with encode()")
        if self.data_type == "float32":
            return self._pack(float(raw))
        if not isinstance(raw, int):
            raise RegisterValueError(f"{self.name}: raw {raw!r} is not an integer")
        low, high = _INT_RANGES[self.data_type]
        if not low <= raw <= high:
            raise RegisterValueError(f"{self.name}: raw {raw} outside {self.data_type} [{low}, {high}]")
        return self._pack(raw)

    def _pack(self, raw: int | float) -> list[int]:
        value_struct, words_struct = _STRUCTS[self.data_type]
        words = list(words_struct.unpack(value_struct.pack(raw)))
        return words[::-1] if self.word_order == "little" else words

    def _unpack(self, words: Sequence[int]) -> int | float:
        ordered = list(words)[::-1] if self.word_order == "little" else words
        value_struct, words_struct = _STRUCTS[self.data_type]
        value: int | float = value_struct.unpack(words_struct.pack(*ordered))[0]
        return value

    def _check_words(self, words: Sequence[int]) -> None:
        if len(words) != self.word_count:
            raise RegisterValueError(f"{self.name}: expected {self.word_count} registers, got {len(words)}")
        for word in words:
            if not 0 <= word <= 0xFFFF:
                raise RegisterValueError(f"{self.name}: register word {word!r} is not 16-bit")

    def decode_raw(self, words: Sequence[int]) -> RegisterValue:
        """Words to the unscaled value, or None for the not-implemented sentinel."""
        self._check_words(words)
        if self.data_type == "string":
            data = b"".join(word.to_bytes(2, "big") for word in words)
            if self.not_implemented and not any(data):
                return None
            # SunSpec strings are NUL-terminated/padded; some devices pad with spaces instead.
            return data.split(b"\x00", 1)[0].decode("utf-8", errors="replace").rstrip()
        raw = self._unpack(words)
        if self.not_implemented:
            if self.data_type == "float32":
                if math.isnan(raw):
                    return None
            elif raw == _SENTINELS[self.data_type]:
                return None
        return raw

    # ------------------------------------------------------------------ scaling

    def apply_scale(self, raw: RegisterValue, scale_factor: int | None = None) -> RegisterValue:
        """Unscaled value to engineering units; None stays None (also for a bad scale factor)."""
        if raw is None or isinstance(raw, str) or not self.is_scaled:
            return raw
        if self.scale_factor_register is not None:
            if scale_factor is None or scale_factor not in _SUNSPEC_SF_RANGE:
                # An unknown or out-of-spec exponent makes the value unknowable: say so with None.
                return None
            # Dividing by an exact power of ten keeps 123 * 10**-1 == 12.3 (no 12.300000000000001).
            return float(raw * 10**scale_factor) if scale_factor >= 0 else raw / 10 ** (-scale_factor)
        inverse = _inverse_integer(self.scale)
        return raw / inverse if inverse is not None else raw * self.scale

    def decode(self, words: Sequence[int], scale_factor: int | None = None) -> RegisterValue:
        """Words to the engineering value (scale applied, sentinel to None)."""
        return self.apply_scale(self.decode_raw(words), scale_factor)

    def resolution(self, scale_factor: int | None = None) -> float:
        """Engineering size of one raw step (0.0 for float32: relative precision applies)."""
        if self.data_type in ("float32", "string"):
            return 0.0
        if self.scale_factor_register is not None:
            return 10.0 ** (scale_factor or 0)
        return abs(self.scale)

    def encode(self, value: Any, scale_factor: int | None = None) -> list[int]:
        """Engineering value to words: inverse scaling, rounding, range check."""
        if value is None:
            raise RegisterValueError(f"{self.name}: cannot write None")
        if self.data_type == "string":
            return self._encode_string(value)
        if not isinstance(value, int | float):
            raise RegisterValueError(f"{self.name}: expected a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise RegisterValueError(f"{self.name}: {value!r} is not a finite number")
        if self.data_type == "float32":
            raw = self._unscale_float(value, scale_factor)
            if abs(raw) > _FLOAT32_MAX:
                raise RegisterValueError(f"{self.name}: {value!r} {self.unit} overflows float32")
            return self._pack(raw)
        raw_int = int(self._unscale_decimal(value, scale_factor).to_integral_value(rounding=ROUND_HALF_UP))
        low, high = _INT_RANGES[self.data_type]
        if not low <= raw_int <= high:
            raise RegisterValueError(
                f"{self.name}: {value!r} {self.unit} is raw {raw_int}, "
                f"outside {self.data_type} [{low}, {high}]"
            )
        if self.not_implemented and raw_int == _SENTINELS[self.data_type]:
            # It would read back as None: refuse instead of writing "not implemented".
            raise RegisterValueError(f"{self.name}: raw {raw_int} is the not-implemented sentinel")
        return self._pack(raw_int)

    def _unscale_decimal(self, value: float, scale_factor: int | None) -> Decimal:
        # Decimal arithmetic on the shortest repr: 12.35 / 0.1 is 123.5 as a person expects (not
        # 123.49999999999999), and 64-bit integers keep every digit (a float keeps only 53 bits).
        # ROUND_HALF_UP is half away from zero in Decimal, which is how setpoints should round.
        exact = Decimal(int(value)) if isinstance(value, int) else Decimal(repr(value))
        with localcontext() as context:
            context.prec = 50
            if self.scale_factor_register is not None:
                return exact.scaleb(-self._checked_scale_factor(scale_factor))
            return exact if self.scale == 1.0 else exact / Decimal(repr(self.scale))

    def _unscale_float(self, value: float, scale_factor: int | None) -> float:
        # float32 never has a scale-factor register (the validator refuses it): scale only.
        inverse = _inverse_integer(self.scale)
        return float(value) * inverse if inverse is not None else float(value) / self.scale

    def _checked_scale_factor(self, scale_factor: int | None) -> int:
        if scale_factor is None or scale_factor not in _SUNSPEC_SF_RANGE:
            raise RegisterValueError(f"{self.name}: needs a valid scale factor, got {scale_factor!r}")
        return scale_factor

    def _encode_string(self, value: Any) -> list[int]:
        if not isinstance(value, str):
            raise RegisterValueError(f"{self.name}: expected a string, got {type(value).__name__}")
        data = value.encode("utf-8")
        size = 2 * self.word_count
        if len(data) > size:
            raise RegisterValueError(f"{self.name}: {len(data)} bytes do not fit {self.word_count} registers")
        data = data.ljust(size, b"\x00")
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, size, 2)]

    def values_match(self, requested: Any, read_back: RegisterValue, scale_factor: int | None = None) -> bool:
        """True when ``read_back`` is what writing ``requested`` should produce (within resolution)."""
        if read_back is None or requested is None:
            return read_back is requested
        if self.data_type == "string" or isinstance(read_back, str) or isinstance(requested, str):
            return str(requested).rstrip() == read_back
        if self.data_type == "float32":
            return math.isclose(requested, read_back, rel_tol=_FLOAT32_REL_TOL, abs_tol=1e-30)
        # The device may only hold multiples of the resolution; within half a step is "the same".
        half_step = self.resolution(scale_factor) / 2
        return abs(float(requested) - float(read_back)) <= half_step * (1 + 1e-9)


class RegisterMap(BaseModel):
    """A device's register table: validated once, then used to plan reads, decode and encode."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    registers: tuple[Register, ...]
    #: Largest run of unmapped registers a merged read may span. 0 by default: many devices
    #: answer ILLEGAL ADDRESS for unmapped addresses, so bridging gaps is opt-in per device.
    max_read_gap_registers: int = Field(default=0, ge=0, le=MAX_READ_REGISTERS)
    #: Largest single read; some devices accept fewer than the protocol's 125.
    max_read_registers: int = Field(default=MAX_READ_REGISTERS, ge=1, le=MAX_READ_REGISTERS)
    #: Some devices (SunSpec-strict inverters) implement only FC16, even for one register.
    write_single_with_fc16: bool = False

    _by_name: dict[str, Register] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> RegisterMap:
        by_name: dict[str, Register] = {}
        for register in self.registers:
            if register.name in by_name:
                raise ValueError(f"{self.name}: duplicate register name {register.name!r}")
            by_name[register.name] = register
            if register.word_count > self.max_read_registers:
                raise ValueError(f"{self.name}: {register.name!r} is longer than max_read_registers")
        for table in get_args(Table):
            rows = sorted((r for r in self.registers if r.table == table), key=lambda r: r.address)
            for previous, current in itertools.pairwise(rows):
                if current.address < previous.end_address:
                    raise ValueError(
                        f"{self.name}: {current.name!r} overlaps {previous.name!r} in the {table} table"
                    )
        for register in self.registers:
            ref = register.scale_factor_register
            if ref is None:
                continue
            target = by_name.get(ref)
            if target is None:
                raise ValueError(f"{self.name}: {register.name!r} refers to unknown scale factor {ref!r}")
            if target.data_type != "int16" or target.is_scaled:
                raise ValueError(f"{self.name}: scale factor {ref!r} must be an unscaled int16")
        self._by_name = by_name
        return self

    # ------------------------------------------------------------------ lookup

    def __getitem__(self, name: str) -> Register:
        try:
            return self._by_name[name]
        except KeyError:
            raise RegisterValueError(f"{self.name}: unknown register {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self.registers)

    @property
    def names(self) -> tuple[str, ...]:
        """Register names in declaration order."""
        return tuple(r.name for r in self.registers)

    # ------------------------------------------------------------------ reads

    def plan_reads(
        self,
        names: Iterable[str] | None = None,
        *,
        max_gap_registers: int | None = None,
        max_block_registers: int | None = None,
    ) -> tuple[ReadBlock, ...]:
        """Cover the named registers (default: all) with few contiguous reads.

        Scale-factor registers the selection depends on are added. Neighbours are merged when
        the unmapped gap between them is at most ``max_gap_registers``; a block never exceeds
        ``max_block_registers`` and never splits a register.
        """
        gap = self.max_read_gap_registers if max_gap_registers is None else max_gap_registers
        limit = self.max_read_registers if max_block_registers is None else max_block_registers
        if gap < 0 or not 1 <= limit <= MAX_READ_REGISTERS:
            raise RegisterValueError(f"invalid read planning limits gap={gap} block={limit}")
        selected = self._with_scale_factors(self.names if names is None else names)
        blocks: list[ReadBlock] = []
        for table in get_args(Table):
            rows = sorted((r for r in selected if r.table == table), key=lambda r: r.address)
            start = end = 0
            members: list[str] = []
            for row in rows:
                if row.word_count > limit:
                    raise RegisterValueError(f"{row.name} is longer than the {limit}-register read limit")
                if members and row.address - end <= gap and row.end_address - start <= limit:
                    end = row.end_address
                    members.append(row.name)
                    continue
                if members:
                    blocks.append(ReadBlock(table, start, end - start, tuple(members)))
                start, end, members = row.address, row.end_address, [row.name]
            if members:
                blocks.append(ReadBlock(table, start, end - start, tuple(members)))
        return tuple(blocks)

    def _with_scale_factors(self, names: Iterable[str]) -> list[Register]:
        chosen: dict[str, Register] = {}
        for name in names:
            register = self[name]
            chosen[name] = register
            if register.scale_factor_register is not None:
                chosen[register.scale_factor_register] = self[register.scale_factor_register]
        return list(chosen.values())

    def decode_blocks(self, results: Iterable[tuple[ReadBlock, Sequence[int]]]) -> dict[str, RegisterValue]:
        """Decode block reads into ``{name: engineering value}`` in declaration order.

        Scale factors are looked up across all blocks, since a SunSpec SF register may sit in a
        different block (or table) than the values it scales.
        """
        raws: dict[str, RegisterValue] = {}
        for block, words in results:
            raws.update(self._decode_raw_block(block, words))
        return self._scale_all(raws, {})

    def decode_block(
        self,
        block: ReadBlock,
        words: Sequence[int],
        scale_factors: Mapping[str, int | None] | None = None,
    ) -> dict[str, RegisterValue]:
        """Decode one block; scale factors outside it come from ``scale_factors`` (name -> exponent)."""
        return self._scale_all(self._decode_raw_block(block, words), scale_factors or {})

    def _decode_raw_block(self, block: ReadBlock, words: Sequence[int]) -> dict[str, RegisterValue]:
        if len(words) != block.count:
            raise RegisterValueError(
                f"block at {block.address}: expected {block.count} words, got {len(words)}"
            )
        raws: dict[str, RegisterValue] = {}
        for name in block.names:
            register = self[name]
            offset = register.address - block.address
            raws[name] = register.decode_raw(words[offset : offset + register.word_count])
        return raws

    def _scale_all(
        self, raws: Mapping[str, RegisterValue], extra_scale_factors: Mapping[str, int | None]
    ) -> dict[str, RegisterValue]:
        values: dict[str, RegisterValue] = {}
        for register in self.registers:
            if register.name not in raws:
                continue
            sf: int | None = None
            ref = register.scale_factor_register
            if ref is not None:
                if ref in raws:
                    sf_raw = raws[ref]
                elif ref in extra_scale_factors:
                    sf_raw = extra_scale_factors[ref]
                else:
                    raise RegisterValueError(f"{register.name}: scale factor {ref!r} was not read")
                sf = sf_raw if isinstance(sf_raw, int) else None
            values[register.name] = register.apply_scale(raws[register.name], sf)
        return values

    # ------------------------------------------------------------------ writes

    def encode(
        self,
        name: str,
        value: Any,
        *,
        scale_factor: int | None = None,
        check_access: bool = True,
    ) -> list[int]:
        """Engineering value to register words for writing ``name``.

        ``check_access=False`` lets a fake device set read-only values through the same codec.
        """
        register = self[name]
        if check_access and not register.writable:
            raise RegisterValueError(f"{self.name}: {name!r} is read-only")
        words = register.encode(value, scale_factor)
        if check_access and len(words) > MAX_WRITE_REGISTERS:
            raise RegisterValueError(f"{name!r} is longer than one FC16 write ({MAX_WRITE_REGISTERS})")
        return words
