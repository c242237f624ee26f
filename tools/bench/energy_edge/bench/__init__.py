"""Benchmarks run from the `energy-edge bench` command.

`peak-shaving`: the controller's own decision core, stepped through a year of 15-minute data, against no
battery, a fixed-threshold rule and the perfect-foresight optimum (a linear program).
"""
