"""The real app with a fault injected into the change stream, for tests over real HTTP.

gunicorn -c service/gunicorn.conf.py tests.support.faulty_wsgi:app
FAIL_AFTER_CHUNKS=N: the stream raises StoreUnavailable after serving N chunks, as a
database that dies in the middle of a full sync would.
"""
import os

from service.app import create_app
from service.store import StoreUnavailable

FAIL_AFTER_CHUNKS = int(os.environ.get("FAIL_AFTER_CHUNKS", "1"))


class FaultyStream:
    def __init__(self, stream):
        self._stream = stream

    def chunks(self):
        for served, chunk in enumerate(self._stream.chunks()):
            if served == FAIL_AFTER_CHUNKS:
                raise StoreUnavailable("injected fault: the database went away mid-stream")
            yield chunk

    @property
    def exhausted(self):
        return self._stream.exhausted

    @property
    def identity(self):
        return self._stream.identity

    def close(self):
        self._stream.close()


app = create_app()
_store = app.extensions["store"]
_open_changes = _store.open_changes
_store.open_changes = lambda since, limit: FaultyStream(_open_changes(since, limit))
