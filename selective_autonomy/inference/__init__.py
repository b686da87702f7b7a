"""Policies and critics. ``protocol`` is pydantic only; torch and vLLM live behind it."""
