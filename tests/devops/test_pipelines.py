"""Azure Pipelines: every file validates against the official schema (check-jsonschema's vendored copy), every
template reference resolves to a file of the right kind, every dependsOn names a stage or job that exists, and
the pipeline agrees with the infrastructure and the repository it builds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.devops import azure_pipelines as ap
from tests.devops.tools import check_jsonschema, run
from tests.support import REPO

PIPELINE = REPO / "azure-pipelines.yml"
TEMPLATES = sorted((REPO / "pipelines").glob("*.yml"))
SCHEMA_ARGS = ["--builtin-schema", "vendor.azure-pipelines", "--data-transform", "azure-pipelines",
               "--regex-variant", "nonunicode"]


def is_variables_template(path: Path) -> bool:
    document = ap.load(path)
    return isinstance(document, dict) and set(document) <= {"parameters", "variables"}


def validate(paths: list[Path], tmp_path: Path) -> tuple[int, str]:
    """Run check-jsonschema; a variables template is validated as the variables of a one-step pipeline."""
    targets = []
    for path in paths:
        if is_variables_template(path):
            wrapped = tmp_path / f"wrapped-{path.name}"
            wrapped.write_text(yaml.safe_dump({**ap.load(path), "steps": [{"script": "true"}]}))
            targets.append(wrapped)
        else:
            targets.append(path)
    result = run([*check_jsonschema(), *SCHEMA_ARGS, *targets])
    return result.returncode, result.stdout + result.stderr


def test_every_pipeline_file_validates_against_the_azure_pipelines_schema(tmp_path: Path) -> None:
    code, output = validate([PIPELINE, *TEMPLATES], tmp_path)
    assert code == 0, output


def test_every_template_is_referenced_and_resolves() -> None:
    expanded = ap.expand(PIPELINE)
    referenced = {ref.target for ref in expanded.references}
    assert referenced == {p.resolve() for p in TEMPLATES}, "unused or missing templates"
    kinds = {(ref.target.name, ref.kind) for ref in expanded.references}
    assert ("vars-prod.yml", "variables") in kinds and ("edge.yml", "stages") in kinds


def test_stages_and_their_order() -> None:
    stages = ap.expand(PIPELINE).stages
    assert ap.dependency_problems(stages) == []
    names = [s["stage"] for s in stages]
    assert names == ["Test", "Infra_dev", "Build", "Edge_dev", "Infra_prod", "Edge_prod"]
    production = [s for s in stages if s["stage"].endswith("_prod")]
    for stage in production:  # production runs only through its approval-guarded environment
        deployments = [j for j in ap._items(stage["jobs"]) if "deployment" in j]
        assert deployments and all(j["environment"] == "energy-edge-prod" for j in deployments)


def _tasks(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if "task" in node:
            found.append(node)
        for value in node.values():
            found += _tasks(value)
    elif isinstance(node, list):
        for item in node:
            found += _tasks(item)
    return found


def test_the_tasks_the_issue_asks_for() -> None:
    tasks = _tasks([ap.load(p) for p in TEMPLATES])
    by_name: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        by_name.setdefault(task["task"], []).append(task["inputs"])
    assert {i["action"] for i in by_name["AzureIoTEdge@2"]} == {"Generate deployment manifest",
                                                                  "Deploy to IoT Edge devices"}
    assert {i["deviceOption"] for i in by_name["AzureIoTEdge@2"] if "deviceOption" in i} == \
        {"Single Device", "Multiple Devices"}
    (docker,) = by_name["Docker@2"]
    assert docker["command"] == "buildAndPush" and docker["buildContext"] == "$(Build.SourcesDirectory)"
    assert "PublishTestResults@2" in by_name and "PublishCodeCoverageResults@1" in by_name
    scripts = " ".join(i.get("inlineScript", "") for i in by_name["AzureCLI@2"])
    assert "az deployment sub what-if" in scripts and "az deployment sub create" in scripts
    for inputs in by_name["AzureCLI@2"]:
        if inputs.get("scriptLocation") == "scriptPath":
            assert (REPO / inputs["scriptPath"]).is_file(), inputs["scriptPath"]


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_environment_variables_match_the_infrastructure(environment: str) -> None:
    from tests.devops.test_infra import bicepparam

    variables = {v["name"]: v["value"] for v in ap.load(REPO / "pipelines" / f"vars-{environment}.yml")["variables"]
                 if "name" in v}
    params = bicepparam(REPO / "infra" / f"{environment}.bicepparam")
    assert params["environment"] == environment
    for variable, param in [("iotHubName", "iotHubName"), ("registryName", "registryName"),
                            ("resourceGroup", "resourceGroupName"), ("location", "location")]:
        assert variables[variable] == params[param], variable
    assert (REPO / variables["deploymentTemplate"]).is_file()
    assert variables["targetCondition"] == f"tags.environment='{environment}'"


def test_the_matrices_cover_every_module() -> None:
    tests = json.loads(run(["python3", "scripts/pipeline_matrix.py", "tests", "--json"]).stdout)
    images = json.loads(run(["python3", "scripts/pipeline_matrix.py", "images", "--json"]).stdout)
    with_tests = {p.name for p in (REPO / "modules").iterdir() if (p / "tests").is_dir()}
    assert {e["moduleFolder"] for e in tests.values()} == with_tests
    assert tests["controller_module"]["package"] == "controller_module"
    built = {(p.parent.name, plat) for p in (REPO / "modules").glob("*/module.json")
             for plat in json.loads(p.read_text())["image"]["tag"]["platforms"]}
    assert {(e["moduleFolder"], e["platform"]) for e in images.values()} == built
    assert all((REPO / e["dockerfile"]).is_file() for e in images.values())
    line = run(["python3", "scripts/pipeline_matrix.py", "images"]).stdout.strip()
    assert line.startswith("##vso[task.setvariable variable=images;isOutput=true]{")


# ---------------------------------------------------------------- the checks catch what they are for


def _copy_pipeline(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(PIPELINE, tmp_path / "azure-pipelines.yml")
    shutil.copytree(REPO / "pipelines", tmp_path / "pipelines")
    return tmp_path


@pytest.mark.parametrize(("file", "old", "new", "expected"), [
    ("azure-pipelines.yml", "        - Infra_prod", "        - Infra_production",
     "stage 'Edge_prod' depends on 'Infra_production', which is no stage"),
    ("pipelines/test.yml", "dependsOn: Discover", "dependsOn: Discovery",
     "job 'Module' depends on 'Discovery', which is no job of the stage"),
    ("azure-pipelines.yml", "      - Test\n", "      - Edge_prod\n", "dependency cycle"),
])
def test_a_broken_dependency_is_caught(tmp_path: Path, file: str, old: str, new: str, expected: str) -> None:
    root = _copy_pipeline(tmp_path)
    text = (root / file).read_text()
    assert old in text
    (root / file).write_text(text.replace(old, new, 1))
    problems = ap.dependency_problems(ap.expand(root / "azure-pipelines.yml").stages)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(("file", "old", "new", "expected"), [
    ("azure-pipelines.yml", "template: pipelines/edge.yml", "template: pipelines/edge-deploy.yml", "not found"),
    ("pipelines/infra.yml", "template: vars-${{ parameters.environment }}.yml", "template: test.yml",
     "used for variables but has no 'variables'"),
    ("azure-pipelines.yml", "      promoteFrom: dev", "      promoteFrom: dev\n      region: westeurope",
     "passes unknown parameters ['region']"),
])
def test_a_broken_template_reference_is_caught(tmp_path: Path, file: str, old: str, new: str, expected: str) -> None:
    root = _copy_pipeline(tmp_path)
    text = (root / file).read_text()
    assert old in text
    (root / file).write_text(text.replace(old, new, 1))
    with pytest.raises(ap.PipelineError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        ap.expand(root / "azure-pipelines.yml")


@pytest.mark.parametrize(("file", "old", "new"), [
    ("pipelines/build.yml", "Dockerfile: $(dockerfile)", "dockerfile: $(dockerfile)"),  # input names are exact
    ("pipelines/build.yml", "command: buildAndPush", "command: buildandpushh"),
    ("pipelines/edge.yml", "action: Deploy to IoT Edge devices", "action: Deploy to devices"),
    ("pipelines/edge.yml", "deviceOption: Single Device", "deviceOption: One Device"),
    ("pipelines/test.yml", "timeoutInMinutes: '60'", "timeoutInMinute: '60'"),
    ("pipelines/vars-dev.yml", "  - name: location\n", "  - nam: location\n"),
])
def test_a_schema_violation_is_caught(tmp_path: Path, file: str, old: str, new: str) -> None:
    root = _copy_pipeline(tmp_path / "repo")
    text = (root / file).read_text()
    assert old in text
    (root / file).write_text(text.replace(old, new, 1))
    code, output = validate([root / file], tmp_path)
    assert code == 1, output
