"""Runtime: the machine a run is on, beneath every stage.

    devices.py      cpu, cuda, cuda:N, precision, memory    ranks.py        which process of several
    distributed.py  data parallelism under torchrun (DDP)   launch.py       --nproc N through torchrun
    interrupt.py    Ctrl-C, SIGTERM, SIGHUP: a clean stop   lock.py         one process per run directory
    files.py        atomic writes, one line per failure     png.py          matplotlib pictures, atomically
    orphans.py      workers that die with their parent      outputs.py      --out files: never two writers
    tensor_files.py safetensors writes, their errors as OSError   version.py  vitcli's version
    threads.py      the CPU threads a run uses, following the machine's load

May import: vitcli.errors, vitcli.events.
"""
