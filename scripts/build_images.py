#!/usr/bin/env python3
"""Build every module image and the simulator (tools) image from the generated Dockerfiles: `make images`.

    python scripts/build_images.py                    # amd64, tags as module.json says
    python scripts/build_images.py --platform arm64v8 # needs qemu-user-static + binfmt on the host
    python scripts/build_images.py --json out.json    # also write what was built (tags, sizes, seconds, cache hits)

How it builds on a machine that reaches only PyPI and Debian's packages:
- Base: the Dockerfiles' default `python:<version>-slim-bookworm`. When that is neither present nor pullable
  (no Docker Hub), a stand-in is made once from Debian packages (`debootstrap --variant=minbase` with python3,
  python3-venv and ca-certificates, then imported) and passed as BASE_IMAGE; the build says so.
- Dependencies: `pip wheel` on the host fills build/wheels-<platform> (the host trusts its proxy's CA; images never see
  it), and every image installs from those wheels with PIP_NO_INDEX=1 in a build stage whose layers are not
  part of the image. Builds run with network "none": nothing is fetched during a build.
- Tags: `${CONTAINER_REGISTRY_ADDRESS}/<folder>:<version>[-${CONTAINER_TAG}]-<platform>`, as iotedgedev tags them
  (registry default "localhost"), all labelled `io.energy-edge.image=module`.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform as host_platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
STAND_IN_REPOSITORY = "energy-edge/python-base"
LABEL = "io.energy-edge.image"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Docker's platform names for the IoT Edge template's platform keys
DOCKER_PLATFORMS = {"amd64": "linux/amd64", "arm64v8": "linux/arm64", "arm32v7": "linux/arm/v7"}
DEBIAN_ARCH = {"amd64": "amd64", "arm64v8": "arm64", "arm32v7": "armhf"}


class BuildError(RuntimeError):
    """An image did not build; the message names the image and the failing step."""


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "generate_module_images.py"
    spec = importlib.util.spec_from_file_location("generate_module_images", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


GEN = _generator()


@dataclass
class Built:
    folder: str
    tag: str
    image_id: str
    size_mb: float
    build_s: float
    steps: int  # steps that can come from the layer cache (FROM and the global ARG cannot)
    cached_steps: int


def registry() -> str:
    return os.environ.get("CONTAINER_REGISTRY_ADDRESS") or "localhost"


def image_tag(folder: str, version: str, platform: str) -> str:
    """iotedgedev's tag: <registry>/<folder>:<version>[-<CONTAINER_TAG>]-<platform>."""
    extra = os.environ.get("CONTAINER_TAG", "")
    return f"{registry()}/{folder}:{version}{'-' + extra if extra else ''}-{platform}"


def docker_client() -> Any:
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:
        raise SystemExit(f"no Docker Engine answers ({exc}); as root: bash scripts/start-dockerd.sh") from exc
    return client


# ------------------------------------------------------------------ base image


def base_image(client: Any, platform: str, log: Any = print) -> str:
    """The official base when it is here or can be pulled, else the Debian stand-in (built once)."""
    import docker

    official = GEN.BASE_IMAGES[platform]
    try:
        client.images.get(official)
        return str(official)
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(official, platform=DOCKER_PLATFORMS[platform])
        return str(official)
    except docker.errors.APIError as exc:
        reason = str(exc.explanation or exc).splitlines()[0]
    stand_in = f"{STAND_IN_REPOSITORY}:{GEN.DEBIAN}-{platform}"
    log(f"base image {official} cannot be pulled ({reason});\n  using the stand-in {stand_in} built from "
        f"Debian {GEN.DEBIAN} packages (python3 {GEN.DEBIAN}'s, not {GEN.PYTHON_VERSION})")
    try:
        client.images.get(stand_in)
        return stand_in
    except docker.errors.ImageNotFound:
        pass
    build_stand_in(client, stand_in, platform, log)
    return stand_in


def build_stand_in(client: Any, tag: str, platform: str, log: Any = print) -> None:
    """debootstrap a minimal Debian with python3, python3-venv and ca-certificates, and import it as `tag`."""
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        raise SystemExit("debootstrap is missing (bash scripts/install-system-deps.sh)")
    if os.geteuid() != 0:
        raise SystemExit(f"building the stand-in base {tag} needs root (debootstrap)")
    arch = DEBIAN_ARCH[platform]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="energy-edge-base-") as work:
        rootfs = Path(work) / "rootfs"
        command = [debootstrap, "--variant=minbase", f"--arch={arch}",
                   "--include=python3,python3-venv,ca-certificates", GEN.DEBIAN, str(rootfs), DEBIAN_MIRROR]
        # another architecture runs its second stage through qemu-user-static (binfmt), as its builds do
        log(f"debootstrap {GEN.DEBIAN} ({arch}) for {tag}")
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"debootstrap failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        # what an image does not need: apt's downloads and lists, docs, man pages, logs
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                     "usr/share/info", "var/log", "var/cache/debconf"):
            path = rootfs / junk
            if path.is_dir():
                for child in path.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    elif child.name != "lock":
                        child.unlink()
        archive = Path(work) / "rootfs.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
        repository, _, version = tag.partition(":")
        changes = ["ENV LANG=C.UTF-8", 'CMD ["python3"]', f"LABEL {LABEL}=base",
                   f"LABEL io.energy-edge.base=debootstrap-{GEN.DEBIAN}-minbase"]
        # the Engine API's import, with the platform the rootfs is for (docker-py's helper cannot say it)
        with archive.open("rb") as data:
            response = client.api._post(
                client.api._url("/images/create"), data=data, headers={"Content-Type": "application/tar"},
                params={"fromSrc": "-", "repo": repository, "tag": version, "changes": changes,
                        "platform": DOCKER_PLATFORMS[platform]}, timeout=600)
        client.api._raise_for_status(response)
    log(f"stand-in base {tag} ready in {time.monotonic() - started:.0f} s")


def _host_debian_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf"}.get(host_platform.machine(), "?")


# ------------------------------------------------------------------ wheels


def requirement_files() -> list[Path]:
    return sorted(p for p in (ROOT / "modules").glob("*/requirements.txt"))


def wheel_dir(platform: str) -> Path:
    """Where the Dockerfile.<platform> finds its wheels (`COPY … build/wheels-<platform>…`)."""
    return BUILD / f"wheels-{platform}"


def prepare_wheels(platform: str, log: Any = print) -> None:
    """Wheels of every image's pinned requirements (and setuptools to build ./shared) in build/wheels-<platform>.

    Rebuilt only when a requirements file changed: the wheels' bytes then stay the same from build to build,
    so the COPY of the wheels, and every layer after it, come from the layer cache. Another platform's wheels:
    the pure-Python ones are the host's, the others are downloaded for the target (manylinux, CPython 3.11)."""
    lines: list[str] = []
    for path in requirement_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("."):  # ./shared is built in the image from the copied sources
                lines.append(line)
    wanted = [*sorted(set(lines)), _build_requirement()]
    digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:16]
    target = wheel_dir(platform)
    stamp = target / ".requirements"
    if stamp.is_file() and stamp.read_text() == digest:
        return
    if platform != "amd64":
        prepare_wheels("amd64", log)
    target.mkdir(parents=True, exist_ok=True)
    if platform == "amd64":
        log(f"pip wheel: {len(wanted)} requirements into {target.relative_to(ROOT)}")
        _pip(["wheel", "--wheel-dir", str(target), *wanted])
    else:
        machine = {"arm64v8": "aarch64", "arm32v7": "armv7l"}[platform]
        native = []
        for wheel in sorted(wheel_dir("amd64").glob("*.whl")):
            if wheel.name.endswith("-none-any.whl"):
                shutil.copy2(wheel, target / wheel.name)
            else:
                name, version = wheel.name.split("-")[:2]
                native.append(f"{name}=={version}")
        log(f"pip download ({machine}): {len(native)} binary wheels into {target.relative_to(ROOT)}")
        _pip(["download", "--dest", str(target), "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
              "--implementation", "cp", "--abi", "cp311", "--platform", f"manylinux2014_{machine}",
              "--platform", f"manylinux_2_17_{machine}", "--platform", f"manylinux_2_28_{machine}", *native])
    stamp.write_text(digest)


def _pip(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "--quiet", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"pip {args[0]} failed:\n{result.stderr[-3000:]}")


def _build_requirement() -> str:
    import tomllib

    requires = tomllib.loads((ROOT / "shared" / "pyproject.toml").read_text())["build-system"]["requires"]
    return str(requires[0])


# ------------------------------------------------------------------ images


def build_image(client: Any, module: Any, platform: str, base: str, log: Any = print, nocache: bool = False) -> Built:
    """One image through the Engine API; every step's output goes to `log` only when it fails."""
    import docker

    tag = image_tag(module.folder, module.version, platform)
    dockerfile = f"modules/{module.folder}/Dockerfile.{platform}"
    started = time.monotonic()
    steps = cached = 0  # steps that make a layer or config (not FROM, not the ARG before the first FROM)
    seen_from = False
    output: list[str] = []
    image_id = ""
    try:
        stream = client.api.build(
            path=str(ROOT), dockerfile=dockerfile, tag=tag, rm=True, forcerm=True, decode=True, nocache=nocache,
            network_mode="none", buildargs={"BASE_IMAGE": base, "PIP_NO_INDEX": "1"},
            labels={LABEL: "module", "io.energy-edge.module-folder": module.folder,
                    "org.opencontainers.image.version": module.version},
            # no `platform`: the classic builder of Docker 20.10 then tags its intermediate images with the
            # host's platform and refuses them for the next step; the base image's platform decides instead
            platform=None)
        for chunk in stream:
            if "error" in chunk:
                raise BuildError(f"{module.folder} ({dockerfile}): {chunk['error'].strip()}\n"
                                 + "".join(output[-40:]))
            text = chunk.get("stream", "")
            if text.startswith("Step "):
                instruction = text.split(":", 1)[1].split()[0].upper()
                seen_from = seen_from or instruction == "FROM"
                steps += instruction != "FROM" and seen_from
            if "Using cache" in text:
                cached += 1
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            output.append(text)
    except docker.errors.APIError as exc:
        raise BuildError(f"{module.folder} ({dockerfile}): {exc.explanation or exc}") from exc
    build_s = time.monotonic() - started
    image = client.images.get(tag)
    built = Built(module.folder, tag, image_id or image.id, image.attrs["Size"] / 1e6, build_s, steps, cached)
    log(f"{tag}: {built.size_mb:.0f} MB, {build_s:.1f} s ({cached} of {steps} steps from the layer cache)")
    return built


def build_all(platform: str = "amd64", only: list[str] | None = None, log: Any = print, nocache: bool = False
              ) -> list[Built]:
    client = docker_client()
    base = base_image(client, platform, log)
    prepare_wheels(platform, log)
    built = []
    for module in GEN.discover():
        if platform not in module.platforms or (only and module.folder not in only):
            continue
        built.append(build_image(client, module, platform, base, log, nocache))
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--platform", default="amd64", choices=sorted(DOCKER_PLATFORMS))
    parser.add_argument("--only", nargs="*", help="module folders to build (default: all)")
    parser.add_argument("--no-cache", action="store_true", help="run every step again (a cold build, base kept)")
    parser.add_argument("--json", type=Path, help="write what was built (tags, sizes, seconds, cache hits)")
    args = parser.parse_args(argv)
    if GEN.stale_files():
        print("generated image files are stale: python scripts/generate_module_images.py", file=sys.stderr)
        return 1
    started = time.monotonic()
    try:
        built = build_all(args.platform, args.only, nocache=args.no_cache)
    except BuildError as exc:
        print(f"image build failed: {exc}", file=sys.stderr)
        return 1
    print(f"{len(built)} images in {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps([asdict(b) for b in built], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
