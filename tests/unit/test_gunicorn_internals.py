"""The worker relies on internals of gunicorn's gthread worker; the check at its import
fails loudly when an upgrade changes one of them (service/gunicorn_worker.py)."""
from gunicorn.workers.gthread import ThreadWorker

from service.gunicorn_worker import OVERRIDDEN, StopListeningThreadWorker, check_gunicorn_internals


def test_the_pinned_gunicorn_has_every_internal_the_worker_relies_on():
    assert check_gunicorn_internals() == []
    assert all(name in vars(StopListeningThreadWorker) for name in OVERRIDDEN)  # nothing unused


def test_a_changed_or_missing_internal_is_named():
    class Upgraded(ThreadWorker):
        def enqueue_req(self, conn, priority):  # a parameter more
            pass
    Upgraded._cap_keepalive = None  # gone
    problems = check_gunicorn_internals(Upgraded)
    assert "Upgraded.enqueue_req takes (self, conn, priority), not (self, conn)" in problems
    assert "Upgraded._cap_keepalive takes (None), not (self, deadline)" in problems
    assert len(problems) == 2
