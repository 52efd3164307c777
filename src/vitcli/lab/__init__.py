"""The lab: tools that read finished runs and checkpoints, never train.

    evaluate.py        `vitcli eval`: a checkpoint on a split, per-class accuracy and confusion
    explain.py         `vitcli attention`: chosen images' attention maps and rollout
    attention_figure.py  its pictures
    inspection/        `vitcli inspect`: the ViT paper's analysis figures, attention as it formed
    comparison.py      `vitcli compare`: runs side by side
    prediction.py      `vitcli predict`: image files through a checkpoint
    exporter.py        `vitcli export`: a timm folder or ONNX
    environment.py     `vitcli info`: versions, device, data and cache folders
    reporting/         `vitcli report --html/--markdown`: one offline page per study
    class_matching.py  a checkpoint's classes paired with a data set's

May import: vitcli.sweeps and everything below it.
"""
