"""Hooks for scripts/schemathesis (loaded through SCHEMATHESIS_HOOKS).

A real client sends a fresh `Idempotency-Key` per request it means to make
once. Generated cases reuse a few key values across operations and bodies
(the examples phase sends the spec's example everywhere), and the server is
right to answer 422 to a key reused with another body or path
(draft-ietf-httpapi-idempotency-key-header). So each request that carries a
key gets a fresh one here; replays, 409 while in flight and 422 on reuse
are tested in the Rust suite (functions/ideas/tests/idempotency.rs and
others), where the key is chosen on purpose.
"""

import uuid

import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            headers[name] = f"st-{uuid.uuid4()}"
