"""Reliability tests: worker crashes, broker restarts, malformed input, personal data (see docs/guarantees.md)."""
