"""Test support shared by the unit and integration tests (fakes, store builders, hypothesis strategies);
the builders of contracts and process schemas are in ``tests/factories.py``."""
