"""hookbench: does a tensor edit make a model better? Baseline vs patched, with evidence."""

__version__ = "0.1.0"
