"""Settings: everything a run is told, as plain dataclasses, validated once at the boundary.

    config.py    Config and its [data], [train], [run] sections; TOML in and out; load_config
    toml_files.py  reading a TOML file (one line per failure) and writing our flat sections
    specs.py     the model kinds' [model] sections (ViTSpec, CNNSpec, TimmSpec): fields, checks, and what
                 each kind's model can do (attention, positions, a timm equivalent)
    fields.py    building a section from TOML values, the checks every section uses, and `option`: each
                 field's command-line option (help, group, spelling), declared on the field itself
    choices.py   the words an option can take (data sets, tokenizers, poolings, ...)
    compat.py    settings and checkpoints of vitcli 0.1.0, read as they were meant
    presets/     the named recipes of `--preset` (TOML files)
    suggest.py   "did you mean" for mistyped words

May import: vitcli.runtime, vitcli.errors, vitcli.events. Imports no torch, so the command line reads
the options from here at once.
"""
