"""moto's server with every request handled one at a time.

moto's backends are not thread-safe: under concurrent requests a DynamoDB
transaction or an ADD on one item can lose an update, which real DynamoDB
never does. Our conformance tests send concurrent requests on purpose, so the
emulator must apply each request atomically, as DynamoDB does per item. A lock
around the WSGI app gives exactly that; connections are still accepted on
threads.

Usage: python scripts/moto_server.py HOST PORT
"""

import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        with lock:
            # Materialise the body inside the lock so the backend's work is done here.
            return list(app(environ, start_response))

    run_simple(host, port, serialized, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
