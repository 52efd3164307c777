"""`vitcli inspect`: the analysis figures of the ViT paper (Dosovitskiy et al. 2021, figure 7 and its
appendix) from any vitcli checkpoint, and attention as it forms during training.

    distance.py    mean attention distance per block and head (how far each head looks)
    positions.py   cosine similarity of the position embeddings (did the model learn the 2-D layout?)
    filters.py     principal components of the patch projection, as image patches
    per_class.py   the [CLS] attention averaged per class
    evolution.py   `train --snapshot-attention K`, read back: K images' attention after every epoch
    against.py     two models on one split: where they disagree
    analysis.py    a checkpoint from start to finish: one pass over the images feeds every figure
    json_view.py   the numbers of `--json`
    figures.py     the pictures (matplotlib); everything else here computes on tensors
"""
