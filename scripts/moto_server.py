"""moto's server with every request handled one at a time.

moto's backends are not thread-safe: under concurrent requests a DynamoDB
transaction or an ADD on one item can lose an update, which real DynamoDB
never does. Our conformance tests send concurrent requests on purpose, so the
emulator must apply each request atomically, as DynamoDB does per item. A lock
around the WSGI app gives exactly that; connections are still accepted on
threads.

moto's TransactWriteItems backs up the table before applying a transaction
(to roll it back if a condition fails) by deep-copying it once per action of
the transaction: a 100-action transaction on a table with a long stream made
100 copies of everything, and the cyclic garbage of those copies took moto to
12 GB in one erasure test. The copy is made once per table and transaction
here: the same backup, as every copy was taken before any action applied.

Usage: python scripts/moto_server.py HOST PORT
"""

import copy
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def copy_tables_once_per_transaction() -> None:
    import moto.dynamodb.models as models
    from moto.dynamodb.models.table import Table

    backups: dict[int, Table] | None = None

    class OneCopyPerTable:
        """`copy` as moto's DynamoDB backend module sees it."""

        def __getattr__(self, name):
            return getattr(copy, name)

        @staticmethod
        def deepcopy(x, memo=None):
            if backups is not None and isinstance(x, Table):
                if id(x) not in backups:
                    backups[id(x)] = copy.deepcopy(x)
                return backups[id(x)]
            return copy.deepcopy(x, memo)

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        nonlocal backups
        backups = {}
        try:
            return original(self, transact_items)
        finally:
            backups = None

    models.copy = OneCopyPerTable()
    models.DynamoDBBackend.transact_write_items = transact_write_items


def main() -> None:
    copy_tables_once_per_transaction()
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
