"""Telemetry module: the site's Prometheus exporter, fed by edgeHub routes."""
