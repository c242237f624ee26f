"""Infrastructure: every Bicep file parses (pycep-parser) and has the structure the deployment path relies on;
checkov finds nothing, parses everything, and every skip carries its reason."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, cast

import pytest
from pycep import BicepParser

from tests.devops.tools import run, tool
from tests.support import REPO

INFRA = REPO / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
PARAM_FILES = sorted(INFRA.glob("*.bicepparam"))


@cache
def parse(path: Path) -> dict[str, Any]:
    return cast(dict[str, Any], BicepParser().parse(text=path.read_text()))


def bicepparam(path: Path) -> dict[str, Any]:
    """A .bicepparam file's values. pycep has no `using`: each `param x = v` is parsed as `var x = v`."""
    lines = path.read_text().splitlines()
    using = [line for line in lines if line.startswith("using ")]
    assert using == ["using './main.bicep'"], f"{path.name} must use ./main.bicep"
    text = "\n".join("var " + line[len("param "):] if line.startswith("param ") else line
                     for line in lines if not line.startswith("using "))
    parsed = cast(dict[str, Any], BicepParser().parse(text=text))
    return {name: spec["value"] for name, spec in parsed["variables"].items()}


def resources(path: Path, kind: str) -> list[dict[str, Any]]:
    return [r["config"] for r in parse(path)["resources"].values() if r["type"] == kind]


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    assert parse(path)["globals"] is not None


def test_main_wires_every_module_and_the_outputs_the_fleet_needs() -> None:
    main = parse(INFRA / "main.bicep")
    assert main["globals"]["scope"]["value"] == "subscription"  # from an empty subscription: it makes the group
    paths = {m["detail"]["path"] for m in main["modules"].values()}
    assert paths == {f"modules/{p.name}" for p in (INFRA / "modules").glob("*.bicep")}
    assert {"iotHubHostName", "dpsIdScope", "registryLoginServer"} <= set(main["outputs"])


def test_iot_hub_s1_with_routes_to_storage_and_a_fallback() -> None:
    (hub,) = resources(INFRA / "modules" / "iothub.bicep", "Microsoft.Devices/IotHubs")
    assert hub["sku"]["name"] == "S1"
    assert hub["identity"]["type"] == "SystemAssigned"
    routing = hub["properties"]["routing"]
    containers = routing["endpoints"]["storageContainers"]
    assert {c["name"] for c in containers} == {"capability", "summaries"}
    assert all(c["authenticationType"] == "identityBased" for c in containers)  # the managed identity writes
    conditions = {r["name"]: r["condition"] for r in routing["routes"]}
    assert "capabilityStatus" in conditions["capability-to-storage"]
    assert "siteSummary" in conditions["summaries-to-storage"]
    assert routing["fallbackRoute"]["isEnabled"] is True and routing["fallbackRoute"]["endpointNames"] == ["events"]
    (grant,) = resources(INFRA / "modules" / "iothub.bicep", "Microsoft.Authorization/roleAssignments")
    assert grant["properties"]["principalType"] == "ServicePrincipal"


def test_dps_is_linked_to_the_hub() -> None:
    (dps,) = resources(INFRA / "modules" / "dps.bicep", "Microsoft.Devices/provisioningServices")
    assert dps["properties"]["allocationPolicy"] == "Hashed"
    (link,) = dps["properties"]["iotHubs"]
    assert "connectionString" in link and "location" in link


def test_registry_has_no_admin_user_and_a_pull_token() -> None:
    (registry,) = resources(INFRA / "modules" / "registry.bicep", "Microsoft.ContainerRegistry/registries")
    assert registry["properties"]["adminUserEnabled"] is False
    assert registry["properties"]["anonymousPullEnabled"] is False
    (scope,) = resources(INFRA / "modules" / "registry.bicep", "Microsoft.ContainerRegistry/registries/scopeMaps")
    assert all(action.endswith("/read") for action in scope["properties"]["actions"])  # devices only pull


@pytest.mark.parametrize("module", ["iothub", "dps", "registry", "storage"])
def test_diagnostics_go_to_log_analytics(module: str) -> None:
    (settings,) = resources(INFRA / "modules" / f"{module}.bicep", "Microsoft.Insights/diagnosticSettings")
    assert settings["properties"]["workspaceId"] == "workspaceId"
    assert settings["properties"]["logs"][0]["categoryGroup"] == "allLogs"


def test_alerts_on_devices_telemetry_and_throttling() -> None:
    alerts = parse(INFRA / "modules" / "alerts.bicep")["variables"]["alerts"]["value"]
    metrics = {a["name"]: (a["metric"], a["operator"]) for a in alerts}
    assert metrics == {
        "connected-devices-drop": ("connectedDeviceCount", "LessThan"),
        "telemetry-drop": ("d2c.telemetry.ingress.success", "LessThan"),
        "throttling": ("d2c.telemetry.ingress.sendThrottle", "GreaterThan"),
    }
    (rule,) = [r for r in parse(INFRA / "modules" / "alerts.bicep")["resources"].values()
               if r["type"] == "Microsoft.Insights/metricAlerts"]
    assert rule["config"]["loop_type"]["detail"]["array_name"] == "alerts"  # one rule per entry
    assert rule["config"]["config"]["properties"]["actions"][0]["actionGroupId"] == "actionGroupId"


@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.name)
def test_parameter_files_set_what_main_requires(path: Path) -> None:
    params = bicepparam(path)
    declared = parse(INFRA / "main.bicep")["parameters"]
    assert set(params) <= set(declared), f"unknown parameters: {set(params) - set(declared)}"
    required = {name for name, spec in declared.items() if spec.get("default") is None}
    assert required <= set(params), f"{path.name} misses {required - set(params)}"
    allowed = next(d["argument"] for d in declared["environment"]["decorators"] if d["type"] == "allowed")
    assert params["environment"] in allowed and path.stem == params["environment"]


def test_a_syntax_error_is_caught(tmp_path: Path) -> None:
    broken = (INFRA / "modules" / "registry.bicep").read_text().replace("adminUserEnabled: false",
                                                                         "adminUserEnabled false")
    with pytest.raises(Exception, match="Unexpected"):
        BicepParser().parse(text=broken)


def _checkov(directory: Path) -> dict[str, Any]:
    result = run([tool("checkov", "checkov"), "-d", directory, "--framework", "bicep", "--skip-download",
                  "-o", "json"], timeout=600)
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    assert isinstance(report, dict), result.stderr[-2000:]
    return report


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    return _checkov(INFRA)


def test_checkov_finds_no_failed_check(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0  # checkov exits 0 on a file it cannot parse
    assert summary["resource_count"] >= 20
    failed = [(c["check_id"], c["file_path"], c["resource"]) for c in checkov_report["results"]["failed_checks"]]
    assert failed == [] and summary["failed"] == 0
    assert summary["passed"] >= 10


def test_every_checkov_skip_is_justified(checkov_report: dict[str, Any]) -> None:
    skipped = checkov_report["results"]["skipped_checks"]
    assert len(skipped) == checkov_report["summary"]["skipped"]
    for check in skipped:
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason.strip()) > 30, (check["check_id"], check["resource"], reason)


def test_checkov_catches_a_registry_with_an_admin_user(tmp_path: Path) -> None:
    text = (INFRA / "modules" / "registry.bicep").read_text().replace("adminUserEnabled: false",
                                                                       "adminUserEnabled: true")
    (tmp_path / "registry.bicep").write_text(text)
    (tmp_path / "broken.bicep").write_text("resource x 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n")
    report = _checkov(tmp_path)
    assert "CKV_AZURE_137" in {c["check_id"] for c in report["results"]["failed_checks"]}
    assert report["summary"]["parsing_errors"] == 1  # the unparsable file is counted, not failed
