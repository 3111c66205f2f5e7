"""`hookbench compare A B`: hookbench's paired verdict for two evaluation logs of the same items.

Reads lm-eval `--log_samples` output, hookbench runs and inspect_ai logs (logs and its readers),
pairs them by the logs' own item ids (pairing), judges each task and metric with hookbench's tests
(verdicts), writes the tables (report) and records a parent run with a child per metric (record).
"""
