"""Deployment manifests: the repository's templates pass every check, each check catches what it is for,
and `manifest build` expands them as iotedgedev / AzureIoTEdge@2 do."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from energy_edge.hub.manifest import load_manifest, read_env_file
from energy_edge.ops import manifest as m
from tests.support import MODULE_FOLDERS, REPO

DEPLOYMENT = REPO / "deployment"
BASE = DEPLOYMENT / "deployment.template.json"
PRODUCTION = DEPLOYMENT / "deployment.production.template.json"
SITE_LAYER = DEPLOYMENT / "layered" / "site.template.json"
DIAGNOSTICS_LAYER = DEPLOYMENT / "layered" / "diagnostics.template.json"
EXAMPLE_ENV = read_env_file(DEPLOYMENT / ".env.example")
BUILD_ENV = {**EXAMPLE_ENV, "CONTAINER_REGISTRY_ADDRESS": "MyRegistry.azurecr.io"}


@pytest.fixture(scope="module")
def repo() -> m.Repository:
    return m.load_repository(REPO)


def base_manifest() -> dict[str, Any]:
    manifest, problems = m.load_template(BASE, EXAMPLE_ENV)
    assert problems == []
    return manifest


def agent(manifest: dict[str, Any]) -> dict[str, Any]:
    desired: dict[str, Any] = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]
    return desired


def routes(manifest: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = manifest["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]
    return found


def desired(manifest: dict[str, Any], module: str) -> dict[str, Any]:
    found: dict[str, Any] = manifest["modulesContent"][module]["properties.desired"]
    return found


# ---------------------------------------------------------------- the repository's own manifests


def test_every_template_and_layer_passes_every_check(repo: m.Repository) -> None:
    bases, layers = m.templates(REPO)
    assert {p.name for p in bases} >= {"deployment.template.json", "deployment.production.template.json"}
    assert {p.name for p in layers} >= {"site.template.json", "diagnostics.template.json"}
    assert [str(p) for p in m.check_repository(REPO, repo)] == []


def test_module_interfaces_are_read_from_the_code(repo: m.Repository) -> None:
    assets = ("solar-module", "battery-module", "boiler-module", "microgrid-controller-module")
    for folder in assets:
        interface = repo.interface(folder)
        assert interface.outputs == {"telemetry", "events"} and interface.inputs == frozenset(), folder
    controller = repo.interface("controller-module")
    assert controller.outputs == {"capability", "summary", "events"}
    assert controller.inputs == {"telemetry"}
    assert repo.interface("site-simulator").entry is None  # a plain container, no IoT Hub client


def test_every_module_folder_is_deployed_and_every_module_has_a_model_or_nothing(repo: m.Repository) -> None:
    manifest = base_manifest()
    folders = {repo.folder_of(spec) for spec in agent(manifest)["modules"].values()}
    built_here = {p.name for p in (REPO / "modules").iterdir() if (p / "module.json").is_file()}
    assert built_here <= folders, f"module folders no deployment runs: {built_here - folders}"
    assert set(MODULE_FOLDERS.values()) <= folders
    for name in agent(manifest)["modules"]:
        assert f"config.{name}" in repo.models or not desired(manifest, name), name


def test_upstream_carries_aggregates_and_events_within_the_budget() -> None:
    """The message budget: raw telemetry stays on the edge; IoT Hub gets the controller's capability reports and
    summaries and every module's events, at most 2 000 messages a site a day all told."""
    modules_with_events = {"controller", "microgrid-controller", "battery", "solar", "boiler", "telemetry"}
    for template in (BASE, PRODUCTION):
        manifest, _ = m.load_template(template, EXAMPLE_ENV)
        upstream = {name: spec for name, spec in routes(manifest).items()
                    if "$upstream" in (spec if isinstance(spec, str) else spec["route"])}
        sources = {m.parse_route(n, s).source for n, s in upstream.items()}
        assert sources == {"/messages/modules/controller/outputs/capability",
                           "/messages/modules/controller/outputs/summary",
                           *(f"/messages/modules/{module}/outputs/events" for module in modules_with_events)}
        per_day = m.upstream_per_day(manifest)
        assert set(per_day) == set(upstream)
        assert sum(per_day.values()) <= m.UPSTREAM_BUDGET_PER_DAY
        hub = manifest["modulesContent"]["$edgeHub"]["properties.desired"]
        assert hub["storeAndForwardConfiguration"]["timeToLiveSecs"] >= 7 * 86400  # a week offline


def _deployments_generator() -> ModuleType:
    path = REPO / "scripts" / "generate_deployments.py"
    spec = importlib.util.spec_from_file_location("generate_deployments", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_variants_are_current_with_the_template() -> None:
    stale = [str(p.relative_to(REPO)) for p in _deployments_generator().stale_files()]
    assert stale == [], "deployment.template.json changed: run python scripts/generate_deployments.py"


def test_production_is_the_base_without_the_simulator() -> None:
    """The two base templates differ only where a hardware site differs from a simulated one."""
    base, production = base_manifest(), m.load_template(PRODUCTION, EXAMPLE_ENV)[0]
    assert set(agent(base)["modules"]) - set(agent(production)["modules"]) == {"simulator"}
    assert "simulator" not in production["modulesContent"]
    for name, spec in agent(production)["modules"].items():
        assert spec == agent(base)["modules"][name], name
        section, base_section = desired(production, name), desired(base, name)
        # the site layer's job: which site, its devices, and so the assets the controller and exporter believe
        assert section["site_id"] == "unassigned" and section.get("devices", []) == [] and \
            section.get("assets", {}) == {}
        # the console starts read-only on hardware sites (a site layer may turn its actions on)
        site_keys = ("site_id", "devices", "assets", "operator_actions_enabled")
        assert {k: v for k, v in section.items() if k not in site_keys} == \
            {k: v for k, v in base_section.items() if k not in site_keys}, name
        assert section.get("operator_actions_enabled", False) is False, name
    assert routes(production) == routes(base)
    assert agent(production)["systemModules"] == agent(base)["systemModules"]


def test_site_layer_points_every_asset_module_at_the_site() -> None:
    env = {**EXAMPLE_ENV, **read_env_file(DEPLOYMENT / "sites" / "example.env.example")}
    production = m.load_template(PRODUCTION, env)[0]
    layer = m.load_template(SITE_LAYER, env)[0]
    device = m.apply_layer(production, layer)
    for name, section in device["modulesContent"].items():
        if name.startswith("$"):
            continue
        assert section["properties.desired"]["site_id"] == "site-example-01", name
        hosts = {d["host"] for d in section["properties.desired"].get("devices", [])}
        assert not hosts or hosts <= {"10.20.0.10", "10.20.0.11", "10.20.0.12", "10.20.0.13"}, name
    # everything else comes from the base unchanged
    assert desired(device, "controller")["import_limit_kw"] == desired(production, "controller")["import_limit_kw"]
    assert routes(device) == routes(production)


def test_diagnostics_layer_changes_only_the_controllers_logging() -> None:
    layer = json.loads(DIAGNOSTICS_LAYER.read_text())
    spec = layer["modulesContent"]["$edgeAgent"]["properties.desired.modules.controller"]
    base_spec = agent(json.loads(BASE.read_text()))["modules"]["controller"]
    extra = {k: v for k, v in spec["env"].items() if k not in base_spec.get("env", {})}
    assert extra["LOG_LEVEL"] == {"value": "DEBUG"}
    assert {**spec, "env": base_spec.get("env", {})} == base_spec


# ---------------------------------------------------------------- each check catches what it is for


Mutation = Callable[[dict[str, Any]], None]


def _set_route(name: str, text: str) -> Mutation:
    return lambda manifest: routes(manifest).__setitem__(name, text)


def _set_desired(module: str, key: str, value: Any) -> Mutation:
    return lambda manifest: desired(manifest, module).__setitem__(key, value)


BROKEN: list[tuple[str, Mutation, str]] = [
    ("route syntax", _set_route("bad", "FROM /messages/modules/solar/outputs/telemetry INTO"), "route 'bad'"),
    ("unknown output", _set_route("solarToController",
                                  'FROM /messages/modules/solar/outputs/telemetri '
                                  'INTO BrokeredEndpoint("/modules/controller/inputs/telemetry")'),
     "never sends on output 'telemetri'"),
    ("unknown input", _set_route("solarToController",
                                 'FROM /messages/modules/solar/outputs/telemetry '
                                 'INTO BrokeredEndpoint("/modules/controller/inputs/meter")'),
     "has no input 'meter'"),
    ("module without inputs", _set_route("x", 'FROM /messages/modules/controller/outputs/summary '
                                              'INTO BrokeredEndpoint("/modules/solar/inputs/summary")'),
     "module 'solar' has no input 'summary'"),
    ("unknown source module", _set_route("x", 'FROM /messages/modules/wind/outputs/telemetry '
                                              'INTO BrokeredEndpoint("/modules/controller/inputs/telemetry")'),
     "source module 'wind' is not in this deployment"),
    ("unknown target module", _set_route("x", 'FROM /messages/modules/solar/outputs/telemetry '
                                              'INTO BrokeredEndpoint("/modules/historian/inputs/telemetry")'),
     "target module 'historian' is not in this deployment"),
    ("sender without outputs", _set_route("x", 'FROM /messages/modules/simulator/* '
                                               'INTO BrokeredEndpoint("/modules/controller/inputs/telemetry")'),
     "module 'simulator' sends no messages"),
    ("wildcard upstream", _set_route("all", "FROM /messages/* INTO $upstream"), "sends a wildcard upstream"),
    ("telemetry upstream", _set_route("raw", "FROM /messages/modules/battery/outputs/telemetry INTO $upstream"),
     "raw telemetry stays on the edge"),
    ("bad priority", lambda man: routes(man).__setitem__("p", {"route": "FROM /messages/modules/controller/"
                                                                        "outputs/summary INTO $upstream",
                                                               "priority": 12}),
     "priority"),
    ("desired out of range", _set_desired("battery", "poll_interval_s", 0),
     "battery.properties.desired.poll_interval_s"),
    ("desired unknown key", _set_desired("controller", "import_limit", 150),
     "controller.properties.desired.import_limit"),
    ("desired device field", lambda man: desired(man, "solar")["devices"][0].__setitem__("port", 70000),
     "solar.properties.desired.devices.0.port"),
    ("desired missing", lambda man: man["modulesContent"].pop("boiler"), "boiler.properties.desired: missing"),
    ("desired without a model", _set_desired("simulator", "scenario", "small"), "registers no configuration model"),
    ("twin of a module not deployed", lambda man: man["modulesContent"].__setitem__(
        "wind", {"properties.desired": {}}), "wind: twin settings for a module this deployment does not run"),
    ("upstream over the budget", _set_desired("controller", "summary_interval_s", 10),
     "over the budget of 2,000 per site"),
    ("upstream without a bound", _set_route("x", "FROM /messages/modules/battery/outputs/status INTO $upstream"),
     "sends upstream with no known bound"),
    ("controller assets not the devices", _set_desired("controller", "assets", {"battery": ["bess-1", "bess-9"]}),
     "controller.properties.desired.assets"),
    ("telemetry assets not the devices", _set_desired("telemetry", "assets", {"battery": ["bess-1"]}),
     "telemetry.properties.desired.assets"),
    ("schema: restart policy", lambda man: agent(man)["modules"]["solar"].__setitem__("restartPolicy", "sometimes"),
     "modules.solar.restartPolicy"),
    ("schema: module without status", lambda man: agent(man)["modules"]["boiler"].pop("status"),
     "'status' is a required property"),
    ("schema: edgeHub schema version", lambda man: man["modulesContent"]["$edgeHub"]["properties.desired"]
     .__setitem__("schemaVersion", "1.0"), "schemaVersion"),
    ("schema: store limits the 1.2 schema lacks", lambda man: man["modulesContent"]["$edgeHub"]["properties.desired"]
     ["storeAndForwardConfiguration"].__setitem__("storeLimits", {"maxSizeBytes": 1}), "storeAndForwardConfiguration"),
    ("schema: template version", lambda man: man.__setitem__("$schema-template", "2.0.0"), "$schema-template"),
    ("no module folder", lambda man: agent(man)["modules"]["solar"]["settings"].__setitem__(
        "image", "${MODULES.wind-module}"), "no folder modules/wind-module"),
    ("not a MODULES placeholder", lambda man: agent(man)["modules"]["solar"]["settings"].__setitem__(
        "image", "${IMAGE_SOLAR}"), "is not a ${MODULES.<folder>} placeholder"),
]


@pytest.mark.parametrize(("mutate", "expected"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_a_broken_manifest_is_caught(repo: m.Repository, mutate: Mutation, expected: str) -> None:
    manifest = base_manifest()
    mutate(manifest)
    problems = [str(p) for p in m.check_manifest(manifest, repo, "t.json")]
    assert any(expected in p for p in problems), problems


def test_a_module_folder_without_its_files_is_caught(tmp_path: Path) -> None:
    shutil.copytree(REPO / "modules" / "solar-module", tmp_path / "modules" / "solar-module",
                    ignore=shutil.ignore_patterns("tests", "__pycache__", "*.egg-info"))
    (tmp_path / "modules" / "solar-module" / "Dockerfile.arm32v7").unlink()
    (tmp_path / "modules" / "battery-module").mkdir(parents=True)
    module_json = json.loads((REPO / "modules" / "boiler-module" / "module.json").read_text())
    module_json["image"]["repository"] = "${CONTAINER_REGISTRY_ADDRESS}/heater"
    (tmp_path / "modules" / "boiler-module").mkdir()
    (tmp_path / "modules" / "boiler-module" / "module.json").write_text(json.dumps(module_json))
    problems = [str(p) for p in m.folder_problems(base_manifest(), m.Repository(tmp_path), "t.json")]
    expected = ["arm32v7 names ./Dockerfile.arm32v7, which does not exist",
                "no modules/battery-module/module.json", "does not end in /boiler-module",
                "no folder modules/controller-module"]
    for text in expected:
        assert any(text in p for p in problems), (text, problems)


def test_an_undocumented_variable_is_caught() -> None:
    problems = m.variable_problems('{"host": "${PLANT_HOST}", "image": "${MODULES.solar-module}"}', EXAMPLE_ENV, "t")
    assert [p.message for p in problems] == ["${PLANT_HOST} is used but deployment/.env.example does not define it"]


def test_a_layer_is_checked_merged_onto_its_base(repo: m.Repository) -> None:
    layer = {"modulesContent": {
        "battery": {"properties.desired.watchdog_s": -1},
        "$edgeHub": {"properties.desired.routes.raw": "FROM /messages/modules/solar/outputs/* INTO $upstream"},
    }}
    device = m.apply_layer(base_manifest(), layer)
    assert desired(device, "battery")["watchdog_s"] == -1 and desired(device, "battery")["devices"]
    problems = [str(p) for p in m.check_manifest(device, repo, "layer")]
    assert any("battery.properties.desired.watchdog_s" in p for p in problems), problems
    assert any("routes.raw" in p and "wildcard upstream" in p for p in problems), problems


# ---------------------------------------------------------------- build


def build(template: Path, platform: str, **kwargs: Any) -> dict[str, Any]:
    env = {**BUILD_ENV, **kwargs.pop("env", {})}
    return m.build_manifest(template, platform, modules_dir=REPO / "modules", env=env, **kwargs)


@pytest.mark.parametrize("platform", m.PLATFORMS)
def test_build_expands_every_placeholder_for_the_platform(platform: str) -> None:
    manifest = build(PRODUCTION, platform)
    images = {name: spec["settings"]["image"] for name, spec in agent(manifest)["modules"].items()}
    for name, folder in MODULE_FOLDERS.items():
        assert images[name] == f"myregistry.azurecr.io/{folder}:0.1.0-{platform}"
    assert "$schema-template" not in manifest
    assert "${" not in json.dumps(manifest)
    for _kind, _name, spec in m.agent_modules(manifest):
        assert isinstance(spec["settings"]["createOptions"], str)
        json.loads(spec["settings"]["createOptions"])
    assert m.schema_problems(manifest, "generated") == []


def test_build_tags_version_and_container_tag_like_iotedgedev() -> None:
    manifest = build(BASE, "arm64v8", version="2.3.4", env={"CONTAINER_TAG": "20261123.7"})
    assert agent(manifest)["modules"]["controller"]["settings"]["image"] == \
        "myregistry.azurecr.io/controller-module:2.3.4-20261123.7-arm64v8"
    assert agent(manifest)["systemModules"]["edgeHub"]["settings"]["image"] == "mcr.microsoft.com/azureiotedge-hub:1.6"


def test_an_explicit_platform_placeholder_wins(tmp_path: Path) -> None:
    manifest = json.loads(PRODUCTION.read_text())
    agent(manifest)["modules"]["solar"]["settings"]["image"] = "${MODULES.solar-module.arm32v7}"
    template = tmp_path / "pinned.template.json"
    template.write_text(json.dumps(manifest))
    built = build(template, "amd64")
    assert agent(built)["modules"]["solar"]["settings"]["image"].endswith("/solar-module:0.1.0-arm32v7")
    assert agent(built)["modules"]["battery"]["settings"]["image"].endswith("/battery-module:0.1.0-amd64")


def test_the_simulator_is_not_built_for_32_bit_arm() -> None:
    with pytest.raises(m.ManifestBuildError, match="site-simulator has no arm32v7 build"):
        build(BASE, "arm32v7")


@pytest.mark.parametrize(("size", "chunks"), [(10, 1), (512, 1), (513, 2), (4096, 8)])
def test_create_options_are_cut_into_512_character_values(tmp_path: Path, size: int, chunks: int) -> None:
    manifest = json.loads(PRODUCTION.read_text())
    label = "x" * (size - len('{"Labels":{"a":""}}'))
    agent(manifest)["modules"]["solar"]["settings"]["createOptions"] = {"Labels": {"a": label}}
    template = tmp_path / "big.template.json"
    template.write_text(json.dumps(manifest))
    settings = agent(build(template, "amd64"))["modules"]["solar"]["settings"]
    keys = sorted(k for k in settings if k.startswith("createOptions"))
    assert keys == ["createOptions"] + [f"createOptions{i:02d}" for i in range(1, chunks)]
    assert all(len(settings[k]) <= 512 for k in keys)
    assert json.loads("".join(settings[k] for k in keys)) == {"Labels": {"a": label}}


def test_create_options_over_4_kib_are_refused(tmp_path: Path) -> None:
    manifest = json.loads(PRODUCTION.read_text())
    agent(manifest)["modules"]["solar"]["settings"]["createOptions"] = {"Labels": {"a": "x" * 4096}}
    template = tmp_path / "huge.template.json"
    template.write_text(json.dumps(manifest))
    with pytest.raises(m.ManifestBuildError, match=r"module solar: createOptions is \d+ characters; .* 4 KiB"):
        build(template, "amd64")


@pytest.mark.parametrize(("unset", "message"), [
    ("SIMULATOR_HOST", "variables not set: SIMULATOR_HOST"),
    ("CONTAINER_REGISTRY_ADDRESS", r"repository \$\{CONTAINER_REGISTRY_ADDRESS\}/site-simulator still has"),
])
def test_build_names_what_is_not_set(tmp_path: Path, unset: str, message: str) -> None:
    env = {k: v for k, v in BUILD_ENV.items() if k != unset}
    # the registry is in the template (credentials) and in every module.json (repository): only the latter remains
    template = tmp_path / "deployment.template.json"
    template.write_text(BASE.read_text().replace("${CONTAINER_REGISTRY_ADDRESS}", "registry.example"))
    with pytest.raises(m.ManifestBuildError, match=message):
        m.build_manifest(template, "amd64", modules_dir=REPO / "modules", env=env)


def test_layered_deployments_build_too() -> None:
    diagnostics = build(DIAGNOSTICS_LAYER, "arm64v8")
    spec = diagnostics["modulesContent"]["$edgeAgent"]["properties.desired.modules.controller"]
    assert spec["settings"]["image"] == "myregistry.azurecr.io/controller-module:0.1.0-arm64v8"
    assert isinstance(spec["settings"]["createOptions"], str)
    site = build(SITE_LAYER, "amd64", env=read_env_file(DEPLOYMENT / "sites" / "example.env.example"))
    assert site["modulesContent"]["solar"]["properties.desired.devices"][0]["host"] == "10.20.0.11"


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="energy-edge")
    m.add_manifest_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_cli_writes_config_per_platform_and_the_emulator_loads_it(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "config"
    code = run_cli("manifest", "--repo", str(REPO), "build", "--platform", "arm64v8", "--registry", "acr.example.io",
                   "--version", "1.2.0", "--out-dir", str(out))
    assert code == 0
    written = out / "deployment.arm64v8.json"
    loaded = load_manifest(written)
    assert set(loaded.modules) == {"simulator", *MODULE_FOLDERS}
    assert loaded.modules["battery"].image == "acr.example.io/battery-module:1.2.0-arm64v8"
    assert [r.name for r in loaded.routes.routes] == list(routes(base_manifest()))
    site = run_cli("manifest", "--repo", str(REPO), "build", "--platform", "amd64", "--template", str(SITE_LAYER),
                   "--env-file", str(DEPLOYMENT / "sites" / "example.env.example"), "--out-dir", str(out))
    assert site == 0 and json.loads((out / "site.amd64.json").read_text())["modulesContent"]["controller"] == \
        {"properties.desired.site_id": "site-example-01", "properties.desired.assets": {
            "microgrid_controller": ["mgc-1"], "solar": ["pv-1"], "battery": ["bess-1"], "boiler": ["boiler-1"]}}


def test_cli_check_passes_on_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("manifest", "--repo", str(REPO), "check") == 0
    assert "0 problem(s)" in capsys.readouterr().err


def test_cli_build_fails_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIMULATOR_HOST", raising=False)
    template = tmp_path / "deployment.template.json"
    template.write_text(BASE.read_text())
    code = run_cli("manifest", "--repo", str(REPO), "build", "--template", str(template), "--registry", "r.io",
                   "--out-dir", str(tmp_path))
    assert code == 2
    assert "SIMULATOR_HOST" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("drop", "gone_routes_mention", "routes_change"),
    [
        (("simulator",), ["simulator"], False),  # the simulator has no routes: serves Modbus only
        (("telemetry", "boiler"), ["telemetry", "boiler"], True),
        ((), [], False),
    ],
)
def test_drop_modules_removes_module_desired_properties_and_routes(
    drop: tuple[str, ...], gone_routes_mention: list[str], routes_change: bool
) -> None:
    manifest = json.loads(BASE.read_text())
    before = m.routes_of(manifest)
    m.drop_modules(manifest, drop)
    after = m.routes_of(manifest)
    content = m.modules_content(manifest)
    for name in drop:
        assert name not in dict(m.user_modules(manifest)) and name not in content
    kept = {k: v for k, v in before.items()
            if not any(f"/modules/{n}/" in (v if isinstance(v, str) else v["route"]) for n in gone_routes_mention)}
    assert after == kept
    assert (after != before) == routes_change
