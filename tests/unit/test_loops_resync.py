"""A resync that finds what a watch has not delivered yet judges it as that event would have."""

import gc
import weakref
from types import SimpleNamespace

import pytest

from modelreg.services.loops import Loops
from modelreg.services.view import VERSIONS, View
from modelreg.storage.kube import Listing


def version(name, rv, number, parent=None):
    spec = {"modelName": "fraud", "version": number, **({"lineage": {"parentVersion": parent}} if parent else {})}
    return {"metadata": {"namespace": "ml", "name": name, "resourceVersion": rv}, "spec": spec, "status": {}}


class Kube:
    def __init__(self, listings):
        self.listings = listings

    async def list_everywhere(self, plural, namespaces):
        return self.listings.get(plural, [])


@pytest.fixture(autouse=True)
def unfrozen():
    yield
    gc.unfreeze()  # as the operator's stop does


async def test_what_a_resync_leaves_is_out_of_the_full_collections_way():
    view = View({VERSIONS: lambda b: b})
    listing = [version(f"fraud-v{n}", str(n), n) for n in range(1, 50)]
    seals = SimpleNamespace(proven=lambda part, body: True)
    kube = Kube({VERSIONS: [Listing("ml", "60", listing)]})
    loops = Loops(kube, view, SimpleNamespace(), SimpleNamespace(), seals, None, workers=1, promotion_tick=1)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    await loops.resync(["ml"])
    # the view's bodies (and everything else alive then) are no longer walked by full collections
    assert gc.get_freeze_count() > 49 * 5
    assert view.get(VERSIONS, "ml", "fraud-v7") is not None


async def test_a_garbage_cycle_frozen_between_resyncs_is_reclaimed_by_the_next():
    class Node:
        pass

    loops = Loops(Kube({}), View({VERSIONS: lambda b: b}), SimpleNamespace(), SimpleNamespace(), None, None, 1, 1)
    node = Node()
    node.me = node  # a cycle: only the collector frees it
    alive = weakref.ref(node)
    gc.freeze()  # as freeze_every does while it was still in use
    del node
    await loops.resync(["ml"])
    assert alive() is None


async def test_a_parent_found_by_a_resync_wakes_its_children():
    view = View({VERSIONS: lambda b: b})
    child = version("fraud-v2", "5", 2, parent=1)
    view.observe(VERSIONS, "ADDED", child)
    parent = version("fraud-v1", "7", 1)
    kube = Kube({VERSIONS: [Listing("ml", "8", [child, parent])]})
    seals = SimpleNamespace(proven=lambda part, body: True)
    loops = Loops(kube, view, SimpleNamespace(), SimpleNamespace(), seals, None, workers=1, promotion_tick=1)
    await loops.resync(["ml"])
    # its watch event, arriving now, is an echo: the child was woken by the resync itself
    assert not view.observe(VERSIONS, "ADDED", parent)
    assert loops.version_queue.depth() == 2  # the parent, and its child judged again


async def test_a_version_a_listing_no_longer_shows_is_forgotten_and_its_duplicate_judged_again():
    view = View({VERSIONS: lambda b: b})
    first, again = version("fraud-v1", "2", 1), version("fraud-v1-again", "3", 1)
    for b in (first, again):
        view.observe(VERSIONS, "ADDED", b)
    kube = Kube({VERSIONS: [Listing("ml", "10", [again])]})
    seals = SimpleNamespace(proven=lambda part, body: True)
    loops = Loops(kube, view, SimpleNamespace(), SimpleNamespace(), seals, None, workers=1, promotion_tick=1)
    await loops.resync(["ml"])
    assert view.get(VERSIONS, "ml", "fraud-v1") is None
    assert loops.version_queue.depth() == 1  # fraud-v1-again: no longer a duplicate of anything
    assert not view.observe(VERSIONS, "MODIFIED", version("fraud-v1", "8", 1))  # late, from before the listing
