"""The one connection-string parser the tools share: what it takes and how it explains what it refuses."""

from __future__ import annotations

import pytest

from energy_edge.service import ConnectionStringError, parse_connection_string

OWNER = "HostName=hub.example.net;SharedAccessKeyName=iothubowner;SharedAccessKey=a2V5"


@pytest.mark.parametrize(
    ("text", "host_or_error"),
    [
        (OWNER, "hub.example.net"),
        (f"  {OWNER};  ", "hub.example.net"),  # surrounding blanks and a trailing separator
        ("HostName=h;SharedAccessKeyName=p;SharedAccessKey=k=+/==", "h"),  # base64 keys end in '='
        ("HostName=h;SharedAccessKeyName=p", "lacks SharedAccessKey"),
        ("HostName=h;DeviceId=d;SharedAccessKey=k", "device or module connection string"),
        ("garbage", "is not Key=Value"),
        ("HostName=;SharedAccessKeyName=p;SharedAccessKey=k", "is not Key=Value"),
    ],
)
def test_connection_strings(text: str, host_or_error: str) -> None:
    try:
        credentials = parse_connection_string(text)
    except ConnectionStringError as exc:
        assert host_or_error in str(exc)
    else:
        assert credentials.host == host_or_error
        assert credentials.token().startswith(f"SharedAccessSignature sr={credentials.host}&sig=")
