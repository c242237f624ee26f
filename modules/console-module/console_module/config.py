"""Twin configuration of the console module. The sign-in credential is never here: it is a file on the
module's volume (`CONSOLE_CREDENTIALS_FILE`, default `$STATE_DIR/console-credentials.json`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ConsoleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", title="console module configuration")

    site_id: str = Field("site-1", min_length=1, description="Site this console shows (and dispatches).")
    http_port: int = Field(8480, ge=1, le=65535, description="Port the console's web server listens on.")
    bind_address: str = Field("0.0.0.0", min_length=1, description="Address the web server listens on.")
    operator_actions_enabled: bool = Field(
        False, description=("Allow signed-in users to set the import limit, switch peak shaving and dispatch the "
                            "site. Off: the console is read-only whoever signs in."),
    )
    push_interval_s: float = Field(
        0.25, ge=0.05, le=10, description="Pages get a fresh view at most this often (coalesces bursts), seconds."
    )
    status_poll_s: float = Field(
        1.0, ge=0.2, le=60, description="How often the controller's mode and limit are asked for, seconds."
    )
    twin_poll_s: float = Field(
        10.0, ge=1, le=3600, description="How often each module's twin status is asked for, seconds."
    )
    stale_after_s: float = Field(
        10.0, gt=0, le=86_400, description="A reading older than this is shown as stale, seconds."
    )
    near_limit_pct: float = Field(
        90.0, gt=0, le=100, description="A billing quarter at or above this share of the limit counts as close, %."
    )
    history_hours: float = Field(24.0, gt=0, le=24 * 7, description="How far back the charts go, hours.")
    chart_step_s: int = Field(60, ge=10, le=3600, description="One chart point per this much site time, seconds.")
    events_kept: int = Field(5000, ge=100, le=100_000, description="Events kept on the device (oldest dropped).")
    session_ttl_s: float = Field(8 * 3600, ge=60, le=7 * 86_400, description="A sign-in lasts this long, seconds.")
    max_failed_signins: int = Field(
        5, ge=1, le=100, description="Failed sign-ins for one user name (or 4× from one address) before lock-out."
    )
    lockout_s: float = Field(300.0, ge=1, le=86_400, description="How long a lock-out lasts, seconds.")
    method_timeout_s: int = Field(10, ge=5, le=300, description="How long an operator action waits for the module.")
    modules: list[str] = Field(
        default_factory=lambda: ["microgrid-controller", "solar", "battery", "boiler", "controller", "telemetry"],
        description="Modules whose twin status (get_config) the devices page shows.",
    )
    asset_modules: dict[str, str] = Field(
        default_factory=lambda: {"microgrid_controller": "microgrid-controller", "solar": "solar",
                                 "battery": "battery", "boiler": "boiler"},
        description="Asset type → the module that drives it (its twin status is shown beside the asset).",
    )
    site_controller_module: str = Field(
        "microgrid-controller", min_length=1, description="Module with set_import_limit and set_peak_shaving."
    )
    controller_module: str = Field("controller", min_length=1, description="Module with get_status and dispatch.")
