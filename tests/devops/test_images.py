"""Module images: module.json and the Dockerfiles are generated, current, and follow the image rules; they stage
exactly what the fresh-venv test (tests/modules/test_fresh_install.py) stages."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import re
import shlex
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import tomllib
from packaging.requirements import Requirement

from tests.support import REPO

MODULES = REPO / "modules"


def _generator() -> ModuleType:
    path = REPO / "scripts" / "generate_module_images.py"
    spec = importlib.util.spec_from_file_location("generate_module_images", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


GEN = _generator()
FOLDERS = GEN.discover()
DOCKERFILES = sorted(p for folder in FOLDERS for p in folder.path.glob("Dockerfile.*"))


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions(path: Path) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    found = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            found.append(Instruction(keyword.upper(), " ".join(args.split())))
    return found


def test_generated_files_are_current() -> None:
    stale = [str(p.relative_to(REPO)) for p in GEN.stale_files()]
    assert stale == [], "run: python scripts/generate_module_images.py"


def test_every_module_folder_gets_images() -> None:
    with_code = {p.name for p in MODULES.iterdir() if (p / "main.py").is_file()}
    assert with_code | {"site-simulator"} == {f.folder for f in FOLDERS}
    assert len(DOCKERFILES) == sum(len(f.platforms) for f in FOLDERS) >= 17


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.folder)
def test_module_json(folder: Any) -> None:
    doc = json.loads((folder.path / "module.json").read_text())
    image = doc["image"]
    assert image["repository"] == f"${{CONTAINER_REGISTRY_ADDRESS}}/{folder.folder}"
    assert image["contextPath"] == "../../"  # the repository root: shared/ is in the context
    platforms = image["tag"]["platforms"]
    expected = ("amd64", "arm64v8") if folder.package is None else ("amd64", "arm64v8", "arm32v7")
    assert tuple(platforms) == expected
    for platform, dockerfile in platforms.items():
        assert dockerfile == f"./Dockerfile.{platform}"
        assert (folder.path / dockerfile).is_file()
    assert re.fullmatch(r"\d+\.\d+\.\d+", image["tag"]["version"])


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_dockerfile_rules(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    keywords = [s.keyword for s in steps]
    platform = dockerfile.suffix.lstrip(".")
    # no `# syntax=` line: BuildKit would pull a frontend image from Docker Hub
    assert not dockerfile.read_text().startswith("# syntax")
    # slim, pinned to a patch release, the platform's own base image, replaceable as BASE_IMAGE (a stand-in
    # where it cannot be pulled); both stages stand on it
    assert steps[0].keyword == "ARG" and steps[0].args.startswith("BASE_IMAGE=")
    base = steps[0].args.removeprefix("BASE_IMAGE=")
    assert re.fullmatch(r"((arm64v8|arm32v7)/)?python:\d+\.\d+\.\d+-slim-[a-z]+", base), base
    assert base.startswith(f"{platform}/") if platform != "amd64" else "/" not in base
    assert [s.args for s in steps if s.keyword == "FROM"] == ["${BASE_IMAGE} AS deps", "${BASE_IMAGE}"]
    # unbuffered Python, no bytecode, no pip cache
    env = " ".join(s.args for s in steps if s.keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in env and "PIP_NO_CACHE_DIR=1" in env
    assert ("WORKDIR", "/app") in [(s.keyword, s.args) for s in steps]
    # requirements before code: the dependency install comes before any code is copied
    copies = [i for i, s in enumerate(steps) if s.keyword == "COPY"]
    install = next(i for i, s in enumerate(steps) if s.keyword == "RUN" and "-r requirements.txt" in s.args)
    requirement_copy = next(i for i in copies if "requirements.txt" in steps[i].args)
    code_copies = [i for i in copies if re.search(r"main\.py|_module/|tools/", steps[i].args)]
    assert requirement_copy < install < min(code_copies)
    # a non-root user for everything that runs
    users = [i for i, s in enumerate(steps) if s.keyword == "USER"]
    assert users and steps[users[-1]].args not in ("root", "0", "0:0")
    assert max(i for i, k in enumerate(keywords) if k == "RUN") < users[-1] < keywords.index("ENTRYPOINT")
    # the module's state has a declared volume, SIGTERM is the stop signal (safe state, exit 0)
    assert ("VOLUME", '["/app/data"]') in [(s.keyword, s.args) for s in steps]
    assert ("STOPSIGNAL", "SIGTERM") in [(s.keyword, s.args) for s in steps]
    # the telemetry module's /healthz is the image's HEALTHCHECK
    assert ("HEALTHCHECK" in keywords) == (dockerfile.parent.name == "telemetry-module")
    # no secrets: no build arguments or variables that look like credentials, no env files copied in
    for step in steps:
        if step.keyword in ("ARG", "ENV"):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|KEY|CONNECTION_?STRING)", step.args, re.I), step
        if step.keyword == "COPY":
            assert ".env" not in step.args and "id_rsa" not in step.args
    assert "ADD" not in keywords  # COPY only: nothing fetched at build time


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_copied_path_exists_in_the_build_context(dockerfile: Path) -> None:
    """The context is the repository root (module.json contextPath "../../")."""
    for step in instructions(dockerfile):
        if step.keyword == "COPY" and not step.args.startswith("--from="):
            *sources, _destination = shlex.split(step.args)
            for source in sources:
                if "[" in source:  # build/wheels-amd6[4]: scripts/build_images.py fills it; a plain clone has none
                    continue
                assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source}"


MODULE_FOLDERS = [f for f in FOLDERS if f.package is not None]


@pytest.mark.parametrize("folder", MODULE_FOLDERS, ids=lambda f: f.folder)
def test_image_stages_what_the_fresh_install_test_stages(folder: Any) -> None:
    """/app holds shared/, requirements.txt, main.py and the package: the layout test_fresh_install.py runs."""
    steps = instructions(folder.path / "Dockerfile.amd64")
    staged = {}
    for step in steps:
        if step.keyword == "COPY" and not step.args.startswith("--from=") and "/wheels/" not in step.args:
            source, destination = shlex.split(step.args)
            staged[destination.strip("./").rstrip("/") or source] = source.rstrip("/")
    name = folder.folder
    package = folder.package
    assert staged == {"shared": "shared", "requirements.txt": f"modules/{name}/requirements.txt",
                      "main.py": f"modules/{name}/main.py", package: f"modules/{name}/{package}"}
    requirements = [line.strip() for line in (MODULES / name / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    assert requirements[0] == "./shared"  # installed from the staged copy, so the module installs alone
    assert all("==" in line for line in requirements[1:]), "module images pin their dependencies"


def test_dockerignore_keeps_the_context_small_and_clean() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    for pattern in (".git", ".venv", "**/tests", "**/__pycache__", "**/*.egg-info", "**/.env"):
        assert pattern in ignored


def test_simulator_image_has_what_the_simulator_imports() -> None:
    """The simulator image (also the tools image: it runs the emulator) installs the simulator's and the emulator's
    distributions with --no-deps after its own pins: those must cover every module-level third-party import of
    energy_edge.sim and energy_edge.hub (the profile sources import demandlib and pvlib lazily, as an extra) and
    agree with those two distributions' requirements."""
    pins = {}
    for line in (MODULES / "site-simulator" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            pins[requirement.name.lower()] = requirement
    declared = {Requirement(r).name.lower(): Requirement(r) for tool in ("simulator", "emulator")
                for r in tomllib.loads((REPO / "tools" / tool / "pyproject.toml").read_text())["project"]
                ["dependencies"]}
    distributions = packages_distributions()
    imported: set[str] = set()
    for path in [*(REPO / "tools/simulator/energy_edge/sim").glob("*.py"),
                 *(REPO / "tools/emulator/energy_edge/hub").rglob("*.py")]:
        for node in ast.parse(path.read_text()).body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            for top in {n.split(".")[0] for n in names}:
                if top not in sys.stdlib_module_names and top not in ("energy_edge", "energy_edge_base"):
                    imported.update(d.lower() for d in distributions.get(top, [top]))
    assert imported and imported <= set(pins), f"not pinned for the simulator image: {imported - set(pins)}"
    for name, pin in pins.items():
        (version,) = [s.version for s in pin.specifier]
        assert name in declared, f"{name} is pinned for the simulator image but not a dependency of its tools"
        assert declared[name].specifier.contains(version), f"{name}=={version} breaks pyproject's {declared[name]}"


# ---------------------------------------------------------------- the images, built (Docker Engine)

PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\s+[A-Za-z0-9+/=\s]{64,}-----END")
SAS_KEY = re.compile(rb"SharedAccessKey=[A-Za-z0-9+/]{20,}")  # a key's value, not the word in code
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")  # where this machine's proxy CA lives (trusted by the host)


def _docker() -> Any:
    import docker

    return docker.from_env(timeout=300)


@pytest.mark.integration
def test_every_image_builds_and_a_second_build_comes_from_the_layer_cache(module_images: list[dict[str, Any]]
                                                                         ) -> None:
    assert {b["folder"] for b in module_images} == {f.folder for f in FOLDERS}
    for built in module_images:
        assert built["tag"].endswith(f":{GEN.discover()[0].version}-amd64") or built["tag"].endswith("-amd64")
    result = subprocess.run([sys.executable, "scripts/build_images.py", "--json", "/dev/stdout"], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    again = json.loads(result.stdout[result.stdout.index("["):])
    for built in again:
        assert built["steps"] > 10
        assert built["cached_steps"] == built["steps"], f"{built['folder']} rebuilt a step: {built}"
    assert {b["tag"]: b["image_id"] for b in again} == {b["tag"]: b["image_id"] for b in module_images}


@pytest.mark.integration
def test_every_image_runs_as_its_non_root_user(module_images: list[dict[str, Any]]) -> None:
    client = _docker()
    for built in module_images:
        image = client.images.get(built["tag"])
        assert image.attrs["Config"]["User"] == "app", built["tag"]
        container = client.containers.create(built["tag"], entrypoint=["id", "-u"], network_mode="none")
        try:
            container.start()
            assert container.wait(timeout=60)["StatusCode"] == 0
            assert container.logs().decode().strip() == str(GEN.UID), built["tag"]
        finally:
            container.remove(v=True, force=True)  # with the anonymous volume of the image's VOLUME /app/data


def _layer_files(client: Any, tags: list[str]) -> Iterator[tuple[str, str, bytes]]:
    """(layer, path, content) of every regular file in every layer of the images, each layer once: what is
    deleted in a later layer is still in an earlier one, so the image's final filesystem is not enough."""
    seen: set[str] = set()
    for tag in tags:
        archive = io.BytesIO(b"".join(client.images.get(tag).save(named=False)))
        with tarfile.open(fileobj=archive) as image_tar:
            manifest = json.load(image_tar.extractfile("manifest.json"))  # type: ignore[arg-type]
            for layer in manifest[0]["Layers"]:
                if layer in seen:
                    continue
                seen.add(layer)
                with tarfile.open(fileobj=image_tar.extractfile(layer)) as layer_tar:  # type: ignore[arg-type]
                    for member in layer_tar:
                        if member.isfile():
                            yield layer, member.name, layer_tar.extractfile(member).read()  # type: ignore[union-attr]


@pytest.mark.integration
def test_no_secret_key_or_host_ca_in_any_layer(module_images: list[dict[str, Any]]) -> None:
    client = _docker()
    tags = [b["tag"] for b in module_images]
    # the build history: no credential, no trust store of the host, no pip configuration pointing at one
    for tag in tags:
        for step in client.images.get(tag).history():
            created_by = step.get("CreatedBy", "")
            assert not re.search(r"PIP_CERT|REQUESTS_CA_BUNDLE|SSL_CERT|SharedAccessKey|PASSWORD|TOKEN", created_by,
                                 re.I), (tag, created_by)
    # the host's own CAs (its TLS-inspecting proxy's among them): the body of each certificate
    host_cas = [b"".join(pem.read_bytes().split(b"-----")[2].split()) for pem in sorted(HOST_CA_DIR.glob("*.crt"))]
    flattened = [ca[32:96] for ca in host_cas]  # a slice of the base64 body, without line breaks
    host_bundle = b"".join(Path("/etc/ssl/certs/ca-certificates.crt").read_bytes().split())
    assert all(ca in host_bundle for ca in flattened)  # the probe finds them where the host trusts them
    files = 0
    for layer, path, content in _layer_files(client, tags):
        files += 1
        name = path.rsplit("/", 1)[-1]
        assert name not in ("hub.json", ".env", "id_rsa", "pip.conf", "edgeHub.pem"), f"{path} in {layer}"
        assert not path.startswith(("usr/local/share/ca-certificates/", "root/", "etc/pip")) or not content, path
        assert not SAS_KEY.search(content), f"a shared access key in {path} ({layer})"
        if content.count(b"-----BEGIN"):
            joined = b"".join(content.split())
            for ca in flattened:
                assert ca not in joined, f"a host CA is in {path} ({layer})"
        # compiled libraries carry their self-test vectors (GnuTLS's FIPS tests); a key file is never ELF
        if not content.startswith(b"\x7fELF"):
            assert not PEM_PRIVATE_KEY.search(content), f"a private key in {path} ({layer})"
    assert files > 1000  # the layers were read
