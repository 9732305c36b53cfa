"""gunicorn's gthread worker, stopping the way a load balancer and Sesam expect."""
import errno
import socket

from gunicorn.workers.gthread import ThreadWorker


class StopListeningThreadWorker(ThreadWorker):
    """On SIGTERM, stop listening at once, then let gunicorn finish the running requests.

    gunicorn's graceful stop only stops accepting: new connections still queue in the
    listening socket's backlog and are reset when the worker exits. Shutting the shared
    listening socket down makes the kernel refuse them straight away, so a client (or a
    load balancer) learns immediately that it must go elsewhere.
    """

    def handle_exit(self, sig, frame) -> None:
        for listener in self.sockets:
            try:
                listener.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        super().handle_exit(sig, frame)

    def accept(self, listener) -> None:
        """The listener is shared: when another worker shut it down first, accept() fails
        with EINVAL here before this worker's own SIGTERM arrives. That means the server
        is stopping, so stop gracefully too instead of dying with the running requests."""
        try:
            super().accept(listener)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            self.alive = False
