"""Write MNIST (IDX files) as HDF5 files in neon's layout: train.h5 and test.h5.

  python -m experiments.make_hdf5 --mnist_dir=../shared/data/mnist --out=runs/mnist_h5 \
      [--pad_to=32] [--dtype=uint8|float32] [--mean=none|channel|pixel]

Each file holds `input` [N, C*H*W] (attribute lshape = (1, H, W)), `output`
[N, 1] (attribute nclass = 10) and, with --mean, the images' mean; the
trainer reads them with config.data.name = "hdf5" (irnn_jax/data/hdf5_images.py).
--pad_to zero-pads the 28x28 images, centred.
"""

import os

from absl import app, flags
import numpy as np

from irnn_jax.data import hdf5_images, images, mnist_source

FLAGS = flags.FLAGS
flags.DEFINE_string("mnist_dir", None, "Directory of the four MNIST IDX files (.gz or not).")
flags.DEFINE_string("out", None, "Directory to write train.h5 and test.h5 to (made if missing).")
flags.DEFINE_integer("pad_to", 0, "Zero-pad the images to pad_to x pad_to; 0 = 28 x 28.")
flags.DEFINE_enum("dtype", "uint8", list(hdf5_images.DTYPES), "Type of the input dataset.")
flags.DEFINE_enum("mean", "none", ["none", "channel", "pixel"],
                  "Write a `mean` dataset: each file's own mean per channel or per pixel.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  splits = mnist_source.load_files(FLAGS.mnist_dir)
  for split, (pixels, labels) in splits.items():
    side = mnist_source.IMAGE_SIDE
    x = images.pad_images(pixels.reshape(-1, side, side, 1), FLAGS.pad_to)
    path = os.path.join(FLAGS.out, f"{split}.h5")
    hdf5_images.write(path, x, labels, mnist_source.NUM_CLASSES, FLAGS.dtype, FLAGS.mean)
    print(f"{path}: {len(labels)} images of {x.shape[1]}x{x.shape[2]}, {FLAGS.dtype}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["mnist_dir", "out"])  # Not on import (tests import it).
  app.run(main)
