"""Controller module: aggregates the site's telemetry, shaves peaks, balances, dispatches, reports capability state."""
