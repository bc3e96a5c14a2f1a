"""neon's ReNet practical: a gender classifier on 3x128x128 faces, read from HDF5.

Reference: the recurrent-networks practical of Nervana's neon course (a
ReNet-style network on IMDB-WIKI faces, 2 classes, data in neon HDF5 files).
Its setting, which the default variant `faces` copies: inputs divided by 128
(after the files' mean, where they have one, is subtracted); batch norm; conv
3x3 of 32 filters, dilation 2, padding 2, Kaiming init, zero bias, relu; batch
norm; max-pool 3x3, stride 2, padding 1; the same with 64 and 128 filters;
conv 256 and batch norm (no pool); a spatial RNN block over 2x2 patches, a
bidirectional tanh RNN of 256 units (Glorot uniform), down the columns then
along the rows, outputs stacked (512 channels); batch norm; a second block of
512 units (1024 channels); batch norm; a 1x1 conv to the classes with padding
1 and relu; global average pool; softmax cross-entropy. SGD, momentum 0.9,
lr 0.01, weight decay 5e-4, 10 epochs. The test outputs go to a file headed
`inference, target`:

  python -m experiments.main --config=configs/neon_renet.py --config.data.dir=FACES_DIR \
      --workdir=runs/neon_faces
  python -m experiments.predict --workdir=runs/neon_faces --format=inference_target \
      --output=runs/neon_faces/test_results.txt

FACES_DIR holds train.h5 and test.h5 in neon's layout (irnn_jax/data/hdf5_images.py).
The faces are not on this machine; that variant has not been run here.

Where ours differs: neon's batch size is not in the practical's text we have;
we use neon's default, 128. Our weight decay spares biases and batch-norm
parameters (neon's applies to every parameter). The RNN's zero initial state and
bias are as in neon; its recurrent weights are Glorot uniform per [H, H] block.

Variant `mnist`: the same network on MNIST written to HDF5 (28x28: the pools
give 14, 7, 4, the blocks 2 and 1), one epoch:
  python -m experiments.make_hdf5 --mnist_dir=../shared/data/mnist --out=runs/mnist_h5
  python -m experiments.main --config=configs/neon_renet.py:mnist --workdir=runs/neon_mnist

Measured at commit 8c18864, one core (shared), float32 (docs/reproduction.md):
  mnist   98.05% test accuracy  1 epoch (468 steps)  8.1 min
The faces variant has not been run (the faces are not on this machine).
"""

from irnn_jax import configlib

VARIANTS = ("faces", "mnist")


def get_config(variant: str = "faces"):
  if variant not in VARIANTS:
    raise ValueError(f"unknown neon variant {variant!r}; choose from {VARIANTS}")
  c = configlib.base_config()
  d = c.data
  d.name, d.seq_len = "hdf5", 0
  d.input_scale = 1 / 128
  d.batch_size, d.eval_batch_size, d.eval_examples = 128, 250, 0
  d.validation_size = 0  # neon trains on all of train.h5 and tests on test.h5.
  m = c.model
  m.arch, m.cell = "renet", "rnn"
  m.cells.rnn.activation, m.cells.rnn.recurrent_init = "tanh", "glorot"
  m.input_init = "glorot"
  m.input_norm = True
  m.conv_channels, m.conv_kernel, m.conv_dilation = (32, 64, 128, 256), 3, 2
  m.conv_order, m.conv_init = "relu_norm", "kaiming"
  m.pool, m.pool_window, m.pool_padding, m.pool_last_conv = 2, 3, 1, False
  m.patch_sizes, m.num_layers, m.hidden_size = ((2, 2), (2, 2)), 2, 256
  m.block_hidden_sizes = (256, 512)
  m.classifier_padding, m.classifier_activation = 1, "relu"
  o = c.optimizer
  o.name, o.learning_rate, o.momentum, o.weight_decay = "sgd", 0.01, 0.9, 5e-4
  t = c.train
  t.num_epochs = 10
  t.log_every, t.eval_every, t.checkpoint_every = 50, 1000, 500
  t.select_metric = ""  # No validation split to select on.
  if variant == "mnist":
    d.dir = "runs/mnist_h5"
    t.num_epochs = 1
  return c
