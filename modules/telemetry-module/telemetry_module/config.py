"""Twin configuration of the telemetry module."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from energy_edge_base.contract import AssetType


class TelemetryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", title="telemetry module configuration")
    site_id: str = Field("site-1", min_length=1, description="Site this exporter serves (named in /healthz).")
    metrics_port: int = Field(9600, ge=1, le=65535, description="Port of GET /metrics and GET /healthz.")
    bind_address: str = Field("0.0.0.0", min_length=1, description="Address the HTTP server listens on.")
    stale_after_s: float = Field(
        30.0, gt=0, le=86_400, description="An asset silent for this long counts as stale in /healthz, seconds."
    )
    assets: dict[AssetType, list[str]] | None = Field(
        None,
        description="The site's assets by type; telemetry of any other asset is refused (counted as invalid), so a "
        "phantom asset cannot hold /healthz at 503. None: every asset that reports is exported.",
    )
