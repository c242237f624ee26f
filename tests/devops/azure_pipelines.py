"""A small reader of Azure Pipelines YAML for the checks the schema cannot make: template references are
resolved (with the parameters each reference passes, and the template's defaults), stage and job templates are
expanded, and every `dependsOn` must name a stage (or, inside a stage, a job) that exists, without cycles."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_WHOLE = re.compile(r"^\$\{\{\s*parameters\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
_PART = re.compile(r"\$\{\{\s*parameters\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class PipelineError(ValueError):
    pass


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def substitute(node: Any, parameters: dict[str, Any]) -> Any:
    """Replace `${{ parameters.x }}`: a whole value takes the parameter's value (a list stays a list)."""
    if isinstance(node, str):
        whole = _WHOLE.match(node)
        if whole and whole.group(1) in parameters:
            return parameters[whole.group(1)]
        return _PART.sub(lambda m: str(parameters.get(m.group(1), m.group(0))), node)
    if isinstance(node, list):
        return [substitute(item, parameters) for item in node]
    if isinstance(node, dict):
        return {substitute(k, parameters): substitute(v, parameters) for k, v in node.items()}
    return node


def template_parameters(document: Any, passed: dict[str, Any], where: str) -> dict[str, Any]:
    declared = document.get("parameters") or [] if isinstance(document, dict) else []
    values: dict[str, Any] = {}
    names = set()
    for parameter in declared:
        names.add(parameter["name"])
        if parameter["name"] in passed:
            values[parameter["name"]] = passed[parameter["name"]]
        elif "default" in parameter:
            values[parameter["name"]] = parameter["default"]
        else:
            raise PipelineError(f"{where}: parameter {parameter['name']!r} is required but not passed")
    unknown = set(passed) - names
    if unknown:
        raise PipelineError(f"{where}: passes unknown parameters {sorted(unknown)}")
    return values


@dataclass
class Reference:
    source: Path  # the file that holds the `template:` key
    target: Path
    kind: str  # "stages", "jobs", "steps" or "variables"


@dataclass
class Expanded:
    stages: list[dict[str, Any]] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)


def _template_path(source: Path, reference: str) -> Path:
    if "@" in reference:
        raise PipelineError(f"{source}: template {reference!r} lives in another repository")
    return (source.parent / reference).resolve()


def _items(node: Any) -> Iterator[Any]:
    """List items, flattening `${{ if … }}:` / `${{ else }}:` insertions (both branches count)."""
    for item in node or []:
        if isinstance(item, dict) and len(item) == 1 and str(next(iter(item))).startswith("${{"):
            yield from _items(next(iter(item.values())))
        else:
            yield item


def expand(path: Path, kind: str = "stages", passed: dict[str, Any] | None = None,
           result: Expanded | None = None) -> Expanded:
    """Stages of the pipeline at `path` with templates expanded; every reference is recorded and must exist."""
    result = result if result is not None else Expanded()
    document = load(path)
    if not isinstance(document, dict):
        raise PipelineError(f"{path}: not a YAML mapping")
    values = template_parameters(document, passed or {}, str(path)) if passed is not None else {}
    document = substitute({k: v for k, v in document.items() if k != "parameters"}, values)
    for key in ("variables",):
        for item in _items(document.get(key)):
            if isinstance(item, dict) and "template" in item:
                _follow(path, item, "variables", result)
    for stage in _items(document.get("stages")):
        if "template" in stage:
            target = _follow(path, stage, "stages", result)
            expand(target, "stages", dict(stage.get("parameters") or {}), result)
            continue
        for item in _items(stage.get("variables")):
            if isinstance(item, dict) and "template" in item:
                _follow(path, item, "variables", result)
        for job in _items(stage.get("jobs")):
            if "template" in job:
                _follow(path, job, "jobs", result)
            for step in _steps(job):
                if "template" in step:
                    _follow(path, step, "steps", result)
        result.stages.append(stage)
    return result


def _steps(job: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from _items(job.get("steps"))
    strategy = job.get("strategy") or {}
    for name in ("runOnce", "rolling", "canary"):
        for hook in (strategy.get(name) or {}).values():
            if isinstance(hook, dict):
                yield from _items(hook.get("steps"))


def _follow(source: Path, item: dict[str, Any], kind: str, result: Expanded) -> Path:
    target = _template_path(source, str(item["template"]))
    if "${{" in str(item["template"]):
        raise PipelineError(f"{source}: template {item['template']!r} has an unresolved expression")
    if not target.is_file():
        raise PipelineError(f"{source}: template {item['template']!r} not found ({target})")
    document = load(target)
    if not isinstance(document, dict) or kind not in document:
        raise PipelineError(f"{source}: template {item['template']!r} is used for {kind} but has no {kind!r}")
    result.references.append(Reference(source, target, kind))
    return target


def _names(node: Any) -> list[str]:
    if node is None:
        return []
    if isinstance(node, str):
        return [node] if node else []
    return [str(n) for n in node]


def dependency_problems(stages: list[dict[str, Any]]) -> list[str]:
    """Every stage's dependsOn names a stage; every job's names a job of its stage; no cycles."""
    problems = []
    names = [str(s.get("stage")) for s in stages]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"stage {name!r} is defined more than once")
    graph: dict[str, list[str]] = {}
    for stage in stages:
        name = str(stage.get("stage"))
        depends = _names(stage.get("dependsOn"))
        graph[name] = depends
        problems += [f"stage {name!r} depends on {d!r}, which is no stage" for d in depends if d not in names]
        jobs = [j for j in _items(stage.get("jobs")) if "template" not in j]
        job_names = [str(j.get("job") or j.get("deployment")) for j in jobs]
        for job in jobs:
            job_name = str(job.get("job") or job.get("deployment"))
            problems += [f"stage {name!r}: job {job_name!r} depends on {d!r}, which is no job of the stage"
                         for d in _names(job.get("dependsOn")) if d not in job_names]
    seen: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if seen.get(node) == 1:
            problems.append("dependency cycle: " + " -> ".join([*path, node]))
            return
        if seen.get(node) == 2:
            return
        seen[node] = 1
        for dep in graph.get(node, []):
            if dep in graph:
                visit(dep, [*path, node])
        seen[node] = 2

    for node in graph:
        visit(node, [])
    return problems
