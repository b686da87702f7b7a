"""The session simulator: replay recorded cases as live sessions against the decide agent, with a
simulated operator answering deferrals, and generate synthetic sessions for a process without history.

The root exports the replay entry point and its configuration; the operator model, the session
driver, the report and the ABCD generator live in their own modules (``operator_model``,
``sessions``, ``report``, ``synthetic``), and the command line in ``cli`` (``sim_app``).
"""

from selective_autonomy.simulator.replay import ReplayConfig, ReplayReport, replay_cases

__all__ = ["ReplayConfig", "ReplayReport", "replay_cases"]
