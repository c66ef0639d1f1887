"""The bar every planted-defect test sets: a check finds at least 95% of the defects planted
(recall) and at least 90% of what it reports is planted (precision).

Not a test module: tests import it (tests/ is on sys.path under pytest, for its conftest)."""


def assert_found(found, truth, what):
    hits = len(set(found) & set(truth))
    assert hits >= 0.95 * len(truth), f"{what}: recall {hits}/{len(truth)}"
    assert hits >= 0.9 * len(found), f"{what}: precision {hits}/{len(found)}: {set(found) - set(truth)}"
