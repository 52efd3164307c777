"""Write UCI's handwritten digits (1,797 gray 8x8 images in 10 classes, bundled with scikit-learn, so no
download) as a plain image folder, DIR/<digit>/<n>.png: the small real folder data set of
docs/small-data.md's "small sets" section, on which `vitcli train --dataset folder:DIR` holds out 20% of
each class (359 images) as the test split.

    pip install scikit-learn
    python benchmarks/digits_folder.py digits      # then: vitcli train --dataset folder:digits ...

The pixels are UCI's 0-16 counts scaled to 0-255 (x 255 / 16, rounded).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder to write (must not exist yet)")
    args = parser.parse_args()
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        message = "error: this script reads the digits bundled with scikit-learn: pip install scikit-learn"
        raise SystemExit(message) from None
    if args.out.exists():
        raise SystemExit(f"error: {args.out} already exists; choose a new folder")
    digits = load_digits()
    pixels = np.rint(digits.images * 255 / 16).astype(np.uint8)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    for i, (image, label) in enumerate(zip(pixels, digits.target)):
        folder = tmp / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{i:04d}.png")
    tmp.rename(args.out)  # whole or not at all
    print(f"wrote {len(pixels):,} images of {len(set(digits.target))} classes to {args.out}")


if __name__ == "__main__":
    main()
