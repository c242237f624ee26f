"""energy-edge developer and operator tools: emulator, simulator, local run, benchmarks, operator CLI."""

__version__ = "0.1.0"
