"""Training: one run from a Config to a run directory.

    run.py            train_run and resume_run: data, model, the epochs, the test, the summary
    engine.py         fit: the epochs and steps, validation, the best weights, stopping cleanly
    optim.py          AdamW, parameter groups, warmup and cosine decay
    averaging.py      the weights' moving average (--ema)
    evaluation.py     accuracy, loss and confusion on a split
    confidence.py     an accuracy's 95% (Wilson) interval, and which splits are small enough to show it
    teacher.py        a distilled ViT's teacher, loaded from its checkpoint
    transfer.py       --init: a run started from another run's weights, fitted to the data; --freeze
    small_sets.py     the batch size, learning rate and warmup of a small training set
    run_dir.py        the run directory: its files and how they are written
    provenance.py     provenance.json: command, versions, device, threads, commit, data checksum
    checkpoint.py     model.safetensors: weights with everything needed to rebuild them
    state.py          state.safetensors: what an exact resume needs
    resume.py         which settings a resume may change
    curves.py         curves.png after every epoch
    tensorboard_log.py  --tensorboard
    snapshots.py      --snapshot-attention K: attention kept after every epoch

May import: vitcli.models, vitcli.data, vitcli.settings, vitcli.runtime, vitcli.errors, vitcli.events.
"""
