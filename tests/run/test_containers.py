"""`energy-edge run --containers`: the site as containers from the images `make images` builds, as edgeAgent runs
them, and the clear refusals of bad input with nothing left behind."""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from energy_edge.run.containers import (
    DATA_DIR_LABEL,
    MODULE_LABEL,
    OWNER,
    OWNER_LABEL,
    ContainerRunError,
    merge_create_options,
    parse_create_options,
)
from tests.support import ENERGY_EDGE, REPO, HubProcess, next_loopback, registry_manager

pytestmark = pytest.mark.integration

MANIFEST = REPO / "deployment" / "deployment.template.json"
CONTAINER_MODULES = {"microgrid-controller", "solar", "battery", "boiler", "controller", "telemetry", "console"}


def _docker() -> Any:
    import docker

    return docker.from_env(timeout=120)


def labelled(client: Any, data_dir: Path) -> tuple[list[Any], list[Any]]:
    """Containers and volumes a run on `data_dir` created (and must have removed)."""
    filters = {"label": [f"{OWNER_LABEL}={OWNER}", f"{DATA_DIR_LABEL}={data_dir.resolve()}"]}
    # ignore_removed: a container the run removes between the listing and its inspection is not an error
    return (client.containers.list(all=True, filters=filters, ignore_removed=True),
            client.volumes.list(filters=filters))


def wait_for(predicate: Callable[[], Any], what: str, timeout_s: float, run: subprocess.Popen[str] | None = None,
             output: list[str] | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if run is not None:
            assert run.poll() is None, f"the run ended while waiting for {what}:\n" + "".join(output or [])
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n" + "".join((output or [])[-40:])
        time.sleep(0.2)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start_run(tmp_path: Path, *args: str, manifest: Path = MANIFEST, host: str | None = None
              ) -> tuple[subprocess.Popen[str], list[str], Path]:
    data_dir = tmp_path / "edge"
    run = subprocess.Popen(
        [*ENERGY_EDGE, "run", "--containers", "--no-ui", "--manifest", str(manifest), "--data-dir", str(data_dir),
         "--host", host or next_loopback(), *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(run.stdout or []), daemon=True).start()
    return run, output, data_dir


def test_a_site_of_containers_holds_the_limit_and_is_run_as_edge_agent_runs_it(
        module_images: list[dict[str, Any]], tmp_path: Path) -> None:
    client = _docker()
    # 30 simulated minutes (two billing quarters) of the default scenario, 15 times faster than real time
    run, output, data_dir = start_run(tmp_path, "--duration", "30m", "--accel", "15",
                                      "--summary-out", str(tmp_path / "summary.json"), "--plot",
                                      str(tmp_path / "run.png"))
    state_file = data_dir / "run.json"
    try:
        def all_running() -> dict[str, Any] | None:
            if not state_file.exists():
                return None
            processes: dict[str, Any] = json.loads(state_file.read_text())["processes"]
            ok = CONTAINER_MODULES <= set(processes) and all(
                processes[m]["state"] == "running" for m in CONTAINER_MODULES)
            return processes if ok else None

        processes = wait_for(all_running, "every module container running", 90, run, output)
        containers = {c.labels[MODULE_LABEL]: c for c in labelled(client, data_dir)[0]}
        assert set(containers) == CONTAINER_MODULES

        # hardened as the images and the runner promise
        for name, container in containers.items():
            container.reload()
            host_config = container.attrs["HostConfig"]
            assert container.attrs["Config"]["User"] == "app", name
            assert host_config["ReadonlyRootfs"] is True and host_config["NetworkMode"] == "host", name
            assert host_config["Init"] is True, name  # docker-init as PID 1 forwards SIGTERM
            assert host_config["RestartPolicy"]["Name"] == "no", name  # the runner restarts, as edgeAgent does
            uid = container.exec_run(["id", "-u"]).output.decode().strip()
            assert uid == "10001", name
            assert container.exec_run(["touch", "/app/written"]).exit_code != 0, f"{name}: root fs writable"
            assert container.exec_run(["touch", "/app/data/written"]).exit_code == 0, f"{name}: state not writable"
        # createOptions merged: the manifest's log options and the controller's named volume (made per run)
        assert containers["telemetry"].attrs["HostConfig"]["LogConfig"]["Config"] == {"max-size": "10m",
                                                                                      "max-file": "3"}
        binds = containers["controller"].attrs["HostConfig"]["Binds"]
        assert any(b.endswith("-energy-edge-controller:/app/data") for b in binds), binds

        # every module applied its twin's desired properties
        hub = HubProcess(MANIFEST, data_dir / "hub")
        manager = registry_manager(hub)
        device_id = hub.hub_json["device_id"]

        def twin_applied(module_id: str) -> bool:
            reported = manager.get_module_twin(device_id, module_id).properties.reported
            return bool(reported.get("config", {}).get("status") == "applied")

        for module_id in sorted(CONTAINER_MODULES):
            wait_for(lambda m=module_id: twin_applied(m), f"{module_id}'s twin applied", 60, run, output)

        # a direct method through the service SDK reaches the solar container and changes the inverter's register
        from azure.iot.hub.models import CloudToDeviceMethod

        endpoints = json.loads((data_dir / "endpoints.json").read_text())

        def sim_state() -> dict[str, Any]:
            with urllib.request.urlopen(f"{endpoints['sim_admin_url']}/state", timeout=5) as response:
                state: dict[str, Any] = json.load(response)
                return state

        def call(module_id: str, method: str, payload: dict[str, Any]) -> Any:
            return manager.invoke_device_module_method(device_id, module_id, CloudToDeviceMethod(
                method_name=method, payload=payload, response_timeout_in_seconds=15, connect_timeout_in_seconds=10))

        result = call("solar", "set_output", {"percent": 40})
        assert result.status == 200, result.payload
        assert sim_state()["devices"]["pv-1"]["wmaxlim_pct"] == pytest.approx(40)
        assert call("solar", "set_output", {"percent": 100}).status == 200

        # SIGTERM: the battery goes to its safe state (0 kW) and its container exits 0 within the grace period
        battery = containers["battery"]
        started = time.monotonic()
        battery.stop(timeout=10)
        stop_s = time.monotonic() - started
        battery.reload()
        assert battery.attrs["State"]["ExitCode"] == 0 and stop_s < 10, (battery.attrs["State"], stop_s)
        assert abs(sim_state()["devices"]["bess-1"]["command_kw"]) < 0.01
        assert b"safe state" in battery.logs()

        # a container killed the hard way is restarted per its policy (always), with backoff
        containers["solar"].kill()

        def restarted(module_id: str) -> bool:
            doc = json.loads(state_file.read_text())["processes"][module_id]
            return bool(doc["restarts"] >= 1 and doc["state"] == "running")

        for module_id in ("battery", "solar"):
            wait_for(lambda m=module_id: restarted(m), f"{module_id} restarted", 30, run, output)
        assert run.wait(timeout=300) == 0, "".join(output)
    finally:
        if run.poll() is None:
            run.terminate()
            run.wait(timeout=60)

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["violations"] == 0, summary["violation_quarters"]
    assert summary["peak_import_kw"] <= summary["import_limit_kw"] + 0.5
    assert summary["capability_status"]["PEAK_SHAVING"]["state"] in ("ON", "OFF")  # capabilityStatus upstream
    assert summary["upstream_messages"] > 0
    assert summary["modules"]["solar"]["exit_codes"][0] == 137  # SIGKILL
    assert (tmp_path / "run.png").stat().st_size > 10_000
    # the run's own stop: SIGTERM, every module exits 0 within its grace period
    final = json.loads(state_file.read_text())["processes"]
    for module_id in CONTAINER_MODULES:
        doc = final[module_id]
        assert doc["exit_codes"][-1] == 0 and doc["stop_s"] < doc["grace_s"], (module_id, doc)
    # nothing is left: no container, no volume, no emulator or simulator process
    assert labelled(client, data_dir) == ([], [])
    for name, process in processes.items():
        if process.get("pid"):
            assert not alive(process["pid"]), f"{name} (pid {process['pid']}) still running"


@pytest.mark.parametrize(
    ("options", "check"),
    [
        # the module's env and IOTEDGE_* win over createOptions.Env; createOptions' own variables stay
        ({"Env": ["A=from-options", "B=kept"]},
         lambda body: {"A=from-module", "B=kept", "IOTEDGE_MODULEID=m"} <= set(body["Env"])),
        # createOptions' labels are kept beside the run's
        ({"Labels": {"site": "s1"}}, lambda body: body["Labels"] == {"site": "s1", "run": "r"}),
        # a named volume in Binds becomes the run's own; the module's state volume is not added twice
        ({"HostConfig": {"Binds": ["energy-edge-controller:/app/data"]}},
         lambda body: body["HostConfig"]["Binds"] == ["run-energy-edge-controller:/app/data"]),
        # a host path bind is kept as it is, and the state volume is added
        ({"HostConfig": {"Binds": ["/etc/site:/etc/site:ro"]}},
         lambda body: body["HostConfig"]["Binds"] == ["/etc/site:/etc/site:ro", "run-state:/app/data"]),
        # hardening only where createOptions say nothing
        ({"HostConfig": {"ReadonlyRootfs": False, "Init": False}},
         lambda body: body["HostConfig"]["ReadonlyRootfs"] is False and body["HostConfig"]["Init"] is False
         and body["HostConfig"]["CapDrop"] == ["ALL"]),
        ({}, lambda body: body["HostConfig"]["ReadonlyRootfs"] is True and "/tmp" in body["HostConfig"]["Tmpfs"]),
        # log options as the manifest gives them
        ({"HostConfig": {"LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}}}},
         lambda body: body["HostConfig"]["LogConfig"]["Config"] == {"max-size": "1m"}),
        # the runner restarts (edgeAgent does); Docker's policy and the network are the run's
        ({"HostConfig": {"RestartPolicy": {"Name": "always"}, "NetworkMode": "azure-iot-edge"}},
         lambda body: body["HostConfig"]["RestartPolicy"] == {"Name": "no"}
         and body["HostConfig"]["NetworkMode"] == "host"),
    ],
    ids=["env", "labels", "named volume", "host path", "rootfs as asked", "hardened", "log config", "restart"],
)
def test_create_options_merge_as_edge_agent_merges_them(options: dict[str, Any],
                                                       check: Callable[[dict[str, Any]], bool]) -> None:
    body = merge_create_options(parse_create_options("m", {"createOptions": options}), "img:1",
                                {"A": "from-module", "IOTEDGE_MODULEID": "m"}, {"run": "r"},
                                {"": "run-state", "energy-edge-controller": "run-energy-edge-controller"})
    assert body["Image"] == "img:1"
    assert check(body), body


def test_create_options_split_over_numbered_keys_are_joined() -> None:
    """edgeAgent's createOptions01… for options longer than a twin string allows."""
    settings = {"createOptions": '{"Env": ["A=', "createOptions01": '1"]}'}
    assert parse_create_options("m", settings) == {"Env": ["A=1"]}


def test_create_options_that_are_not_an_object_are_refused() -> None:
    with pytest.raises(ContainerRunError, match="module m: createOptions must be an object, not list"):
        parse_create_options("m", {"createOptions": "[]"})


def _manifest_with(tmp_path: Path, module_id: str, change: Callable[[dict[str, Any]], None]) -> Path:
    doc = json.loads(MANIFEST.read_text())
    module = doc["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"][module_id]
    change(module)
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(doc))
    (tmp_path / ".env").write_text((MANIFEST.parent / ".env.example").read_text())
    return path


def _set_image(image: str) -> Callable[[dict[str, Any]], None]:
    return lambda module: module["settings"].__setitem__("image", image)


def _set_create_options(options: Any) -> Callable[[dict[str, Any]], None]:
    return lambda module: module["settings"].__setitem__("createOptions", copy.deepcopy(options))


@pytest.mark.parametrize(
    ("module_id", "change", "message"),
    [
        ("battery", _set_image("localhost/no-such-module:0.0.0-amd64"),
         "module battery: image localhost/no-such-module:0.0.0-amd64 not found"),
        ("boiler", _set_create_options({"HostConfig": {"Binds": "state:/app/data"}}),
         "module boiler: createOptions.HostConfig.Binds must be list, not str"),
        ("solar", _set_create_options('{"HostConfig": {'), "module solar: createOptions is not valid JSON"),
        ("solar", _set_create_options({"HostConfg": {}}),
         "module solar: createOptions.HostConfg is not a Docker container-create option"),
        ("telemetry", _set_create_options({"HostConfig": {"PortBindings": {"9600/tcp": [{"HostPort": "x"}]}}}),
         "module telemetry: createOptions.HostConfig.PortBindings['9600/tcp']: HostPort 'x' is not a port number"),
    ],
    ids=["missing image", "Binds not a list", "createOptions not JSON", "unknown option", "bad port"],
)
def test_bad_input_is_refused_naming_the_module_and_nothing_starts(
        module_images: list[dict[str, Any]], tmp_path: Path, module_id: str,
        change: Callable[[dict[str, Any]], None], message: str) -> None:
    manifest = _manifest_with(tmp_path, module_id, change)
    run, output, data_dir = start_run(tmp_path, "--duration", "5m", manifest=manifest)
    assert run.wait(timeout=60) == 2
    text = "".join(output)
    assert message in text, text
    assert "Traceback" not in text
    assert labelled(_docker(), data_dir) == ([], [])
    assert not (data_dir / "hub" / "hub.json").exists()  # not even the emulator was started


def test_a_port_already_taken_is_refused_naming_the_module(module_images: list[dict[str, Any]],
                                                           tmp_path: Path) -> None:
    host = next_loopback()
    with socket.socket() as taken:
        taken.bind((host, 9600))
        taken.listen()
        run, output, data_dir = start_run(tmp_path, "--duration", "5m", host=host)
        assert run.wait(timeout=60) == 2
    text = "".join(output)
    assert f"module telemetry: port 9600 (9600/tcp) is already taken on {host}" in text, text
    assert labelled(_docker(), data_dir) == ([], [])


def test_leftovers_of_a_crashed_run_are_removed_before_the_next(module_images: list[dict[str, Any]],
                                                                tmp_path: Path) -> None:
    """A runner killed with SIGKILL cannot clean up; the next run on the same data directory does, first."""
    client = _docker()
    # the boiler's desired status is "stopped": its container is created, not started (as edgeAgent does)
    stopped = _manifest_with(tmp_path, "boiler", lambda module: module.__setitem__("status", "stopped"))
    run, output, data_dir = start_run(tmp_path, "--duration", "2h", "--accel", "1", manifest=stopped)
    orphans: dict[str, int] = {}
    try:
        wait_for(lambda: len(labelled(client, data_dir)[0]) == len(CONTAINER_MODULES), "the containers", 90, run,
                 output)
        boiler = next(c for c in labelled(client, data_dir)[0] if c.labels[MODULE_LABEL] == "boiler")
        assert boiler.status == "created"
        run.kill()
        run.wait(timeout=30)
        processes = json.loads((data_dir / "run.json").read_text())["processes"]
        orphans = {name: p["pid"] for name, p in processes.items() if p.get("pid")}
        assert set(orphans) == {"simulator", "edgeHub"} and all(alive(pid) for pid in orphans.values())
        left_containers, left_volumes = labelled(client, data_dir)
        assert left_containers and left_volumes  # what a crash leaves behind
        # the next run refuses bad input but sweeps first: the leftovers are gone
        manifest = _manifest_with(tmp_path, "battery", _set_image("localhost/no-such-module:0.0.0-amd64"))
        second = subprocess.run(
            [*ENERGY_EDGE, "run", "--containers", "--no-ui", "--manifest", str(manifest), "--data-dir",
             str(data_dir), "--host", next_loopback()], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "removing energy-edge-" in second.stdout + second.stderr
        assert labelled(client, data_dir) == ([], [])
        # and the emulator and simulator the killed runner had started (in their own sessions) are stopped
        for name, pid in orphans.items():
            wait_for(lambda p=pid: not alive(p), f"the orphaned {name} stopped", 15)
    finally:
        if run.poll() is None:
            run.kill()
        for pid in orphans.values():
            if alive(pid):
                os.kill(pid, 9)
        for container in labelled(client, data_dir)[0]:
            container.remove(force=True)


def test_ctrl_c_stops_the_site_and_removes_everything(module_images: list[dict[str, Any]], tmp_path: Path) -> None:
    client = _docker()
    run, output, data_dir = start_run(tmp_path, "--duration", "2h", "--accel", "1")
    try:
        wait_for(lambda: len(labelled(client, data_dir)[0]) == len(CONTAINER_MODULES), "the containers", 90, run,
                 output)
        # once every module has applied its configuration (its SIGTERM handler is in place since before that)
        wait_for(lambda: all(b"applied" in c.logs() for c in labelled(client, data_dir)[0]),
                 "every module's configuration applied", 60, run, output)
        processes = json.loads((data_dir / "run.json").read_text())["processes"]
        run.send_signal(signal.SIGINT)
        run.wait(timeout=90)
        assert "Traceback" not in "".join(output), "".join(output)
    finally:
        if run.poll() is None:
            run.kill()
    assert labelled(client, data_dir) == ([], []), "".join(output[-20:])
    for name, process in processes.items():
        if process.get("pid"):
            assert not alive(process["pid"]), f"{name} still running"
    final = json.loads((data_dir / "run.json").read_text())["processes"]
    assert {m: final[m]["exit_codes"] for m in CONTAINER_MODULES} == {m: [0] for m in CONTAINER_MODULES}
