"""The soak, small (benchmarks/soak.py runs all 1,319 GSM8K test items): 2% faults of each kind on the
stock stand-in's fake-model mode; every fault counted by kind, no good answer lost, the rerun
regenerates only the failed ones."""

from __future__ import annotations

from hookbench.testing.soak import soak


def test_a_small_soak_counts_every_fault_and_loses_no_answer(stock_server, gsm8k_path):
    figures = soak(stock_server, 100, path=gsm8k_path)
    print(figures)
    assert figures["faults_injected"] == {"5xx": 4, "error-text": 4, "empty": 4}
    assert figures["faults_counted"] == figures["faults_injected"]
    assert figures["rerun_regenerated"] == figures["failed_answers"] == 12
    assert figures["answers_lost"] == 0
