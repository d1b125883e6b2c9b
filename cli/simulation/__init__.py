"""Simulated federations on one machine: the checks and preparations before a run
(`preflight`), Flower's simulation engine run in this process (`engine`), and Ray kept
on loopback (`loopback_ray`). `fedtriage simulate` and the benchmarks start runs here.
"""
