"""Every metric, tag and param key hookbench writes or reads is spelt once, in hookbench/base/mlflow_keys.py.

A key spelt a second time drifts: the writer renames it and the reader (a reproduction, a sweep summary,
the UI's saved view) silently finds nothing. Three rules over hookbench/'s source:
- a key handed to MLflow (log_metric/log_param/set_tag and their dict forms, a run's tags/params/metrics
  read back) is never a string literal;
- no literal outside mlflow_keys.py equals a key mlflow_keys.py defines (`"patch.hash"`);
- no literal outside mlflow_keys.py is shaped like a metric or tag in one of mlflow_keys' namespaces
  (`"study/trials"`, an f-string `f"hookbench.study.{x}"`).
"""

import ast
import importlib.util
import re
from pathlib import Path

from hookbench.base import mlflow_keys

PKG = Path(__file__).resolve().parents[1] / "hookbench"
SKIP = {"base/mlflow_keys.py", "server"}  # the reference server logs nothing to MLflow (its contract: hookapi/contract.py)
# strings in a key namespace that are not keys
NOT_KEYS = {"n/a": "the printed 'not available'", "hookbench.patch/v1": "the patch file's format id",
            "mlflow.db": "the local store's file name"}

KEYS = {v for k, v in vars(mlflow_keys).items() if k.isupper() and isinstance(v, str)}
DOTTED = {k for k in KEYS if re.fullmatch(r"[\w.]+[./][\w./]+", k)}
# metric namespaces (accuracy/, study/, ...) and tag namespaces (hookbench., mlflow., sweep., ...)
METRIC_SPACES = sorted({k.split("/")[0] for k in DOTTED if "/" in k})
TAG_SPACES = sorted({v.split(".")[0] for n, v in vars(mlflow_keys).items() if n.startswith("TAG_") and "." in v})
SHAPED = re.compile(rf"({'|'.join(METRIC_SPACES)})/[\w.{{}}/]*|({'|'.join(TAG_SPACES)})\.[\w.{{}}]*")
WRITES = {"log_metric", "log_param", "set_tag", "set_experiment_tag"}  # (key, value) or (run_id, key, value)
DICT_WRITES = {"log_metrics", "log_params", "set_tags"}
READ_BACK = {"tags", "params", "metrics"}  # run.data.tags.get("x"), run.data.params["x"]


def _is_import_path(text: str) -> bool:
    """`hookbench.server`, `mlflow.exceptions`, `hookbench.evaluation.patches.NoPatch`: a module or a class in one, not a key."""
    def found(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except ImportError:  # not a module, or one that cannot be imported here
            return False
    module, _, last = text.rpartition(".")
    return text.startswith(("hookbench.", "mlflow.")) and (found(text) or (last[:1].isupper() and found(module)))


def _strings(tree: ast.AST):
    """(line, text) of every string constant, each f-string as its leading literal part + `{}`."""
    inner = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inner:
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            yield node.lineno, f"{node.values[0].value}{{}}"


def _literal(node) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _mlflow_keys(tree: ast.AST):
    """(line, source) of every literal in a key position of an MLflow write or read-back."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name, receiver = node.func.attr, node.func.value
            if name in WRITES:
                i = 0 if isinstance(receiver, ast.Name) and receiver.id == "mlflow" else 1
                if len(node.args) > i and _literal(node.args[i]):
                    yield node.lineno, ast.unparse(node.args[i])
            dicts = [a for a in node.args if isinstance(a, ast.Dict)] if name in DICT_WRITES else []
            dicts += [kw.value for kw in node.keywords if kw.arg == "tags" and isinstance(kw.value, ast.Dict)]
            yield from ((node.lineno, ast.unparse(k)) for d in dicts for k in d.keys if _literal(k))
            if (name == "get" and isinstance(receiver, ast.Attribute) and receiver.attr in READ_BACK
                    and node.args and _literal(node.args[0])):
                yield node.lineno, ast.unparse(node.args[0])
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
                and node.value.attr in READ_BACK and _literal(node.slice)):
            yield node.lineno, ast.unparse(node.slice)


def spelt_elsewhere() -> list[str]:
    found = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if rel.parts[0] in SKIP or rel.as_posix() in SKIP:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = f"hookbench/{rel.as_posix()}"
        found += [f"{where}:{line} MLflow key {src}" for line, src in _mlflow_keys(tree)]
        for line, text in _strings(tree):
            if text in DOTTED or (SHAPED.fullmatch(text) and text not in NOT_KEYS and not _is_import_path(text)):
                found.append(f"{where}:{line} {text!r}")
    return sorted(set(found))


def test_the_rules_see_names_namespaces():
    assert {"accuracy", "study", "plan"} <= set(METRIC_SPACES) and {"hookbench", "mlflow", "sweep"} <= set(TAG_SPACES)
    assert SHAPED.fullmatch("study/trials") and SHAPED.fullmatch("hookbench.study.{}")
    assert not _is_import_path("hookbench.study.phase") and _is_import_path("hookbench.evaluation.patches.NoPatch")


def test_no_key_is_spelt_outside_mlflow_keys():
    assert spelt_elsewhere() == []
