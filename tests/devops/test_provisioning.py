"""Zero-touch provisioning: the DPS device-key derivation (checked against OpenSSL's HMAC), the CLI, the
IoT Edge config.toml template rendered strictly and parsed as TOML, and the Ansible playbook through
`ansible-playbook --syntax-check` and `ansible-lint --offline --strict`."""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jinja2
import pytest
import tomllib
import yaml

from energy_edge.ops import provision
from tests.devops.tools import tool
from tests.support import REPO

ANSIBLE = REPO / "deployment" / "ansible"
PLAYBOOK = ANSIBLE / "provision-edge.yml"
INVENTORY = ANSIBLE / "inventory.example.yml"
GROUP_KEY = base64.b64encode(bytes(range(32))).decode()


def openssl_hmac(key_b64: str, message: str) -> str:
    """The same derivation by an independent implementation."""
    result = subprocess.run(["openssl", "dgst", "-sha256", "-mac", "HMAC", "-macopt",
                             f"hexkey:{base64.b64decode(key_b64).hex()}", "-binary"],
                            input=message.encode(), capture_output=True, check=True)
    return base64.b64encode(result.stdout).decode()


@pytest.mark.parametrize("registration_id", ["site-example-01-edge", "lab-edge-01", "a", "x" * 128,
                                             "site.berlin_01:edge"])
def test_device_key_matches_openssl(registration_id: str) -> None:
    if not shutil.which("openssl"):
        pytest.fail("openssl is needed as the independent reference")
    key = provision.derive_device_key(GROUP_KEY, registration_id)
    assert key == openssl_hmac(GROUP_KEY, registration_id)
    assert len(base64.b64decode(key)) == 32


def test_device_keys_differ_per_device_and_group() -> None:
    other_group = base64.b64encode(bytes(range(1, 33))).decode()
    keys = {provision.derive_device_key(GROUP_KEY, "edge-1"), provision.derive_device_key(GROUP_KEY, "edge-2"),
            provision.derive_device_key(other_group, "edge-1")}
    assert len(keys) == 3


@pytest.mark.parametrize(("group_key", "registration_id", "message"), [
    ("not base64!", "edge-1", "not base64"),
    (base64.b64encode(b"short").decode(), "edge-1", "decodes to 5 bytes"),
    (GROUP_KEY, "Edge-1", "not valid for DPS"),
    (GROUP_KEY, "edge 1", "not valid for DPS"),
    (GROUP_KEY, "-edge", "not valid for DPS"),
    (GROUP_KEY, "x" * 129, "not valid for DPS"),
])
def test_bad_input_is_refused(group_key: str, registration_id: str, message: str) -> None:
    with pytest.raises(provision.ProvisioningError, match=message):
        provision.derive_device_key(group_key, registration_id)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="energy-edge")
    provision.add_provision_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_cli_prints_the_key(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli("provision", "device-key", "--group-key", GROUP_KEY, "--registration-id", "edge-1") == 0
    assert capsys.readouterr().out.strip() == openssl_hmac(GROUP_KEY, "edge-1")
    monkeypatch.setenv("DPS_GROUP_KEY", GROUP_KEY)  # the playbook's way: the key never appears in argv
    assert run_cli("provision", "device-key", "--registration-id", "edge-2") == 0
    assert capsys.readouterr().out.strip() == openssl_hmac(GROUP_KEY, "edge-2")


def test_cli_explains_what_is_missing(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DPS_GROUP_KEY", raising=False)
    assert run_cli("provision", "device-key", "--registration-id", "edge-1") == 2
    assert "DPS_GROUP_KEY" in capsys.readouterr().err
    assert run_cli("provision", "device-key", "--group-key", GROUP_KEY, "--registration-id", "EDGE") == 2
    assert "not valid for DPS" in capsys.readouterr().err


# ---------------------------------------------------------------- config.toml


def playbook() -> dict[str, Any]:
    (play,) = yaml.safe_load(PLAYBOOK.read_text())
    assert isinstance(play, dict)
    return play


def template_vars(**overrides: Any) -> dict[str, Any]:
    """The playbook's defaults, the inventory's first host, and what Ansible would compute for it."""
    values = {k: v for k, v in playbook()["vars"].items() if not (isinstance(v, str) and "{{" in v)}
    inventory = yaml.safe_load(INVENTORY.read_text())["edge_devices"]
    host, host_vars = next(iter(inventory["hosts"].items()))
    values.update(inventory["vars"])
    values.update(host_vars)
    values.update(edge_hostname=f"{host}.example.net", **overrides)
    return values


def render(values: dict[str, Any]) -> str:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(ANSIBLE / "templates"),
                                     undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return environment.get_template("config.toml.j2").render(values)


def test_rendered_config_is_dps_symmetric_key_provisioning() -> None:
    text = render(template_vars())
    config = tomllib.loads(text)
    assert config["hostname"] == "site-example-01-edge.example.net"
    dps = config["provisioning"]
    assert (dps["source"], dps["id_scope"]) == ("dps", "0ne00000000")
    assert dps["global_endpoint"] == "https://global.azure-devices-provisioning.net"
    attestation = dps["attestation"]
    assert attestation["method"] == "symmetric_key"
    assert attestation["registration_id"] == "site-example-01-edge"
    assert attestation["symmetric_key"] == {"uri": "file:///var/secrets/aziot/device-id.key"}  # no secret inline
    assert config["agent"]["config"]["image"] == "mcr.microsoft.com/azureiotedge-agent:1.6"
    assert config["moby_runtime"]["network"] == "azure-iot-edge"
    assert config["provisioning"]["always_reprovision_on_startup"] is False


def test_a_missing_value_fails_the_render() -> None:
    values = template_vars()
    del values["dps_id_scope"]
    with pytest.raises(jinja2.UndefinedError, match="dps_id_scope"):
        render(values)


def test_playbook_derives_the_key_with_the_cli_and_keeps_it_out_of_logs() -> None:
    tasks = {t["name"]: t for t in playbook()["tasks"]}
    derive = tasks["Derive the device key from the group key"]
    argv = [a for a in derive["ansible.builtin.command"]["argv"] if "{{" not in a]
    assert argv == ["provision", "device-key", "--registration-id"]
    assert derive["no_log"] is True and derive["delegate_to"] == "localhost"
    assert "DPS_GROUP_KEY" in derive["environment"]  # through the environment, never argv
    assert tasks["Write the device key for the key service"]["ansible.builtin.copy"]["mode"] == "0600"
    install = tasks["Install the container engine and the IoT Edge runtime"]["ansible.builtin.apt"]["name"]
    assert "aziot-edge={{ iotedge_version }}.*" in install and playbook()["vars"]["iotedge_version"] == "1.6"
    assert "Debian 11" not in playbook()["vars"]["supported_hosts"]  # IoT Edge 1.6 dropped it


# ---------------------------------------------------------------- ansible-playbook and ansible-lint


def ansible(command: str, *args: str | Path, cwd: Path = ANSIBLE) -> subprocess.CompletedProcess[str]:
    executable = tool("ansible", command)
    env = {**os.environ, "PATH": f"{executable.parent}:{os.environ.get('PATH', '')}",
           "ANSIBLE_LOCAL_TEMP": tempfile.gettempdir(), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([str(executable), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def test_playbook_syntax() -> None:
    result = ansible("ansible-playbook", "--syntax-check", "-i", INVENTORY, PLAYBOOK)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_strict_passes() -> None:
    result = ansible("ansible-lint", "--offline", "--strict", "--nocolor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failure(s), 0 warning(s)" in result.stdout + result.stderr


@pytest.mark.parametrize(("old", "new", "rule"), [
    ("        cache_valid_time: 3600", "        cache_valid_times: 3600", "args[module]"),
    ('        mode: "0700"', '        mode: "0700"\n        recursive: true', "args[module]"),
    ("      changed_when: false\n      no_log: true", "      no_log: true", "no-changed-when"),
    ("ansible.builtin.template:", "template:", "fqcn"),
])
def test_ansible_lint_catches_mistakes(tmp_path: Path, old: str, new: str, rule: str) -> None:
    shutil.copytree(ANSIBLE, tmp_path / "ansible", ignore=shutil.ignore_patterns(".ansible*"))
    path = tmp_path / "ansible" / PLAYBOOK.name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    result = ansible("ansible-lint", "--offline", "--strict", "--nocolor", PLAYBOOK.name, cwd=tmp_path / "ansible")
    assert result.returncode != 0 and rule in result.stdout + result.stderr, result.stdout + result.stderr
