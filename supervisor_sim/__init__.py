"""supervisor-sim: Airflow 3.3's task supervisor, alone on one machine.

The layers are importable on their own: ``supervisor_sim.protocol`` (sans-IO wire protocol),
``supervisor_sim.api`` (Execution API client and the embedded stub), ``supervisor_sim.supervision``
(trio sessions that launch and serve runtime children).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
