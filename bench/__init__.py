"""Benchmarks (`make bench`): figures, not timed unit tests. See bench/README.md."""
