"""A saved run's predictions on one split, as CSV, for every task.

`write_predictions(workdir, split, path)` reloads the run at its latest (or
best) checkpoint and writes one row per example of the split (padding never):
  classification: example, label, predicted, [label_name, predicted_name,]
      p_0 .. p_{K-1} (class probabilities; the names where the data set has
      `class_names`);
  regression: example, target, prediction; with K targets per example
      target_0 .. target_{K-1}, prediction_0 .. prediction_{K-1};
  language model: one row per token, in the order of each evaluation stream
      (for Penn Treebank, the order of the split): example, stream, position,
      label (the next token), predicted (the argmax), [label_name,
      predicted_name,] p_label (its probability). The recurrent states run on
      from window to window, as in evaluation.
With fmt="inference_target" (classification and regression) the file is
neon's instead: a header line `inference, target`, then one line per example,
the predicted class (or the prediction) and the label (or the target).
`file_accuracy(path)` (classification, language model) and `file_mse(path)`
(regression) recompute the metric from either kind of file.
"""

import csv
import os

import jax
import numpy as np

from irnn_jax import evaluation, run


def model_outputs(loaded: run.Run, split: str):
  """(batch, outputs float32 numpy) for each evaluation batch of `split`, from
  zero states, carried on from batch to batch where the data set carries them."""

  @jax.jit
  def apply(variables, batch, states):
    return loaded.model.apply(variables, batch["inputs"], states,
                              seq_lengths=batch.get("lengths"), train=False)

  states = None
  for batch in loaded.dataset.eval_batches(split):
    outputs, finals = apply(loaded.variables, batch, states)
    states = finals if loaded.spec.carries_state else None
    yield batch, np.asarray(outputs, np.float32)


def _softmax(logits: np.ndarray) -> np.ndarray:
  shifted = np.exp(logits - logits.max(-1, keepdims=True))
  return shifted / shifted.sum(-1, keepdims=True)


def _class_rows(loaded, split, names, writer) -> tuple[int, dict]:
  """Write the rows of a classification run: (examples, {"accuracy"})."""
  header = ["example", "label", "predicted"] + (["label_name", "predicted_name"] if names
                                                else [])
  writer.writerow(header + [f"p_{k}" for k in range(loaded.spec.num_outputs)])
  examples = correct = 0
  for batch, outputs in model_outputs(loaded, split):
    probs, predicted = _softmax(outputs), outputs.argmax(-1)
    for i in np.flatnonzero(batch["mask"] > 0):
      label, guess = int(batch["targets"][i]), int(predicted[i])
      named = [names[label], names[guess]] if names else []
      writer.writerow([examples, label, guess] + named + [f"{p:.6g}" for p in probs[i]])
      examples += 1
      correct += guess == label
  return examples, {"accuracy": correct / max(examples, 1)}


def _regression_rows(loaded, split, names, writer) -> tuple[int, dict]:
  """Write the rows of a regression run: (examples, {"mse"}), the mean over
  every target as in training."""
  del names
  header, examples, squares, elements = None, 0, 0.0, 0
  for batch, outputs in model_outputs(loaded, split):
    targets = np.asarray(batch["targets"], np.float32)
    if outputs.shape != targets.shape and outputs.shape[:-1] == targets.shape:
      outputs = outputs[..., 0]  # One output per target, as tasks.batch_metrics reads it.
    if outputs.shape != targets.shape:
      raise ValueError(f"outputs {outputs.shape} do not match targets {targets.shape}")
    targets, outputs = targets.reshape(len(targets), -1), outputs.reshape(len(targets), -1)
    if header is None:
      k = targets.shape[1]
      header = (["example", "target", "prediction"] if k == 1 else
                ["example"] + [f"target_{j}" for j in range(k)]
                + [f"prediction_{j}" for j in range(k)])
      writer.writerow(header)
    for i in np.flatnonzero(batch["mask"] > 0):
      writer.writerow([examples] + [f"{v:.6g}" for v in (*targets[i], *outputs[i])])
      examples += 1
      squares += float(np.sum((outputs[i] - targets[i]) ** 2))
      elements += targets.shape[1]
  return examples, {"mse": squares / max(elements, 1)}


def _token_rows(loaded, split, names, writer) -> tuple[int, dict]:
  """Write the rows of a language model, one per token in stream order:
  (tokens, {"accuracy"})."""
  writer.writerow(["example", "stream", "position", "label", "predicted"]
                  + (["label_name", "predicted_name"] if names else []) + ["p_label"])
  parts, start = [], 0
  for batch, outputs in model_outputs(loaded, split):
    rows, steps = batch["targets"].shape
    stream, position = np.meshgrid(np.arange(rows), start + np.arange(steps), indexing="ij")
    keep = batch["mask"] > 0
    log_probs = outputs - outputs.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    labels = batch["targets"]
    p_label = np.exp(np.take_along_axis(log_probs, labels[..., None], -1)[..., 0])
    parts.append([a[keep] for a in (stream, position, labels, outputs.argmax(-1), p_label)])
    start += steps
  if not parts:
    return 0, {"accuracy": 0.0}
  stream, position, labels, predicted, p_label = (np.concatenate(c) for c in zip(*parts))
  for n, i in enumerate(np.lexsort((position, stream))):
    label, guess = int(labels[i]), int(predicted[i])
    named = [names[label], names[guess]] if names else []
    writer.writerow([n, int(stream[i]), int(position[i]), label, guess] + named
                    + [f"{p_label[i]:.6g}"])
  return len(labels), {"accuracy": float(np.mean(labels == predicted))}


ROWS = {"classification": _class_rows, "regression": _regression_rows,
        "language_model": _token_rows}
FORMATS = ("table", "inference_target")


def _inference_target_lines(loaded, split, f) -> tuple[int, dict]:
  """neon's `inference, target` file of a classifier or a one-target regression."""
  task = loaded.spec.task
  f.write("inference, target\n")
  examples, total = 0, 0.0
  for batch, outputs in model_outputs(loaded, split):
    targets = np.asarray(batch["targets"])
    if task == "classification":
      guesses = outputs.argmax(-1)
    else:
      guesses = outputs.reshape(len(targets), -1)
      if guesses.shape[1] != 1 or targets.reshape(len(targets), -1).shape[1] != 1:
        raise ValueError("the inference_target format holds one target per example; "
                         "this run has more (use the table format)")
      guesses, targets = guesses[:, 0], targets.reshape(-1).astype(np.float32)
    for i in np.flatnonzero(batch["mask"] > 0):
      if task == "classification":
        f.write(f"{int(guesses[i])}, {int(targets[i])}\n")
        total += int(guesses[i]) == int(targets[i])
      else:
        f.write(f"{guesses[i]:.6g}, {targets[i]:.6g}\n")
        total += float(guesses[i] - targets[i]) ** 2
      examples += 1
  name = "accuracy" if task == "classification" else "mse"
  return examples, {name: total / max(examples, 1)}


def _names(dataset, task: str):
  """Class names (`class_names`) or, for a language model, its tokens (`vocab`)."""
  names = getattr(dataset, "class_names", None)
  if names is None and task == "language_model":
    names = getattr(dataset, "vocab", None)
  return tuple(names) if names is not None else None


def write_predictions(workdir: str, split: str, path: str, max_examples: int = 0,
                      data_dir: str = "", checkpoint: str = "latest",
                      fmt: str = "table") -> dict:
  """Write the predictions of `split`; returns {"step", "examples" (tokens for
  a language model), and "accuracy" or, for regression, "mse"}.

  max_examples > 0 keeps the first ones of the split (0: all of it; see
  `evaluation.load`); data_dir, if set, replaces config.data.dir (the run's
  may be relative to another cwd); checkpoint: latest | best; fmt: table (the
  CSV) | inference_target (neon's file).
  """
  if fmt not in FORMATS:
    raise ValueError(f"unknown predictions format {fmt!r}; choose from {FORMATS}")
  loaded = evaluation.load(workdir, checkpoint, max_examples, data_dir)
  evaluation.check_split(loaded, split)
  task = loaded.spec.task
  if task not in ROWS:
    raise ValueError(f"{workdir} trained a {task!r} task; predictions are written for "
                     f"{tuple(ROWS)}")
  if fmt == "inference_target" and task == "language_model":
    raise ValueError("the inference_target format is for classifiers and regression; "
                     f"{workdir} trained a language model (use the table format)")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w", newline="") as f:
    if fmt == "inference_target":
      examples, summary = _inference_target_lines(loaded, split, f)
    else:
      examples, summary = ROWS[task](loaded, split, _names(loaded.dataset, task),
                                     csv.writer(f))
  os.replace(tmp, path)
  return {"step": int(loaded.state.step), "examples": examples, **summary}


def _rows(path: str) -> list[dict]:
  """The rows of either format, an inference_target file's renamed to the
  table's (inference -> predicted or prediction, target -> label or target)."""
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f, skipinitialspace=True))
  if not rows:
    raise ValueError(f"{path} has no predictions")
  if set(rows[0]) == {"inference", "target"}:
    classes = all(r["inference"].lstrip("-").isdigit() and r["target"].lstrip("-").isdigit()
                  for r in rows)
    guess, truth = ("predicted", "label") if classes else ("prediction", "target")
    rows = [{guess: r["inference"], truth: r["target"]} for r in rows]
  return rows


def file_accuracy(path: str) -> float:
  """Fraction of rows of a predictions file whose predicted class is the label."""
  rows = _rows(path)
  if "label" not in rows[0]:
    raise ValueError(f"{path} holds no labels (a regression run's file? see file_mse)")
  return sum(r["predicted"] == r["label"] for r in rows) / len(rows)


def file_mse(path: str) -> float:
  """Mean squared error over every target of a regression predictions CSV."""
  rows = _rows(path)
  pairs = [("target", "prediction")] if "target" in rows[0] else [
      (k, "prediction_" + k.split("_", 1)[1]) for k in rows[0] if k.startswith("target_")]
  if not pairs:
    raise ValueError(f"{path} holds no regression targets (a classifier's file? see "
                     "file_accuracy)")
  errors = [(float(r[p]) - float(r[t])) ** 2 for r in rows for t, p in pairs]
  return sum(errors) / len(errors)
