"""The generation step's planning: repeated queries asked once, draws never mixed in a request, one seed a draw."""

from hookbench.evaluation.arm_generation import chunks, seeded
from hookbench.evaluation.results import ItemResult


def test_chunks_ask_each_query_once_per_draw_in_batches():
    items = [ItemResult(f"i{k}", None, "p", q, "1", draw=d) for d in range(2) for k, q in enumerate("abac")]
    plan = [[(draw, q, [r.id for r in rs]) for draw, q, rs in chunk] for chunk in chunks(items, 2, 2)]
    assert plan == [[(0, "a", ["i0", "i2"]), (0, "b", ["i1"])], [(0, "c", ["i3"])],
                    [(1, "a", ["i0", "i2"]), (1, "b", ["i1"])], [(1, "c", ["i3"])]]


def test_each_draw_gets_its_own_seed_and_unseeded_requests_stay_unseeded():
    assert seeded({"seed": 7, "chat": True}, 2) == {"seed": 9, "chat": True}
    assert seeded({"chat": True}, 2) == {"chat": True}
