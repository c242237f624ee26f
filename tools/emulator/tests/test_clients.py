"""hub/clients.py: the environment a module client is made in is set for the call only."""

from __future__ import annotations

import os

import pytest

from energy_edge.hub.clients import module_client, module_environment


@pytest.mark.parametrize(
    ("before", "values"),
    [
        ({}, {"IOTEDGE_MODULEID": "probe"}),  # unset before: unset after
        ({"IOTEDGE_MODULEID": "other"}, {"IOTEDGE_MODULEID": "probe"}),  # set before: its value back
        ({"IOTEDGE_MODULEID": "other"}, {}),  # nothing to set: nothing touched
    ],
)
def test_module_environment_is_restored(monkeypatch: pytest.MonkeyPatch, before: dict[str, str],
                                        values: dict[str, str]) -> None:
    monkeypatch.delenv("IOTEDGE_MODULEID", raising=False)
    for key, value in before.items():
        monkeypatch.setenv(key, value)
    with module_environment(values):
        assert {k: os.environ.get(k) for k in values} == values
    assert os.environ.get("IOTEDGE_MODULEID") == before.get("IOTEDGE_MODULEID")


def test_an_unknown_module_is_a_key_error_and_leaves_the_environment() -> None:
    with pytest.raises(KeyError):
        module_client({"modules": {}}, "nobody")
    assert "IOTEDGE_MODULEID" not in os.environ or os.environ["IOTEDGE_MODULEID"] != "nobody"
