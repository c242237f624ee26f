"""Operator commands over the IoT Hub service API (azure-iot-hub): twins, methods, deployments.

The same commands work against Azure and the local emulator. A twin change is validated against the
module's own configuration model *before* it is sent, the exact patch is shown, and the module's
reported outcome (`applied` / `rejected` with its errors) is waited for and shown.

Connection: `--connection-string` or `IOTHUB_CONNECTION_STRING` (a service policy's connection string)
and `--device` or `IOTHUB_DEVICE_ID`; against the emulator `--hub-json PATH` gives both and its CA.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from energy_edge.hub.errors import parse_error_body
from energy_edge.hub.twins import merge_patch, removal_patch
from energy_edge.service import ConnectionStringError, parse_connection_string


class OperatorError(Exception):
    """A problem the operator can fix; printed without a traceback, exit status 1."""


@dataclass(frozen=True)
class Connection:
    connection_string: str
    device_id: str
    hostname: str


def resolve_connection(args: argparse.Namespace, need_device: bool = True) -> Connection:
    connection_string = args.connection_string or os.environ.get("IOTHUB_CONNECTION_STRING")
    device_id = args.device or os.environ.get("IOTHUB_DEVICE_ID")
    if args.hub_json:
        try:
            hub = json.loads(Path(args.hub_json).read_text())
        except FileNotFoundError:
            raise OperatorError(f"no {args.hub_json}: is the emulator running (energy-edge hub / run)?") from None
        connection_string = connection_string or hub["service_connection_string"]
        device_id = device_id or hub["device_id"]
        os.environ["REQUESTS_CA_BUNDLE"] = hub["ca_cert"]  # the service SDK trusts the emulator's CA
    if not connection_string:
        raise OperatorError("no connection string: give --connection-string, set IOTHUB_CONNECTION_STRING, "
                            "or --hub-json for the local emulator")
    if not device_id and need_device:
        raise OperatorError("no device: give --device or set IOTHUB_DEVICE_ID")
    try:
        credentials = parse_connection_string(connection_string)
    except ConnectionStringError as exc:
        raise OperatorError(str(exc)) from None
    return Connection(connection_string, device_id or "", credentials.host)


def registry(conn: Connection) -> Any:
    from azure.iot.hub import IoTHubRegistryManager

    return IoTHubRegistryManager.from_connection_string(conn.connection_string)


def service_error(exc: Exception, what: str) -> OperatorError:
    """Turn SDK errors into one line an operator can act on."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    detail = ""
    if response is not None:
        try:
            body = response.json()
            inner = parse_error_body(body)  # IoT Hub: Message is a JSON string with the numeric errorCode
            detail = f"{inner.get('message', '')} (error {inner.get('errorCode')})" if inner else \
                body.get("message") or body.get("Message") or ""
        except (ValueError, AttributeError):
            detail = (response.text or "")[:200]
    if status == 401:
        return OperatorError(f"{what}: the hub refused the credentials (401): check the connection string's key")
    if status == 404:
        return OperatorError(f"{what}: not found (404): {detail or 'unknown device or module'}")
    if status is not None:
        return OperatorError(f"{what}: the hub answered {status}: {detail}")
    return OperatorError(f"{what}: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------- configuration models


def config_models() -> dict[str, type[BaseModel]]:
    """Module id → its twin configuration model (registered as `config.<module id>`)."""
    from energy_edge_base.schemas import discover_extra_models

    return {name.removeprefix("config."): model for name, model in discover_extra_models().items()
            if name.startswith("config.")}


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """`a.b=1 name=text flag=true devices=[...] old=null` → a merge patch (values are JSON when they parse)."""
    patch: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise OperatorError(f"{pair!r} is not key=value")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        node = patch
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise OperatorError(f"{key}: {part} is set twice")
        node[parts[-1]] = value
    return patch


def model_for(module_id: str) -> type[BaseModel]:
    models = config_models()
    if module_id not in models:
        raise OperatorError(f"unknown module {module_id!r}; modules with a configuration: {', '.join(sorted(models))}")
    return models[module_id]


def validate_change(module_id: str, desired: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The desired document after `patch`, validated by the module's model; errors name the field."""
    model = model_for(module_id)
    merged = merge_patch({k: v for k, v in desired.items() if not k.startswith("$")}, patch)
    try:
        model.model_validate(merged)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}" for e in exc.errors()]
        raise OperatorError(f"the change is not valid for {module_id}; nothing was sent:\n" + "\n".join(lines)) \
            from None
    return merged


# ---------------------------------------------------------------- commands


def get_twin(conn: Connection, module_id: str) -> Any:
    try:
        return registry(conn).get_module_twin(conn.device_id, module_id)
    except Exception as exc:
        raise service_error(exc, f"twin of {module_id}") from exc


def wait_for_report(conn: Connection, module_id: str, version: int, timeout_s: float) -> dict[str, Any] | None:
    """The module's reported `config` once it reports on desired `version` (None if it does not in time)."""
    deadline = time.monotonic() + timeout_s
    manager = registry(conn)
    while time.monotonic() < deadline:
        twin = manager.get_module_twin(conn.device_id, module_id)
        config = (twin.properties.reported or {}).get("config") or {}
        if isinstance(config.get("desired_version"), int) and config["desired_version"] >= version:
            return dict(config)
        time.sleep(0.25)
    return None


def send_patch(conn: Connection, module_id: str, patch: dict[str, Any], twin: Any, wait_s: float,
               as_json: bool) -> int:
    from azure.iot.hub.models import Twin, TwinProperties

    try:
        updated = registry(conn).update_module_twin(conn.device_id, module_id,
                                                    Twin(properties=TwinProperties(desired=patch)), twin.etag)
    except Exception as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 412:
            raise OperatorError(f"{module_id}'s twin changed while you edited it (etag mismatch); run it again") \
                from exc
        raise service_error(exc, f"update of {module_id}") from exc
    version = int(updated.properties.desired.get("$version", 0))
    report = wait_for_report(conn, module_id, version, wait_s) if wait_s > 0 else None
    result = {"module": module_id, "patch": patch, "desired_version": version, "report": report}
    if as_json:
        print(json.dumps(result, indent=2))
    elif report is None:
        print(f"sent desired v{version}; {module_id} did not report on it within {wait_s:g} s (is it running?)")
    else:
        print(f"{module_id} {report['status']} desired v{version}")
        for error in report.get("errors") or []:
            print(f"  {error['field']}: {error['message']}")
    if report is not None and report.get("status") == "rejected":
        return 3
    return 0 if report is not None or wait_s == 0 else 4


def cmd_twin_show(args: argparse.Namespace) -> int:
    conn = resolve_connection(args)
    twin = get_twin(conn, args.module)
    doc = {"module": args.module, "connection_state": twin.connection_state, "etag": twin.etag,
           "desired": twin.properties.desired, "reported": twin.properties.reported}
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    config = (twin.properties.reported or {}).get("config", {})
    table = Table(title=f"{args.module} on {conn.device_id} ({twin.connection_state})")
    for column in ("setting", "desired", "applied"):
        table.add_column(column)
    applied = config.get("applied", {})
    for key in sorted(set(twin.properties.desired) | set(applied)):
        if key.startswith("$"):
            continue
        table.add_row(key, json.dumps(twin.properties.desired.get(key)), json.dumps(applied.get(key)))
    console = Console()
    console.print(table)
    console.print(f"status: {config.get('status', '–')}, desired v{twin.properties.desired.get('$version')}, "
                  f"applied v{config.get('applied_version')}")
    for error in config.get("errors") or []:
        console.print(f"  [red]{error['field']}: {error['message']}[/]")
    return 0


def cmd_twin_set(args: argparse.Namespace) -> int:
    conn = resolve_connection(args)
    patch = parse_assignments(args.assignments)
    model_for(args.module)  # an unknown module is named before anything goes over the network
    twin = get_twin(conn, args.module)
    validate_change(args.module, dict(twin.properties.desired), patch)
    if not args.json:
        print(f"patch for {args.module}: {json.dumps(patch)}")
    if args.dry_run:
        return 0
    return send_patch(conn, args.module, patch, twin, args.wait, args.json)


def cmd_twin_edit(args: argparse.Namespace) -> int:
    conn = resolve_connection(args)
    model_for(args.module)
    twin = get_twin(conn, args.module)
    current = {k: v for k, v in twin.properties.desired.items() if not k.startswith("$")}
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w+", suffix=f".{args.module}.json", delete=False) as handle:
        json.dump(current, handle, indent=2)
        path = Path(handle.name)
    try:
        while True:
            subprocess.run([*editor.split(), str(path)], check=False)
            try:
                edited = json.loads(path.read_text())
                if not isinstance(edited, dict):
                    raise OperatorError("the document must stay a JSON object")
                validate_change(args.module, {}, edited)
                break
            except (ValueError, OperatorError) as exc:
                print(f"{exc}", file=sys.stderr)
                if not sys.stdin.isatty() or input("edit again? [Y/n] ").strip().lower() == "n":
                    raise OperatorError("nothing was sent") from None
        patch = removal_patch(current, edited)
        if not patch:
            print("no change")
            return 0
        print(f"patch for {args.module}: {json.dumps(patch)}")
        return send_patch(conn, args.module, patch, twin, args.wait, args.json)
    finally:
        path.unlink(missing_ok=True)


def cmd_method_call(args: argparse.Namespace) -> int:
    from azure.iot.hub.models import CloudToDeviceMethod

    conn = resolve_connection(args)
    try:
        payload = json.loads(args.payload) if args.payload else None
    except ValueError as exc:
        raise OperatorError(f"--payload is not JSON: {exc}") from None
    call = CloudToDeviceMethod(method_name=args.name, payload=payload, response_timeout_in_seconds=args.timeout,
                               connect_timeout_in_seconds=args.connect_timeout)
    try:
        result = registry(conn).invoke_device_module_method(conn.device_id, args.module, call)
    except Exception as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 404:
            raise OperatorError(f"{args.module} is not connected (or does not exist on {conn.device_id})") from exc
        if status == 504:
            raise OperatorError(f"{args.module} did not answer {args.name} within {args.timeout} s") from exc
        raise service_error(exc, f"{args.module}.{args.name}") from exc
    print(json.dumps({"status": result.status, "payload": result.payload}, indent=None if args.json else 2))
    return 0 if result.status == 200 else 2


def _deployment_content(args: argparse.Namespace) -> dict[str, Any]:
    """The manifest's modulesContent with ${NAME} expanded (`.env` beside it, the environment, --env-file)."""
    from energy_edge.hub.manifest import expand_variables, read_env_file

    path = Path(args.manifest)
    try:
        raw = path.read_text()
    except FileNotFoundError:
        raise OperatorError(f"{path} not found") from None
    env = {**read_env_file(path.parent / ".env"), **os.environ}
    for env_file in args.env_file or []:
        if not Path(env_file).is_file():
            raise OperatorError(f"env file {env_file} not found")
        env.update(read_env_file(Path(env_file)))
    text, missing = expand_variables(raw, env)
    unresolved = [m for m in missing if not m.startswith("MODULES")]
    if unresolved:
        raise OperatorError(f"{path}: variables not set: {', '.join(unresolved)}")
    if "${MODULES." in text:
        print(f"note: {path.name} still has image placeholders; IoT Edge needs real images "
              "(energy-edge manifest build), the emulator does not", file=sys.stderr)
    try:
        content = json.loads(text)["modulesContent"]
    except (ValueError, KeyError, TypeError) as exc:
        raise OperatorError(f"{path} is not a deployment manifest: {exc}") from None
    if not isinstance(content, dict):
        raise OperatorError(f"{path}: modulesContent must be an object")
    return content


def cmd_deploy(args: argparse.Namespace) -> int:
    from azure.iot.hub import IoTHubConfigurationManager
    from azure.iot.hub.models import Configuration, ConfigurationContent

    if args.list or args.delete:
        return _deployments_list_or_delete(args)
    if not args.manifest:
        raise OperatorError("give a manifest to deploy, or --list / --delete ID")
    content = _deployment_content(args)
    layered = "properties.desired" not in content.get("$edgeAgent", {})
    automatic = args.deployment_id is not None
    if automatic and not args.target_condition:
        raise OperatorError("--deployment-id needs --target-condition (e.g. \"tags.site='berlin-01'\")")
    if not automatic and (args.target_condition or args.priority is not None):
        raise OperatorError("--target-condition and --priority make an automatic deployment: give --deployment-id")
    if not automatic and layered:
        raise OperatorError(f"{args.manifest} is a layered deployment: create it with --deployment-id, "
                            "--target-condition and --priority (a device takes layers only on top of a base)")
    # An automatic deployment targets devices by its condition, not by id.
    conn = resolve_connection(args, need_device=not automatic)
    manager = IoTHubConfigurationManager.from_connection_string(conn.connection_string)
    if not automatic:
        try:
            manager.apply_configuration_on_edge_device(conn.device_id, ConfigurationContent(modules_content=content))
        except Exception as exc:
            raise service_error(exc, f"deployment to {conn.device_id}") from exc
        print(f"applied {Path(args.manifest).name} to {conn.device_id}: {len(content) - 2} module twin(s)")
        return 0
    labels = dict(pair.split("=", 1) for pair in args.label or [] if "=" in pair)
    config = Configuration(id=args.deployment_id, schema_version="1.0", labels=labels,
                           content=ConfigurationContent(modules_content=content),
                           target_condition=args.target_condition, priority=args.priority or 0)
    try:
        created = manager.create_configuration(config)
    except Exception as exc:
        raise service_error(exc, f"deployment {args.deployment_id}") from exc
    kind = "layered deployment" if layered else "deployment"
    if args.json:
        print(json.dumps({"id": created.id, "layered": layered, "targetCondition": created.target_condition,
                          "priority": created.priority}))
    else:
        print(f"created {kind} {created.id}: {created.target_condition!s} at priority {created.priority}")
    return 0


def _deployments_list_or_delete(args: argparse.Namespace) -> int:
    from azure.iot.hub import IoTHubConfigurationManager

    conn = resolve_connection(args, need_device=False)
    manager = IoTHubConfigurationManager.from_connection_string(conn.connection_string)
    if args.delete:
        try:
            manager.delete_configuration(args.delete)
        except Exception as exc:
            raise service_error(exc, f"deployment {args.delete}") from exc
        print(f"deleted deployment {args.delete}")
        return 0
    try:
        configs = manager.get_configurations()
    except Exception as exc:
        raise service_error(exc, "deployments") from exc
    rows = [{"id": c.id, "kind": _deployment_kind(c), "targetCondition": c.target_condition,
             "priority": c.priority, "applied": _applied_count(c) > 0} for c in configs]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'id':<32} {'kind':<8} {'priority':>8} {'applied':<8} target")
    for row in rows:
        applied = "yes" if row["applied"] else "no"
        print(f"{row['id']:<32} {row['kind']:<8} {row['priority']:>8} {applied:<8} {row['targetCondition']}")
    return 0


def _applied_count(config: Any) -> int:
    """IoT Hub's system metric: how many devices run this deployment (on the emulator, its device or none)."""
    results = (config.system_metrics.results if config.system_metrics else None) or {}
    return int(results.get("appliedCount", 0))


def _deployment_kind(config: Any) -> str:
    """base / layered (IoT Edge deployments) or device (automatic device management)."""
    modules_content = config.content.modules_content if config.content else None
    if not modules_content:
        return "device"
    return "base" if "properties.desired" in (modules_content.get("$edgeAgent") or {}) else "layered"


def cmd_device_tag(args: argparse.Namespace) -> int:
    from azure.iot.hub.models import Twin

    conn = resolve_connection(args)
    tags = parse_assignments(args.assignments)
    try:
        twin = registry(conn).update_twin(conn.device_id, Twin(tags=tags))
    except Exception as exc:
        raise service_error(exc, f"tags of {conn.device_id}") from exc
    print(json.dumps(twin.tags, indent=None if args.json else 2))
    return 0


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connection-string", help="service connection string (default $IOTHUB_CONNECTION_STRING)")
    parser.add_argument("--device", help="edge device id (default $IOTHUB_DEVICE_ID)")
    parser.add_argument("--hub-json", help="the local emulator's hub.json: connection, device and CA")
    parser.add_argument("--json", action="store_true", help="JSON for scripts")


def _guarded(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = func(args)
            return code
        except OperatorError as exc:
            print(f"energy-edge: {exc}", file=sys.stderr)
            return 1

    return run


def add_operator_parsers(subparsers: Any) -> None:
    twin = subparsers.add_parser("twin", help="show or change a module's twin (validated before sending)")
    twin_sub = twin.add_subparsers(dest="twin_command", required=True)
    show = twin_sub.add_parser("show", help="desired and applied configuration")
    show.add_argument("module")
    _connection_options(show)
    show.set_defaults(func=_guarded(cmd_twin_show))
    set_ = twin_sub.add_parser("set", help="change settings: key=value … (JSON values; a.b=… nests; key=null deletes)")
    set_.add_argument("module")
    set_.add_argument("assignments", nargs="+")
    set_.add_argument("--dry-run", action="store_true", help="validate and show the patch, send nothing")
    set_.add_argument("--wait", type=float, default=15.0, help="seconds to wait for the module's report (0: don't)")
    _connection_options(set_)
    set_.set_defaults(func=_guarded(cmd_twin_set))
    edit = twin_sub.add_parser("edit", help="edit the desired configuration in $EDITOR")
    edit.add_argument("module")
    edit.add_argument("--wait", type=float, default=15.0)
    _connection_options(edit)
    edit.set_defaults(func=_guarded(cmd_twin_edit))

    method = subparsers.add_parser("method", help="call a module's direct method")
    method_sub = method.add_subparsers(dest="method_command", required=True)
    call = method_sub.add_parser("call", help="call MODULE NAME with --payload JSON")
    call.add_argument("module")
    call.add_argument("name")
    call.add_argument("--payload", help="JSON payload")
    call.add_argument("--timeout", type=int, default=30, help="response timeout, seconds (5..300)")
    call.add_argument("--connect-timeout", type=int, default=0, help="wait this long for the module to connect")
    _connection_options(call)
    call.set_defaults(func=_guarded(cmd_method_call))

    deploy = subparsers.add_parser(
        "deploy", help="apply a deployment manifest to an edge device, or create an automatic (layered) deployment")
    deploy.add_argument("manifest", nargs="?", help="deployment manifest or template (base or layered)")
    deploy.add_argument("--list", action="store_true", help="list the hub's automatic deployments")
    deploy.add_argument("--delete", metavar="ID", help="delete an automatic deployment")
    deploy.add_argument("--env-file", action="append", help="${NAME} values, e.g. deployment/sites/prod/<site>.env")
    deploy.add_argument("--deployment-id", help="create an automatic deployment with this id instead of applying")
    deploy.add_argument("--target-condition", help="devices it targets, e.g. \"tags.environment='dev'\"")
    deploy.add_argument("--priority", type=int, help="higher wins: the base of highest priority, layers in order")
    deploy.add_argument("--label", action="append", help="key=value label of the deployment")
    _connection_options(deploy)
    deploy.set_defaults(func=_guarded(cmd_deploy))

    tag = subparsers.add_parser("tag", help="set the edge device's twin tags (deployments target devices by tags)")
    tag.add_argument("assignments", nargs="+", help="key=value … (JSON values; a.b=… nests; key=null deletes)")
    _connection_options(tag)
    tag.set_defaults(func=_guarded(cmd_device_tag))
