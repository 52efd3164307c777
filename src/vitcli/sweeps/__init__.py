"""Sweeps: many runs of one grid of settings, and one results table.

    plan.py      the grid: which runs, their keys and run directories, what is invalid before any data
    execute.py   run_sweep: the runs in plan order, resumed where they stopped
    attempt.py   one run's attempt, shared by the sweep's process, worker processes and Slurm jobs
    jobs.py      --jobs N: worker processes, one GPU or a share of the cores each
    slurm.py     --executor slurm: a submitit job array
    results.py   results.jsonl and .csv, written atomically; their summary by swept values
    charts.py    --plot: accuracy and cost charts

May import: vitcli.training and everything below it.
"""
