"""Benchmarks of the course's reference implementation; ``python -m bench`` runs them and writes BENCHMARKS.md."""
