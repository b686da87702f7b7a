"""selective-autonomy: execute support-workflow steps only where a learned critic is sure."""

__version__ = "0.1.0"
