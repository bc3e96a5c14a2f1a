"""Class probabilities of a classification run's latest checkpoint, as CSV.

`write_predictions(workdir, split, path)` rebuilds the data set and the model
from workdir/config.json as train.py does, restores the latest checkpoint and
writes one row per example of the split (padding never):
  example (position in the split), label, predicted, p_0 .. p_{K-1}.
`file_accuracy(path)` recomputes the accuracy from such a file.
"""

import csv
import os

import jax
import ml_collections
import numpy as np

from irnn_jax import configlib, data, models, optim, train
from irnn_jax.checkpoints import Checkpointer


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {workdir!r} a training workdir?")
  return configlib.load_saved(path)


def restore_latest(config, workdir: str, model, sample_inputs) -> train.TrainState:
  """The train state of the latest checkpoint in workdir/checkpoints."""
  like = train.create_train_state(config, model, optim.make_optimizer(config.optimizer),
                                  sample_inputs)
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"),
                              config.train.checkpoint_every, config.train.keep_checkpoints)
  try:
    if checkpointer.latest_step() is None:
      raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints")
    return checkpointer.restore(like)
  finally:
    checkpointer.close()


def write_predictions(workdir: str, split: str, path: str, max_examples: int = 0,
                      data_dir: str = "") -> dict:
  """Write the CSV of `split`; returns {"step", "examples", "accuracy"}.

  max_examples > 0 keeps the first ones of the split; data_dir, if set,
  replaces config.data.dir (the run's may be relative to another cwd).
  """
  config = load_run_config(workdir)
  config.data.eval_examples = max_examples
  if data_dir:
    config.data.dir = data_dir
  dataset = data.build_dataset(config.data, config.seed, workdir)
  if dataset.task != "classification":
    raise ValueError(f"{workdir} trained a {dataset.task} task; predictions are "
                     "written for classification runs only")
  if split not in dataset.eval_splits:
    raise ValueError(f"unknown split {split!r}; this data set has {dataset.eval_splits}")
  model = models.build_model(config.model, seq_len=dataset.seq_len,
                             num_outputs=dataset.num_outputs, readout=dataset.readout,
                             vocab_size=dataset.vocab_size)
  state = restore_latest(config, workdir, model, dataset.train_batch(0)["inputs"])

  @jax.jit
  def logits(params, batch_stats, inputs):
    variables = {"params": params}
    if batch_stats:
      variables["batch_stats"] = batch_stats
    outputs, _ = model.apply(variables, inputs, train=False)
    return outputs

  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  examples = correct = 0
  with open(tmp, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["example", "label", "predicted"] +
                    [f"p_{k}" for k in range(dataset.num_outputs)])
    for batch in dataset.eval_batches(split):
      out = np.asarray(logits(state.params, state.batch_stats, batch["inputs"]))
      probs = np.asarray(jax.nn.softmax(out.astype(np.float32), axis=-1))
      predicted = out.argmax(-1)
      for i in np.flatnonzero(batch["mask"] > 0):
        label = int(batch["targets"][i])
        writer.writerow([examples, label, int(predicted[i])] +
                        [f"{p:.6g}" for p in probs[i]])
        examples += 1
        correct += int(predicted[i] == label)
  os.replace(tmp, path)
  return {"step": int(state.step), "examples": examples,
          "accuracy": correct / max(examples, 1)}


def file_accuracy(path: str) -> float:
  """Fraction of rows of a predictions CSV whose predicted class is the label."""
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  if not rows:
    raise ValueError(f"{path} has no predictions")
  return sum(r["predicted"] == r["label"] for r in rows) / len(rows)
