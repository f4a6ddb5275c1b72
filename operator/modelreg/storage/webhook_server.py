"""The admission webhook's HTTPS server: kopf's, accepting every request an API server can send."""

from __future__ import annotations

from typing import Any

import kopf

# An admission request carries the object and the old object: two ModelVersions near the CRD's
# size bounds (escaped), annotations and managedFields pass aiohttp's default 1 MiB. Larger than
# any request the API server sends (its own limit is 3 MiB a request), so no 413 ever decides.
MAX_REQUEST_BYTES = 8 * 1024 * 1024


class AdmissionServer(kopf.WebhookServer):
    @staticmethod
    async def _serve(fn: Any, request: Any) -> Any:
        # kopf reads the body from the request it is given: a clone with a larger cap, before any read
        return await kopf.WebhookServer._serve(fn, request.clone(client_max_size=MAX_REQUEST_BYTES))
