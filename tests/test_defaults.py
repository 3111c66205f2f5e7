"""Defaults live in one home: conf/*.yaml, mirrored by the config schema (hookbench/evaluation/config_schema.py).

A literal default for a configured setting anywhere else (a keyword default `alpha=0.05`, a module
constant `TARGET_EFFECT = 0.03`, a fallback `params.get(STATS_ALPHA, 0.05)` or `0.05 if alpha is None
else alpha`, an argparse `--alpha` default) would silently disagree with the YAML the day one of them
changes; this test finds them with `ast`.
"""

import ast
import re
import textwrap
from pathlib import Path

from omegaconf import OmegaConf

from hookbench.evaluation.config_schema import schema_default

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "hookbench" / "evaluation" / "config_schema.py"
SETTINGS = ("alpha", "target_effect", "margin", "correction")  # the configured settings checked here
CORRECTIONS = ("holm", "bh", "none")  # stats.correction's values


def _is_setting(name: str) -> bool:
    return any(s in name.lower() for s in SETTINGS)


def _named(node: ast.AST) -> str:
    """The name an expression is known by: `alpha`, `mlflow_keys.STATS_ALPHA` -> STATS_ALPHA, a string key."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""


def _literal(node: ast.AST | None) -> bool:
    """A setting's value written in the code: a number, or one of stats.correction's methods (None is
    'not given', not a default; a key's name such as "stats.alpha" is no value)."""
    if isinstance(node, ast.UnaryOp):
        return _literal(node.operand)
    return isinstance(node, ast.Constant) and (
        isinstance(node.value, int | float) and not isinstance(node.value, bool) or node.value in CORRECTIONS)


def _setting_constant(node: ast.AST | None) -> bool:
    """A module constant named for a setting, used as a default (`effect=TARGET_EFFECT`)."""
    constant = r"(DEFAULT_)?(ALPHA|TARGET_EFFECT|MARGIN|CORRECTION)"
    return isinstance(node, ast.Name | ast.Attribute) and re.fullmatch(constant, _named(node)) is not None


def _default(node: ast.AST | None) -> bool:
    return _literal(node) or _setting_constant(node)


def _correction(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value in CORRECTIONS[:2]  # "none" is too common a default to tell


def _parameter_defaults(node: ast.AST) -> list[tuple[str, ast.AST | None]]:
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        return []
    a = node.args
    positional = a.posonlyargs + a.args
    return ([(arg.arg, d) for arg, d in zip(positional[len(positional) - len(a.defaults):], a.defaults)]
            + [(arg.arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults)])


def literal_defaults(source: str) -> list[str]:
    """`line: what` for every literal default or fallback of a setting in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        found += [f"{line}: parameter {name}" for name, d in _parameter_defaults(node)
                  if _is_setting(name) and _literal(d) or _setting_constant(d) or _correction(d)]
        if isinstance(node, ast.Assign | ast.AnnAssign) and _literal(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [f"{line}: constant {_named(t)}" for t in targets if _is_setting(_named(t))]
        if isinstance(node, ast.Call):
            call = _named(node.func)
            if call == "get" and len(node.args) == 2 and _is_setting(_named(node.args[0])) and _default(node.args[1]):
                found.append(f"{line}: fallback .get({_named(node.args[0])}, ...)")
            if call == "next" and len(node.args) == 2 and _setting_constant(node.args[1]):
                found.append(f"{line}: fallback next(..., {_named(node.args[1])})")
            if call == "add_argument" and node.args and _is_setting(_named(node.args[0])):
                found += [f"{line}: option {_named(node.args[0])} default" for k in node.keywords
                          if k.arg == "default" and _literal(k.value)]
            found += [f"{line}: argument {k.arg}=" for k in node.keywords
                      if k.arg and _is_setting(k.arg) and _literal(k.value)]
        if isinstance(node, ast.IfExp) and _is_setting(ast.unparse(node.test)) and (_default(node.body) or _default(node.orelse)):
            found.append(f"{line}: fallback {ast.unparse(node)}")
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and _is_setting(_named(node.values[0])) \
                and any(_default(v) for v in node.values[1:]):
            found.append(f"{line}: fallback {ast.unparse(node)}")
    return sorted(found, key=lambda hit: int(hit.split(":")[0]))


def test_no_literal_default_outside_conf_and_the_schema():
    files = [p for p in sorted((ROOT / "hookbench").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))
             if p != SCHEMA]
    found = [f"{p.relative_to(ROOT)}:{hit}" for p in files for hit in literal_defaults(p.read_text(encoding="utf-8"))]
    assert not found, "defaults of alpha / target_effect / margin / correction belong in conf/ (and the schema):\n" + "\n".join(found)


def test_the_check_finds_each_kind_of_default():
    """Positive control: each way a default was written in hookbench before finds its line."""
    planted = textwrap.dedent("""
        TARGET_EFFECT = 0.03
        DEFAULT_MARGIN = 0.05
        def summarize(records, draws=1, alpha=0.05, target_effect=None): ...
        def items_needed(diffs, groups, effect=TARGET_EFFECT, *, correction="holm"): ...
        def confirm(p, method="bh"):
            return float(p.get(mlflow_keys.STATS_ALPHA, 0.05)), next((v for v in p.values()), TARGET_EFFECT)
        def note(alpha):
            alpha = ALPHA if alpha is None else alpha
            margin = margin or 0.03
            return compare_arms(b, p, alpha=0.05)
        parser.add_argument("--alpha", type=float, default=0.05)
        def fine(alpha, target_effect=None, margin: float | None = None, power=0.8, draws=1):
            return p.get(mlflow_keys.STATS_ALPHA, schema_default(mlflow_keys.STATS_ALPHA))
    """)
    found = literal_defaults(planted)
    assert [f.split(":")[0] for f in found] == ["2", "3", "4", "5", "5", "6", "7", "7", "9", "10", "11", "12"], found


def _leaves(node: object, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _leaves(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): node}


def test_the_schema_defaults_are_the_yaml_values():
    """Each setting conf/config.yaml sets has the same default in the schema (a run logged before the
    setting existed is completed from the schema, so the two must not drift)."""
    yaml = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "config.yaml"), resolve=False)
    assert isinstance(yaml, dict)
    leaves = {k: v for k, v in _leaves({k: v for k, v in yaml.items() if k not in ("defaults", "hydra", "guards")}).items()
              if not (isinstance(v, str) and "${" in v)}  # interpolations (mlflow paths) resolve at run time
    assert {"stats.alpha", "stats.target_effect", "stats.correction", "guard.margin", "reproduce.margin"} <= set(leaves)
    differ = {k: (v, schema_default(k)) for k, v in leaves.items() if schema_default(k) != v}
    assert not differ, f"conf/config.yaml value vs schema default: {differ}"
