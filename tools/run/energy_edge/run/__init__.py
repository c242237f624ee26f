"""`energy-edge run`: the whole site on one machine (supervisor, live view, summary, plot)."""
