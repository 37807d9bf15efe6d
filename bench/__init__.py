"""Benchmarks and the load test (run them as modules: ``python -m bench.ingest_bench``)."""
