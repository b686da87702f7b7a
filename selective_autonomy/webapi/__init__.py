"""What the project's HTTP APIs (console, ingest webhook) share: one error model and its responses."""
