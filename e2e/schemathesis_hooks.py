"""schemathesis hooks for e2e/tests/contract.rs (loaded through SCHEMATHESIS_HOOKS).

A generated Idempotency-Key is reused across generated requests; the server rightly refuses a
key already used for a different request (422 idempotency_key_reused), which no schema can say.
Each request gets its own key (the generated value, shortened, plus a random suffix), as a real
client's retry logic would; e2e/tests/api.rs tests key reuse itself.
"""

import uuid

import schemathesis


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            headers[name] = f"{str(headers[name])[:200]}-{uuid.uuid4().hex}"
