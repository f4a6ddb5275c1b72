"""Per-namespace ObjectStores: rotated credentials replace a store without breaking its work."""

from __future__ import annotations

import asyncio
import gc

from modelreg.config import Settings
from modelreg.services import wiring


class Secrets:
    """The operator's namespace, holding one namespace's storage credentials (rotated by tests)."""

    def __init__(self) -> None:
        self.data = {"AWS_ACCESS_KEY_ID": "key-1", "AWS_SECRET_ACCESS_KEY": "secret-1", "AWS_REGION": "us-east-1"}

    async def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        return dict(self.data)


def test_a_store_replaced_by_rotated_credentials_still_finishes_what_it_was_given(monkeypatch):
    monkeypatch.setattr(wiring, "CREDENTIALS_TTL", 0.0)  # every ask re-reads the Secret
    settings = Settings(storage={"credentials": {"team-a": "team-a-s3"}})
    secrets, stores = Secrets(), wiring.ObjectStores()
    store_for = wiring.object_stores(settings, secrets, stores)

    async def scenario() -> None:
        old = await store_for("team-a")
        assert await store_for("team-a") is old  # same keys: same store, same threads
        secrets.data["AWS_SECRET_ACCESS_KEY"] = "secret-2"
        new = await store_for("team-a")
        assert new is not old
        # a reconcile that took the old store before the rotation still gets its answer
        # (it was shut down on rotation: "cannot schedule new futures after shutdown")
        assert await asyncio.get_running_loop().run_in_executor(old.pool("verify", 2), lambda: 42) == 42
        assert old in set(stores.made) and new in set(stores.made)  # both closed at shutdown
        del old
        gc.collect()
        assert len(stores.made) == 2  # the operator's default store and the new one: no leak per rotation

    asyncio.run(scenario())
    stores.close()
