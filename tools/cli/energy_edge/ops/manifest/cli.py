"""The `energy-edge manifest` command: build and check."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from energy_edge.ops.manifest.build import build_manifest, output_name, template_env, write_manifest
from energy_edge.ops.manifest.checks import check_repository, templates
from energy_edge.ops.manifest.schema import schema_problems
from energy_edge.ops.manifest.structure import DEFAULT_PLATFORM, PLATFORMS, ManifestBuildError, is_layered

# ====================================================================== CLI


def _build_command(args: argparse.Namespace) -> int:
    root = Path(args.repo)
    overrides = {"CONTAINER_REGISTRY_ADDRESS": args.registry} if args.registry else {}
    written = []
    for template in args.template or [root / "deployment" / "deployment.template.json"]:
        template = Path(template)
        try:
            env = template_env(template, overrides, env_files=tuple(args.env_file or ()))
            manifest = build_manifest(template, args.platform, modules_dir=root / "modules", env=env,
                                      version=args.version, allow_missing=args.allow_missing)
        except (ManifestBuildError, OSError) as exc:
            print(f"energy-edge manifest build: {exc}", file=sys.stderr)
            return 2
        problems = [] if is_layered(manifest) else schema_problems(manifest, str(template))
        if problems:
            print("\n".join(str(p) for p in problems), file=sys.stderr)
            return 1
        written.append(write_manifest(manifest, Path(args.out_dir) / output_name(template, args.platform)))
    for path in written:
        print(path)
    return 0


def _check_command(args: argparse.Namespace) -> int:
    problems = check_repository(Path(args.repo))
    for problem in problems:
        print(problem)
    bases, layers = templates(Path(args.repo))
    print(f"{len(bases)} deployment template(s), {len(layers)} layered: {len(problems)} problem(s)",
          file=sys.stderr)
    return 1 if problems else 0


def add_manifest_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `manifest build|check` to an argparse subparsers object; `func(args)` returns the exit code."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "manifest", help="build deployment manifests for a platform, or check them against the modules",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="repository root (modules/ and deployment/ under it)")
    commands = parser.add_subparsers(dest="manifest_command", required=True)

    build = commands.add_parser("build", help="expand a template into config/<name>.<platform>.json")
    build.add_argument("--platform", choices=PLATFORMS, default=DEFAULT_PLATFORM)
    build.add_argument("--registry", help="container registry (sets CONTAINER_REGISTRY_ADDRESS), e.g. x.azurecr.io")
    build.add_argument("--version", help="image version instead of module.json's (CONTAINER_TAG still appends)")
    build.add_argument("--template", action="append", type=Path,
                       help="template to build (repeatable; default deployment/deployment.template.json)")
    build.add_argument("--env-file", action="append", type=Path,
                       help="KEY=value file whose values win over the environment (repeatable), e.g. a site's")
    build.add_argument("--out-dir", default="config", help="where the manifests go (default config/)")
    build.add_argument("--allow-missing", action="store_true", help="leave unset ${NAME} variables as they are")
    build.set_defaults(func=_build_command)

    check = commands.add_parser("check", help="schemas, desired properties, routes and module folders")
    check.set_defaults(func=_check_command)
    return parser
