#!/usr/bin/env python3
"""Print an Azure Pipelines job matrix of the repository's modules as an output variable.

    python scripts/pipeline_matrix.py tests     # folders with tests/: moduleFolder, package
    python scripts/pipeline_matrix.py images    # every module.json x platform: moduleFolder, platform, version

The pipeline reads it with `strategy: matrix: $[ dependencies.Discover.outputs['matrix.<kind>'] ]`, so a new
module folder is tested and built without editing the pipeline. `--json` prints the plain matrix.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def test_matrix(root: Path = ROOT) -> dict[str, dict[str, str]]:
    matrix = {}
    for folder in sorted((root / "modules").iterdir()):
        if not (folder / "tests").is_dir():
            continue
        packages = [p.name for p in sorted(folder.iterdir()) if (p / "__init__.py").is_file() and p.name != "tests"]
        matrix[folder.name.replace("-", "_")] = {"moduleFolder": folder.name, "package": ",".join(packages)}
    return matrix


def image_matrix(root: Path = ROOT) -> dict[str, dict[str, str]]:
    matrix = {}
    for path in sorted((root / "modules").glob("*/module.json")):
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        tag = doc["image"]["tag"]
        for platform, dockerfile in tag["platforms"].items():
            matrix[f"{path.parent.name}_{platform}".replace("-", "_")] = {
                "moduleFolder": path.parent.name,
                "platform": platform,
                "dockerfile": f"modules/{path.parent.name}/{dockerfile.removeprefix('./')}",
                "version": str(tag["version"]),
            }
    return matrix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["tests", "images"])
    parser.add_argument("--json", action="store_true", help="print the matrix, not the logging command")
    args = parser.parse_args(argv)
    matrix = test_matrix() if args.kind == "tests" else image_matrix()
    text = json.dumps(matrix, separators=(",", ":"))
    print(text if args.json else f"##vso[task.setvariable variable={args.kind};isOutput=true]{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
