"""`energy-edge`: one entry point for the emulator and the developer/operator tools.

Each tool is its own distribution (ARCHITECTURE.md, "Tool packages"); this front only collects the
subcommands of those that are installed, imported lazily, so no tool depends on another through it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from importlib.metadata import PackageNotFoundError, version

# (module, parser adder, distribution that ships it): a command whose distribution is missing, or whose
# imports are (the tools image installs the tools without their optional dependencies), is left out of
# `energy-edge` and named in its help, not fatal to it.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("energy_edge.hub.cli", "add_hub_parser", "energy-edge-emulator"),
    ("energy_edge.sim.main", "add_sim_parser", "energy-edge-simulator"),
    ("energy_edge.run.main", "add_run_parser", "energy-edge-run"),
    ("energy_edge.ops.manifest", "add_manifest_parser", "energy-edge"),
    ("energy_edge.ops.provision", "add_provision_parser", "energy-edge"),
    ("energy_edge.ops.operator", "add_operator_parsers", "energy-edge"),
    ("energy_edge.ops.analyst", "add_analyst_parsers", "energy-edge"),
    ("energy_edge.ops.console", "add_console_parser", "energy-edge"),
    ("energy_edge.bench.cli", "add_bench_parser", "energy-edge-bench"),
)


def _version() -> str:
    try:
        return version("energy-edge")
    except PackageNotFoundError:
        return "unknown"


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="energy-edge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"energy-edge {_version()}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)
    missing: list[str] = []
    for module, adder, distribution in COMMANDS:
        try:
            imported = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            logging.getLogger("energy_edge").debug("%s left out: %s", module, exc)
            missing.append(f"{module.split('.')[1]} ({distribution}: {exc})")
            continue
        getattr(imported, adder)(sub)
    if missing:
        parser.epilog = "not installed here: " + "; ".join(dict.fromkeys(missing))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.log_level)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
