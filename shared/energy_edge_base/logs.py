"""Logging set-up: plain text for people, JSON lines for log shippers; module and asset context."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys

_CONTEXT_FIELDS = ("asset_id", "method", "input", "error_id")


class JsonFormatter(logging.Formatter):
    def __init__(self, module: str) -> None:
        super().__init__()
        self.module = module

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "module": self.module,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def configure_logging(module: str, level: str | None = None, json_logs: bool | None = None) -> None:
    """Levels and format from arguments, else `LOG_LEVEL` / `LOG_FORMAT=json` in the environment."""
    level = (level or os.environ.get("LOG_LEVEL") or os.environ.get("RuntimeLogLevel") or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        level = "INFO"
    if json_logs is None:
        json_logs = os.environ.get("LOG_FORMAT", "").lower() == "json"
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter(module))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {module} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The device SDK and paho are chatty at INFO.
    for noisy in ("azure.iot.device", "paho", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
