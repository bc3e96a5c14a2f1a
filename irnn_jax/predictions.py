"""Class probabilities of a classification run's latest checkpoint, as CSV.

`write_predictions(workdir, split, path)` reloads the run (`run.load_run`) at
its latest checkpoint and
writes one row per example of the split (padding never):
  example (position in the split), label, predicted, p_0 .. p_{K-1}.
`file_accuracy(path)` recomputes the accuracy from such a file.
"""

import csv
import os

import jax
import numpy as np

from irnn_jax import run


def write_predictions(workdir: str, split: str, path: str, max_examples: int = 0,
                      data_dir: str = "") -> dict:
  """Write the CSV of `split`; returns {"step", "examples", "accuracy"}.

  max_examples > 0 keeps the first ones of the split; data_dir, if set,
  replaces config.data.dir (the run's may be relative to another cwd).
  """
  overrides = {"eval_examples": max_examples, **({"dir": data_dir} if data_dir else {})}
  loaded = run.load_run(workdir, data_overrides=overrides)
  dataset, model, state = loaded.dataset, loaded.model, loaded.state
  if dataset.task != "classification":
    raise ValueError(f"{workdir} trained a {dataset.task} task; predictions are "
                     "written for classification runs only")
  if split not in dataset.eval_splits:
    raise ValueError(f"unknown split {split!r}; this data set has {dataset.eval_splits}")

  @jax.jit
  def logits(params, batch_stats, inputs):
    return model.apply(run.variables_of(params, batch_stats), inputs, train=False)[0]

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
