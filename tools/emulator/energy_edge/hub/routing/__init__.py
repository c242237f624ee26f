"""The edgeHub route engine in parts; `energy_edge.hub.routes` is its public face."""
