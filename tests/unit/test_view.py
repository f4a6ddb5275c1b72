"""The operator's view: the newest state wins, whoever brings it; trust views are worked out once."""

from modelreg.services.view import PROMOTIONS, VERSIONS, View, newer


def body(name, rv, model="fraud", stage=None, ns="ml"):
    return {
        "metadata": {"namespace": ns, "name": name, "resourceVersion": rv},
        "spec": {"modelName": model},
        "status": {"stage": stage} if stage else {},
    }


class CountingTrust:
    def __init__(self):
        self.calls = 0

    def __call__(self, obj):
        self.calls += 1
        return {**obj, "status": {k: v for k, v in (obj.get("status") or {}).items() if k != "forged"}}


def test_resource_versions_compare_as_numbers():
    assert newer("10", "9") and not newer("9", "10") and not newer("7", "7")
    assert newer("7", None) and newer("opaque-b", "opaque-a")  # not numbers: taken as newer


def test_a_late_watch_event_never_rolls_back_an_own_write():
    view = View({VERSIONS: CountingTrust()})
    assert view.observe(VERSIONS, "ADDED", body("v1", "5"))
    assert view.remember(VERSIONS, body("v1", "7", stage="Production"))  # the operator's write
    assert not view.observe(VERSIONS, "MODIFIED", body("v1", "6"))  # an older event arrives late
    assert not view.observe(VERSIONS, "MODIFIED", body("v1", "7", stage="Production"))  # the write's echo
    assert view.get(VERSIONS, "ml", "v1")["status"]["stage"] == "Production"


def test_reads_are_per_model_and_deletions_forget():
    view = View({VERSIONS: CountingTrust()})
    view.observe(VERSIONS, None, body("a1", "1", model="a"))
    view.observe(VERSIONS, None, body("b1", "2", model="b"))
    view.observe(VERSIONS, None, body("a2", "3", model="a", ns="other"))
    assert [v["metadata"]["name"] for v in view.of_model(VERSIONS, "ml", "a")] == ["a1"]
    view.observe(VERSIONS, "DELETED", body("a1", "4", model="a"))
    assert view.of_model(VERSIONS, "ml", "a") == [] and view.get(VERSIONS, "ml", "a1") is None


def test_trust_is_judged_once_per_resource_version_and_reads_are_copies():
    trust = CountingTrust()
    view = View({PROMOTIONS: trust})
    view.observe(PROMOTIONS, None, {**body("p", "1"), "status": {"forged": True, "ok": 1}})
    first = view.trusted(PROMOTIONS, "ml", "fraud")
    second = view.trusted(PROMOTIONS, "ml", "fraud")
    assert trust.calls == 1 and first[0]["status"] == {"ok": 1}
    first[0]["status"]["ok"] = 2  # a caller's scribbles stay its own
    assert view.trusted(PROMOTIONS, "ml", "fraud")[0]["status"] == {"ok": 1} and second[0]["status"] == {"ok": 1}
    view.remember(PROMOTIONS, {**body("p", "2"), "status": {"ok": 3}})
    assert view.trusted(PROMOTIONS, "ml", "fraud")[0]["status"] == {"ok": 3} and trust.calls == 2


def test_a_write_answered_after_the_deletion_does_not_bring_the_object_back():
    view = View({VERSIONS: CountingTrust()})
    view.observe(VERSIONS, "ADDED", body("v1", "5"))
    view.observe(VERSIONS, "DELETED", body("v1", "8"))
    assert not view.remember(VERSIONS, body("v1", "7", stage="Production"))  # the operator's write, answered late
    assert view.get(VERSIONS, "ml", "v1") is None
    assert view.observe(VERSIONS, "ADDED", body("v1", "9"))  # created again: a new object
    assert view.get(VERSIONS, "ml", "v1")["metadata"]["resourceVersion"] == "9"


def test_versions_are_found_by_number_and_by_parent_as_their_lineage_changes():
    view = View({VERSIONS: CountingTrust()})

    def numbered(name, rv, number, parent=None, model="fraud"):
        b = body(name, rv, model=model)
        b["spec"] |= {"version": number, **({"lineage": {"parentVersion": parent}} if parent else {})}
        return b

    view.observe(VERSIONS, None, numbered("v1", "1", 1))
    view.observe(VERSIONS, None, numbered("v1-again", "2", 1))
    view.observe(VERSIONS, None, numbered("v2", "3", 2, parent=1))
    view.observe(VERSIONS, None, numbered("other-v2", "4", 2, parent=1, model="other"))
    names = lambda found: [b["metadata"]["name"] for b in found]  # noqa: E731
    assert names(view.indexed("ml", "fraud", "version", [1])) == ["v1", "v1-again"]
    assert names(view.indexed("ml", "fraud", "parent", [1])) == ["v2"]
    view.observe(VERSIONS, None, numbered("v2", "5", 2, parent=None))  # lineage dropped: no longer a child of 1
    assert view.indexed("ml", "fraud", "parent", [1]) == []
    view.observe(VERSIONS, "DELETED", numbered("v1", "6", 1))
    assert names(view.indexed("ml", "fraud", "version", [1, 2, None])) == ["v1-again", "v2"]


def test_a_listing_tells_the_view_what_a_watch_gap_hid():
    view = View({VERSIONS: CountingTrust()})
    for name, rv in (("kept", "1"), ("deleted-in-gap", "2"), ("elsewhere", "3")):
        view.observe(VERSIONS, "ADDED", body(name, rv, ns="other" if name == "elsewhere" else "ml"))
    view.remember(VERSIONS, body("created-after-listing", "12"))  # an own write, newer than the listing
    gone = view.unlisted(VERSIONS, "ml", "10", {("ml", "kept")})
    assert [b["metadata"]["name"] for b in gone] == ["deleted-in-gap"]
    assert view.unlisted(VERSIONS, "ml", None, {("ml", "kept")}) == []  # no listing version: nothing is forgotten


def test_a_hostile_deeply_nested_status_is_kept_and_indexed_like_any_other():
    view = View({VERSIONS: CountingTrust()})
    deep: dict = {}
    node = deep
    for _ in range(5000):  # deeper than Python's recursion limit
        node["x"] = {}
        node = node["x"]
    hostile = body("v1", "1", stage="Production")
    hostile["spec"]["version"] = 1
    hostile["status"]["modelreg"] = deep
    assert view.observe(VERSIONS, "ADDED", hostile)
    assert [b["metadata"]["name"] for b in view.indexed("ml", "fraud", "stage", ["Production"])] == ["v1"]
    assert view.unlisted(VERSIONS, "ml", "5", set())[0]["metadata"]["name"] == "v1"


def test_indexes_leave_nothing_behind_and_a_bool_is_no_version():
    view = View({VERSIONS: CountingTrust()})
    for i in range(50):
        b = body(f"v{i}", str(i + 1))
        b["spec"]["version"] = i
        view.observe(VERSIONS, "ADDED", b)
        view.observe(VERSIONS, "DELETED", b)
    assert view._indexed == {} and not any(view._models[VERSIONS].values())
    odd = body("odd", "99")
    odd["spec"]["version"] = True
    view.observe(VERSIONS, "ADDED", odd)
    assert view.indexed("ml", "fraud", "version", [1]) == []
