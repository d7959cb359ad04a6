"""Benchmark-only apps: what the suite serves when the user names no app of their own."""
