"""Benchmarks: mjcore's endpoints against what this machine allows (``python -m bench``)."""
