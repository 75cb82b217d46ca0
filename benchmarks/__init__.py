"""Benchmarks: the SDK measured side by side with a raw-httpx baseline, reported as ratios."""
