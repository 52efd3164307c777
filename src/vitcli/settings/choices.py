"""The words an option can take, kept here so that the parser, `--help`, the checks and the code that acts
on them share one list, and so that the command line can offer them without importing torch."""

DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100")  # and folder:PATH
DEVICES = ("auto", "cpu", "cuda")  # and cuda:N
PRECISIONS = ("auto", "fp32", "bf16")  # --precision: auto is bf16 on CUDA, and on the CPU where it pays
MODEL_KINDS = ("vit", "cnn", "timm")  # timm models are vitcli finetune's
TRAIN_KINDS = ("vit", "cnn")  # the kinds `vitcli train --model` offers
POS_EMBEDS = ("learned", "sinusoidal", "none")
TOKENIZERS = ("patch", "spt", "conv")
POOLS = ("cls", "gap", "seq")
PRETRAINED = ("none", "imagenet", "dino")  # or the path of a .safetensors, .pth or .bin state dict
CHANNELS = ("adapt", "repeat")
SPLITS = ("train", "val", "test")
HEAD_FUSIONS = ("mean", "max", "min")
SWEEP_MODES = ("grid", "zip")
EXECUTORS = ("local", "slurm")
FIGURES = ("distance", "positions", "filters", "classes")  # vitcli inspect's
EXPORT_FORMATS = ("timm", "onnx")  # vitcli export --format
INSPECT_IMAGES = 1000  # vitcli inspect's images for the attention figures (its --images default)
