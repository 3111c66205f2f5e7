"""The base every other unit builds on and that imports no other hookbench unit: errors and their exit
codes, MLflow keys, outcome vocabularies (StrEnums), paths, signal handling, background threads."""
