"""faust agents. Each module exposes a ``register_*`` function that adds its agent to a given app:
no agent is declared at import time on a global app."""
