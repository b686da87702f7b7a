"""Operator traces: the native trace format, importers for public datasets, and chronological splits.

The root exports the trace format only; importers live in their own modules (``eventlog``, ``sgd``,
``abcd``) so that reading a JSONL file never imports polars or rustxes.
"""

from selective_autonomy.traces.format import Case, TraceStep, read_cases, write_cases

__all__ = ["Case", "TraceStep", "read_cases", "write_cases"]
