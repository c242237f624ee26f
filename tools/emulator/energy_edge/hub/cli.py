"""The emulator's commands: `energy-edge hub` (serve) and its queries (messages, upstream, status).

Also `python -m energy_edge.hub …` where the `energy-edge` front (distribution energy-edge) is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_s(text: str) -> float:
    """`90`, `90s`, `10m`, `6h`, `1d` -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30s, 10m, 6h or 1d")
    return float(match[1]) * _UNIT_S[match[2]]


# ---------------------------------------------------------------- hub


def _hub_serve(args: argparse.Namespace) -> int:
    from energy_edge.hub.manifest import ManifestError
    from energy_edge.hub.routes import RouteError
    from energy_edge.hub.server import HubOptions, serve

    options = HubOptions(
        manifest=Path(args.manifest),
        data_dir=Path(args.data_dir),
        host=args.host,
        device_id=args.device_id,
        mqtt_port=args.mqtt_port,
        https_port=args.https_port,
        workload_port=args.workload_port,
        advertise_host=args.advertise_host,
    )
    try:
        return asyncio.run(serve(options))
    except (ManifestError, RouteError) as exc:
        print(f"energy-edge hub: {exc}", file=sys.stderr)
        return 2


def _load_hub_json(data_dir: str) -> dict[str, Any]:
    path = Path(data_dir) / "hub.json"
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
        return doc
    except FileNotFoundError:
        raise SystemExit(
            f"energy-edge: no {path}; start the emulator first (energy-edge hub --data-dir {data_dir})"
        ) from None


def _hub_messages(args: argparse.Namespace) -> int:
    from energy_edge.hub.store import query_upstream

    db_path = Path(args.data_dir) / "hub.db"
    since = time.time() - args.since if args.since is not None else None
    try:
        records = query_upstream(db_path, args.module, since, args.message_type, args.limit)
    except FileNotFoundError as exc:
        print(f"energy-edge hub messages: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump([r.to_dict() for r in records], sys.stdout, indent=2)
        print()
        return 0
    print(f"{'enqueued (UTC)':<25} {'module':<22} {'output':<12} {'type':<18} body")
    for r in records:
        body = r.body.decode("utf-8", "replace")
        body = body if len(body) <= 80 else body[:77] + "..."
        print(f"{r.enqueued_time:<25} {r.module_id or '':<22} {r.output_name or '':<12} "
              f"{r.message_type or '':<18} {body}")
    print(f"{len(records)} message(s)")
    return 0


def _admin_call(data_dir: str, method: str, path: str, body: Any = None) -> Any:
    from energy_edge.service import ServiceClient

    client = ServiceClient.from_hub_json(_load_hub_json(data_dir))
    try:
        status, answer = client.call(method, path, body)
    except OSError as exc:
        raise SystemExit(f"energy-edge: the emulator at {client.credentials.host} did not answer: {exc}") from exc
    if status >= 400:
        raise SystemExit(f"energy-edge: {method} {path} answered {status}: {answer}")
    return answer


def _hub_upstream(args: argparse.Namespace) -> int:
    status = _admin_call(args.data_dir, "POST", "/admin/upstream", {"online": args.state == "online"})
    print(json.dumps(status, indent=2))
    return 0


def _hub_status(args: argparse.Namespace) -> int:
    print(json.dumps(_admin_call(args.data_dir, "GET", "/admin/status"), indent=2))
    return 0


def add_hub_parser(sub: Any) -> None:
    hub = sub.add_parser("hub", help="run the local IoT Hub + edgeHub emulator, or query it")
    hub.set_defaults(func=_hub_serve)
    hub.add_argument("--manifest", default="deployment/deployment.template.json", help="deployment manifest")
    hub.add_argument("--host", default="127.0.0.1", help="address to listen on; any loopback address works")
    hub.add_argument("--data-dir", default=".edge/hub", help="state: certificates, identities, store, hub.json")
    hub.add_argument("--advertise-host",
                     help="host name clients use, in the certificate and hub.json (default: --host)")
    hub.add_argument("--device-id", default="edge-device", help="the edge device's id")
    hub.add_argument("--mqtt-port", type=int, default=8883, help="MQTT over TLS (the device SDK uses 8883)")
    hub.add_argument("--https-port", type=int, default=443,
                     help="HTTPS service API and module methods (module invoke_method uses 443)")
    hub.add_argument("--workload-port", type=int, default=15580, help="IoT Edge workload API over HTTP")
    hub_sub = hub.add_subparsers(dest="hub_command")

    messages = hub_sub.add_parser("messages", help="what reached the upstream store ($upstream)")
    messages.add_argument("--data-dir", default=".edge/hub")
    messages.add_argument("--module", help="only messages from this module")
    messages.add_argument("--message-type", help="only this messageType application property")
    messages.add_argument("--since", type=parse_duration_s, help="only the last span, e.g. 10m")
    messages.add_argument("--limit", type=int)
    messages.add_argument("--json", action="store_true", help="JSON for scripts")
    messages.set_defaults(func=_hub_messages)

    upstream = hub_sub.add_parser("upstream", help="take the upstream link offline or online")
    upstream.add_argument("state", choices=["online", "offline"])
    upstream.add_argument("--data-dir", default=".edge/hub")
    upstream.set_defaults(func=_hub_upstream)

    status = hub_sub.add_parser("status", help="connections, queue depth and counters")
    status.add_argument("--data-dir", default=".edge/hub")
    status.set_defaults(func=_hub_status)




def main(argv: list[str] | None = None) -> int:
    """`python -m energy_edge.hub [serve options | messages | upstream | status]`."""
    parser = argparse.ArgumentParser(prog="python -m energy_edge.hub")
    add_hub_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["hub", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    code: int = args.func(args)
    return code
