"""One real stack for the whole e2e tier (scheduler, api-server, dag-processor on PostgreSQL): the
drift loop and the browser tests share it, in that order (pytest runs the files alphabetically).

Small real data (January 2013): a champion is trained on 8 days and two later days are scored in
this process with the same functions the DAGs run; the tests then drive the stack. The fixtures
(``prepared``, ``airflow_stack``) live in tests/services.py: the faults tier drives the same stack
after the story (tests/conftest.py orders the tiers).
"""

from __future__ import annotations

from tests.services import use_the_session_stack


def pytest_configure(config):
    use_the_session_stack(config)
