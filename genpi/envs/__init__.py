"""Environments an agent talks to after its first reply, and the one episode loop.

    simulated.py  a model plays the environment the prompt implies (the paper's role-play), seeing the
                  conversation with roles swapped, until it writes the scenario's end marker
    episodes.py   run_episodes(): agent and environment take turns; synthesis, evaluation and bench
                  all converse through it, so they see the same kind of conversation
"""

from ..lazy import lazy_exports

_EXPORTS = {
    'run_episodes': '.episodes',
    'SimulatedEnvironment': '.simulated',
    'environment_messages': '.simulated',
    'parse_environment_reply': '.simulated',
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
