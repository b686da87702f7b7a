"""Learning from feedback: the evidence, the critic's choice, certification, the precision monitor,
the stage machine, and the loop that plans and publishes them (docs/guarantee.md)."""
