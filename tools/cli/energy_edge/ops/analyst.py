"""Analyst commands: what reached IoT Hub (the upstream store) and the capability-status history."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from energy_edge.hub.store import query_upstream
from energy_edge.ops.history import CapabilityHistory, events_from_routed_storage, events_from_upstream

FIELDS = ["id", "enqueuedTime", "deviceId", "moduleId", "outputName", "messageType", "properties", "body"]


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    from energy_edge.hub.cli import parse_duration_s

    return time.time() - parse_duration_s(text)


def _store(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) / "hub.db"


def cmd_telemetry_query(args: argparse.Namespace) -> int:
    try:
        records = query_upstream(_store(args), args.module, _since(args.since), args.type, args.limit)
    except FileNotFoundError as exc:
        print(f"energy-edge telemetry query: {exc}", file=sys.stderr)
        return 1
    rows = [r.to_dict() for r in records]
    out = open(args.out, "w", newline="") if args.out else sys.stdout
    try:
        if args.format == "json":
            json.dump(rows, out, indent=2)
            out.write("\n")
        elif args.format == "csv":
            writer = csv.DictWriter(out, fieldnames=FIELDS, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "properties": json.dumps(row["properties"]), "body": json.dumps(row["body"])})
        else:
            for row in rows:
                body = json.dumps(row["body"])
                out.write(f"{row['enqueuedTime']:<25} {row['moduleId'] or '':<14} {row['messageType'] or '':<17} "
                          f"{body[:90]}\n")
            out.write(f"{len(rows)} message(s)\n")
    finally:
        if args.out:
            out.close()
    return 0


def _db_url(args: argparse.Namespace) -> str:
    default = f"sqlite:///{Path(args.data_dir) / 'capability-history.db'}"
    return str(args.db or os.environ.get("DATABASE_URL") or default)


def cmd_capability_ingest(args: argparse.Namespace) -> int:
    if args.from_files:
        files = sorted(p for p in Path(args.from_files).rglob("*") if p.is_file())
        events = events_from_routed_storage(files)
    else:
        events = events_from_upstream(_store(args), _since(args.since))
    with CapabilityHistory(_db_url(args)) as history:
        new, duplicates = history.record(events)
    print(json.dumps({"read": len(events), "new": new, "duplicates": duplicates}))
    return 0


def cmd_capability_show(args: argparse.Namespace) -> int:
    with CapabilityHistory(_db_url(args)) as history:
        records = [m for m in history.microgrids() if not args.site or m["site_id"] == args.site]
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    for m in records:
        print(f"site {m['site_id']} (events {m['first_event_time']} … {m['last_event_time']})")
        for cap in ("peak_shaving", "der"):
            conflict = "  CONFLICT" if m[f"{cap}_conflict"] else ""
            print(f"  {cap.upper():<13} {m[f'{cap}_state'] or '–':<4} raw={bool(m[f'{cap}_raw'])!s:<5} "
                  f"source={m[f'{cap}_source']} at {m[f'{cap}_time']}{conflict}")
    return 0


def cmd_capability_history(args: argparse.Namespace) -> int:
    with CapabilityHistory(_db_url(args)) as history:
        events = history.events(args.site, args.capability)
    if args.json:
        print(json.dumps(events, indent=2))
        return 0
    for e in events:
        flag = " conflict" if e["conflict"] else ""
        print(f"{e['event_time']} {e['capability']:<13} {e['state']:<3} {e['source']:<12} {e['reason']}{flag}")
    return 0


def add_analyst_parsers(subparsers: Any) -> None:
    telemetry = subparsers.add_parser("telemetry", help="query what reached IoT Hub (the upstream store)")
    telemetry_sub = telemetry.add_subparsers(dest="telemetry_command", required=True)
    query = telemetry_sub.add_parser("query", help="filter by module, message type and time; table, CSV or JSON")
    query.add_argument("--data-dir", default=".edge/hub", help="the emulator's data dir (its hub.db)")
    query.add_argument("--module")
    query.add_argument("--type", help="messageType, e.g. capabilityStatus or siteSummary")
    query.add_argument("--since", help="e.g. 10m, 6h")
    query.add_argument("--limit", type=int)
    query.add_argument("--format", choices=["table", "csv", "json"], default="table")
    query.add_argument("--out", help="write to a file instead of stdout")
    query.set_defaults(func=cmd_telemetry_query)

    capability = subparsers.add_parser("capability", help="the PEAK_SHAVING / DER status history per microgrid")
    capability_sub = capability.add_subparsers(dest="capability_command", required=True)
    for name, func, help_text in (
        ("ingest", cmd_capability_ingest, "read capability events from the upstream store (idempotent)"),
        ("show", cmd_capability_show, "the latest state per microgrid"),
        ("history", cmd_capability_history, "a site's events in event-time order"),
    ):
        parser = capability_sub.add_parser(name, help=help_text)
        parser.add_argument("--data-dir", default=".edge/hub")
        parser.add_argument("--db", help="sqlite:///PATH or postgresql://… (default $DATABASE_URL, then SQLite)")
        parser.add_argument("--json", action="store_true")
        if name == "ingest":
            parser.add_argument("--since", help="only events of the last span, e.g. 1d")
            parser.add_argument("--from-files", metavar="DIR",
                                help="IoT Hub routed-storage files (JSON encoding), e.g. a downloaded container")
        if name == "show":
            parser.add_argument("--site")
        if name == "history":
            parser.add_argument("--site", required=True)
            parser.add_argument("--capability", choices=["PEAK_SHAVING", "DER"])
        parser.set_defaults(func=func)


__all__ = ["add_analyst_parsers"]
