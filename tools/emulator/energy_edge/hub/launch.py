"""Start a module with the environment an emulator's hub.json gives it (local development, compose).

On IoT Edge, edgeAgent puts the `IOTEDGE_*` variables into a module's container. Against the
emulator, the emulator writes them into `hub.json` (in compose, on a shared volume); this
launcher waits for that file, sets the module's variables and replaces itself with the module:

    python -m energy_edge.hub.launch --hub-json .edge/hub/hub.json --module battery -- python main.py

It imports only the standard library, so it also runs as a plain file where the emulator is not installed:
compose mounts this file into each module's container (deployment/docker-compose.yml), whose image holds
only the module and the device base package.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def module_environment(hub_json: Path, module_id: str) -> dict[str, str]:
    """The module's variables from hub.json. Paths in them (the CA, the module's workload socket) are the
    emulator's; where the shared volume is mounted elsewhere here (compose mounts the emulator's data dir at
    /edge), they are moved to where this process sees the same files."""
    doc = json.loads(hub_json.read_text())
    modules = doc.get("modules", {})
    if module_id not in modules:
        raise SystemExit(f"{hub_json}: no module {module_id!r} (deployed: {', '.join(sorted(modules))})")
    emulator_dir = str(Path(doc["ca_cert"]).parent.parent)  # <data-dir>/tls/ca.pem
    local_dir = str(hub_json.resolve().parent)

    def here(path: str) -> str:
        return local_dir + path[len(emulator_dir):] if path.startswith(emulator_dir + "/") else path

    env: dict[str, str] = dict(modules[module_id]["env"])
    uri = env.get("IOTEDGE_WORKLOADURI", "")
    if uri.startswith("unix://"):
        env["IOTEDGE_WORKLOADURI"] = "unix://" + here(uri[len("unix://"):])
    env["EdgeModuleCACertificateFile"] = here(doc["ca_cert"])
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m energy_edge.hub.launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub-json", type=Path, required=True)
    parser.add_argument("--module", required=True, help="the module id in the deployment")
    parser.add_argument("--wait-s", type=float, default=120.0, help="how long to wait for hub.json")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the module's command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the module's command after --")
    deadline = time.monotonic() + args.wait_s
    while not args.hub_json.exists():
        if time.monotonic() > deadline:
            print(f"no {args.hub_json} after {args.wait_s:g} s: is the emulator running?", file=sys.stderr)
            return 2
        time.sleep(0.5)
    os.execvpe(command[0], command, {**os.environ, **module_environment(args.hub_json, args.module)})
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
