"""The common metrics every module exports, on its own prometheus-client registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server


class ModuleMetrics:
    def __init__(self, module: str) -> None:
        self.module = module
        self.registry = reg = CollectorRegistry()
        self.messages_sent = Counter(
            "energy_edge_messages_sent_total", "Messages handed to edgeHub, by output.", ["output"], registry=reg
        )
        self.messages_received = Counter(
            "energy_edge_messages_received_total", "Messages received on inputs, by input.", ["input"], registry=reg
        )
        self.messages_dropped = Counter(
            "energy_edge_messages_dropped_total",
            "Messages dropped, by reason (outbox_full: oldest dropped while disconnected; invalid: bad input).",
            ["reason"], registry=reg,
        )
        self.outbox_depth = Gauge("energy_edge_outbox_messages", "Messages waiting in the outbox.", registry=reg)
        self.method_calls = Counter(
            "energy_edge_method_calls_total", "Direct method calls, by method and status.", ["method", "status"],
            registry=reg,
        )
        self.twin_config = Counter(
            "energy_edge_twin_config_total", "Desired configurations handled, by result.", ["result"], registry=reg
        )
        self.device_poll_seconds = Histogram(
            "energy_edge_device_poll_seconds", "Duration of one device poll.", ["asset_id"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0), registry=reg,
        )
        self.device_errors = Counter(
            "energy_edge_device_errors_total",
            "Device I/O errors, by kind (unavailable: transport; rejected: Modbus exception reply).",
            ["asset_id", "kind"], registry=reg,
        )
        # Fed by each device's poller through its events (`AssetModule.poller_events`).
        self.device_exchange_seconds = Histogram(
            "energy_edge_device_exchange_seconds",
            "Time on the wire of one exchange with a device, by operation (poll, write, connect).",
            ["asset_id", "operation"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0), registry=reg,
        )
        self.device_exchanges = Counter(
            "energy_edge_device_exchanges_total",
            "What the poller did with a device, by operation (poll, write, connect; refused: no I/O while backing "
            "off) and outcome (ok, unavailable, rejected, verification, invalid).",
            ["asset_id", "operation", "outcome"], registry=reg,
        )
        self.device_online = Gauge(
            "energy_edge_device_online", "1 when the device answers, 0 when it does not.", ["asset_id"], registry=reg
        )
        self.hub_connected = Gauge("energy_edge_hub_connected", "1 while connected to edgeHub.", registry=reg)
        self.events = Counter(
            "energy_edge_events_total",
            "Events by code and outcome (sent, or held back by the upstream rate limit).", ["code", "outcome"],
            registry=reg,
        )
        self.invalid_inputs = Counter(
            "energy_edge_invalid_inputs_total",
            "Input messages refused before use, by kind (invalid, unknown_asset, wrong_source, stale, future, ...).",
            ["kind"], registry=reg,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose /metrics on `port` (0 = don't)."""
        if port:
            start_http_server(port, addr=addr, registry=self.registry)
