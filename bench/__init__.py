"""Benchmarks: simulator scale (`sim_scale.py`) and campaign time (`campaign_bench.py`)."""
