"""The controller's decision core: a pure library (no I/O, no clock of its own).

Site state in (`SiteState`), setpoints and status out (`Decision`). The module wraps it with the
runtime; the peak-shaving benchmark runs the very same code step by step.
"""
