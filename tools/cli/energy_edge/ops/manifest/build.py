"""`energy-edge manifest build`: placeholders expanded, images named, createOptions cut, as iotedgedev does."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from energy_edge.hub.manifest import expand_variables, read_env_file
from energy_edge.ops.manifest.images import ModuleImage, module_images, read_module_json
from energy_edge.ops.manifest.structure import (
    _MODULEDIR_PLACEHOLDER,
    _MODULES_PLACEHOLDER,
    CREATE_OPTIONS_CHUNK,
    CREATE_OPTIONS_MAX_CHUNKS,
    PLATFORMS,
    TEMPLATE_SUFFIX,
    ManifestBuildError,
    agent_modules,
)

# ====================================================================== build


def template_env(template: Path, overrides: Mapping[str, str] | None = None,
                 environ: Mapping[str, str] | None = None, env_files: tuple[Path, ...] = ()) -> dict[str, str]:
    """Variables for a template, later ones winning: `.env` beside it, the environment, the `--env-file`s
    (e.g. a site's deployment/sites/<site>.env), then explicit overrides such as `--registry`."""
    env = read_env_file(template.parent / ".env")
    env.update(os.environ if environ is None else environ)
    for path in env_files:
        if not path.is_file():
            raise ManifestBuildError(f"env file {path} not found")
        env.update(read_env_file(path))
    env.update(overrides or {})
    return env


def output_name(template: Path, platform: str) -> str:
    name = template.name
    prefix = name[: -len(TEMPLATE_SUFFIX)] if name.endswith(TEMPLATE_SUFFIX) else name.removesuffix(".json")
    return f"{prefix or 'deployment'}.{platform}.json"


def image_for(image: str, images: Mapping[str, ModuleImage], platform: str, template_dir: Path,
              env: Mapping[str, str], version: str | None, container_tag: str) -> str | None:
    """The tag an image placeholder stands for; None when `image` is no placeholder."""
    match = _MODULES_PLACEHOLDER.match(image)
    if match:
        folder, chosen = match.group(1), match.group(2) or platform
        if folder not in images:
            raise ManifestBuildError(f"{image}: no modules/{folder}/module.json")
        module = images[folder]
    else:
        match = _MODULEDIR_PLACEHOLDER.match(image)
        if not match:
            return None
        directory = (template_dir / match.group(1)).resolve()
        if not (directory / "module.json").is_file():
            raise ManifestBuildError(f"{image}: no {directory}/module.json")
        module, chosen = read_module_json(directory, env), match.group(2) or platform
    if chosen == "debug":
        chosen = f"{platform}.debug"
    return module.tag(chosen, version, container_tag)


def stringify_create_options(manifest: dict[str, Any]) -> None:
    """createOptions objects -> minified JSON strings in 512-character twin values."""
    for _kind, name, spec in agent_modules(manifest):
        settings = spec.get("settings")
        if not isinstance(settings, dict) or "createOptions" not in settings:
            continue
        options = settings["createOptions"]
        text = options if isinstance(options, str) else json.dumps(options, separators=(",", ":"))
        chunks = [text[i:i + CREATE_OPTIONS_CHUNK] for i in range(0, len(text), CREATE_OPTIONS_CHUNK)] or [""]
        if len(chunks) > CREATE_OPTIONS_MAX_CHUNKS:
            raise ManifestBuildError(f"module {name}: createOptions is {len(text)} characters; IoT Hub takes 4 KiB")
        for key in [k for k in settings if re.fullmatch(r"createOptions\d+", k)]:
            del settings[key]
        for index, chunk in enumerate(chunks):
            settings["createOptions" if index == 0 else f"createOptions{index:02d}"] = chunk


def build_manifest(template: Path, platform: str, *, modules_dir: Path, env: Mapping[str, str],
                   version: str | None = None, allow_missing: bool = False) -> dict[str, Any]:
    """The deployment manifest for `platform`, as iotedgedev / AzureIoTEdge@2 generate it."""
    if platform not in PLATFORMS:
        raise ManifestBuildError(f"unknown platform {platform!r} (one of {', '.join(PLATFORMS)})")
    text, missing = expand_variables(template.read_text(encoding="utf-8"), dict(env))
    if missing and not allow_missing:
        raise ManifestBuildError(
            f"{template}: variables not set: {', '.join(missing)} "
            f"(set them in the environment or in {template.parent / '.env'}; see .env.example)")
    try:
        manifest: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestBuildError(f"{template}: invalid JSON at line {exc.lineno}, column {exc.colno}") from exc
    images = module_images(modules_dir, env)
    container_tag = env.get("CONTAINER_TAG", "")
    for _kind, name, spec in agent_modules(manifest):
        settings = spec.get("settings") or {}
        image = settings.get("image")
        if not isinstance(image, str):
            continue
        tag = image_for(image, images, platform, template.parent, env, version, container_tag)
        if tag is not None:
            settings["image"] = tag
        elif "${" in image:
            raise ManifestBuildError(f"module {name}: image {image} is not a placeholder this build knows")
    stringify_create_options(manifest)
    manifest.pop("$schema-template", None)
    return manifest


def write_manifest(manifest: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path
