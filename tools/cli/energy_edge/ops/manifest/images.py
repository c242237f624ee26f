"""Each module folder's `module.json`: the image repository, version and Dockerfile per platform."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from energy_edge.hub.manifest import expand_variables
from energy_edge.ops.manifest.structure import _ANY_VARIABLE, ManifestBuildError

# ====================================================================== module.json


@dataclass(frozen=True)
class ModuleImage:
    """A module folder's ``module.json``, expanded."""

    folder: str
    path: Path
    repository: str
    version: str
    platforms: Mapping[str, str]  # platform -> Dockerfile, relative to the module folder
    context_path: str
    build_options: tuple[str, ...] = ()

    def tag(self, platform: str, version: str | None = None, container_tag: str = "") -> str:
        if platform not in self.platforms:
            raise ManifestBuildError(
                f"module {self.folder} has no {platform} build (module.json platforms: {', '.join(self.platforms)})")
        if "${" in self.repository:
            unresolved = ", ".join(sorted(set(_ANY_VARIABLE.findall(self.repository))))
            raise ManifestBuildError(f"modules/{self.folder}/module.json: repository {self.repository} still has "
                                     f"{unresolved} (give --registry or set it in the environment or deployment/.env)")
        suffix = f"-{container_tag}" if container_tag else ""
        return f"{self.repository.lower()}:{version or self.version}{suffix}-{platform}"


def read_module_json(folder: Path, env: Mapping[str, str]) -> ModuleImage:
    path = folder / "module.json"
    text, _missing = expand_variables(path.read_text(encoding="utf-8"), dict(env))
    doc = json.loads(text)
    image = doc["image"]
    tag = image["tag"]
    return ModuleImage(
        folder=folder.name,
        path=path,
        repository=str(image["repository"]),
        version=str(tag["version"]),
        platforms={str(k): str(v) for k, v in tag["platforms"].items()},
        context_path=str(image.get("contextPath", "./")),
        build_options=tuple(str(o) for o in image.get("buildOptions", [])),
    )


def module_images(modules_dir: Path, env: Mapping[str, str]) -> dict[str, ModuleImage]:
    """Every folder under `modules_dir` that has a module.json, by folder name."""
    return {folder.name: read_module_json(folder, env)
            for folder in sorted(modules_dir.iterdir()) if (folder / "module.json").is_file()}
