"""Penn Treebank: tokens, vocabulary, BPTT streams, state carry, LM metrics,
the trainer end to end with resume, and the sampler.

Everything runs on tiny hand-written corpora; one check compares with the real
files when ../shared/data/ptb is there.
"""

import math
import os
import subprocess
import sys

import flax
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs.common import ptb as ptb_configs
from irnn_jax import configlib, models, run, sampling, tasks, train
from irnn_jax.checkpoints import Checkpointer
from irnn_jax.data import build_dataset, ptb
from irnn_jax.summary import read_scalars
from configs import ptb_char, ptb_word
from experiments import sample

SENTENCES = {
    "train": ["the cat sat", "a dog ran far", "the dog sat", "a cat ran",
              "cats and dogs", "the end"] * 3,
    "valid": ["the cat ran", "a dog sat"],
    "test": ["dogs ran", "the cat and the dog"],
}


def spell(lines) -> str:
  """The character-file format: one space between symbols, '_' for a space."""
  return "".join(" " + " ".join(line.replace(" ", "_")) + " \n" for line in lines) + " "


def write_corpus(directory, level="char", sentences=None) -> str:
  sentences = sentences or SENTENCES
  os.makedirs(directory, exist_ok=True)
  for split, lines in sentences.items():
    text = spell(lines) if level == "char" else "".join(f" {s} \n" for s in lines)
    with open(ptb.file_path(str(directory), level, split), "w") as f:
      f.write(text)
  return str(directory)


def data_cfg(directory, level="char", **fields):
  cfg = ptb_configs.data_config(configlib.base_config(), level).data
  cfg.update(dir=str(directory), seq_len=4, batch_size=3, eval_batch_size=2)
  cfg.update(fields)
  return cfg


def toy_dataset(n=40, seq_len=4, batch_size=3, **kwargs):
  """Token i has id i: positions are visible in the batches."""
  ids = {s: np.arange(n, dtype=np.int32) for s in ptb.SPLITS}
  return ptb.PennTreebank(ids, [str(i) for i in range(n)], level="word",
                          seq_len=seq_len, batch_size=batch_size,
                          eval_batch_size=2, seed=7, **kwargs)


def test_char_tokens_and_vocabulary(tmp_path):
  directory = write_corpus(tmp_path / "data")
  work = str(tmp_path / "work")
  dataset = build_dataset(data_cfg(directory), 0, work)
  assert not os.path.exists(work)  # Building only reads the workdir.
  os.makedirs(work)
  dataset.save(work)
  chars = sorted(set("".join(SENTENCES["train"]).replace(" ", "_")))
  assert dataset.vocab == sorted(chars + [ptb.EOS])
  assert dataset.vocab_size == dataset.num_outputs == len(chars) + 1
  assert (dataset.task, dataset.readout, dataset.carries_state) == (
      "language_model", "all", True)
  decoded = ptb.ids_to_text(dataset.ids["valid"], dataset.vocab, "char")
  assert decoded == "the cat ran\na dog sat\n"
  assert ptb.load_vocab(str(tmp_path / "work")) == {"level": "char",
                                                    "tokens": dataset.vocab}
  # The same files again: the saved vocabulary is accepted.
  build_dataset(data_cfg(directory), 0, str(tmp_path / "work"))


def test_word_tokens_end_lines_with_eos_and_unknowns_become_unk(tmp_path):
  sentences = {"train": ["the <unk> sat", "a dog"], "valid": ["the zebra sat"],
               "test": ["a dog"]}
  directory = write_corpus(tmp_path, "word", sentences)
  dataset = build_dataset(data_cfg(directory, "word", batch_size=1, seq_len=2),
                          0, "")
  assert dataset.vocab == ["<eos>", "<unk>", "a", "dog", "sat", "the"]
  words = [dataset.vocab[i] for i in dataset.ids["valid"]]
  assert words == ["the", "<unk>", "sat", "<eos>"]
  assert ptb.ids_to_text(dataset.ids["train"], dataset.vocab, "word") == (
      "the <unk> sat\na dog\n")


def test_unknown_character_and_changed_vocabulary_stop_the_run(tmp_path):
  sentences = dict(SENTENCES, valid=["the cat ran quickly"])  # 'q', 'u', ...
  with pytest.raises(ValueError, match="not in the training vocabulary, the first 'q'"):
    build_dataset(data_cfg(write_corpus(tmp_path / "a", sentences=sentences)), 0, "")
  work = str(tmp_path / "work")
  os.makedirs(work)
  build_dataset(data_cfg(write_corpus(tmp_path / "b")), 0, work).save(work)
  other = dict(SENTENCES, train=SENTENCES["train"] + ["xylophone"])
  with pytest.raises(ValueError, match="vocab.json holds .* the data changed"):
    build_dataset(data_cfg(write_corpus(tmp_path / "c", sentences=other)), 0, work)


def test_char_level_spells_out_word_files_when_char_files_are_missing(tmp_path):
  words = build_dataset(data_cfg(write_corpus(tmp_path / "w", "word"), "char"), 0, "")
  chars = build_dataset(data_cfg(write_corpus(tmp_path / "c", "char"), "char"), 0, "")
  assert words.vocab == chars.vocab
  assert "_" in words.vocab and "<eos>" in words.vocab and "the" not in words.vocab
  for split in ptb.SPLITS:
    np.testing.assert_array_equal(words.ids[split], chars.ids[split])
  # By hand: "dogs ran" -> d o g s _ r a n <eos>.
  test_tokens = [words.vocab[i] for i in words.ids["test"][:9]]
  assert test_tokens == list("dogs_ran") + ["<eos>"]


SHARED_PTB = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "ptb")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(SHARED_PTB), reason="needs ../shared/data/ptb")
def test_spelled_real_word_files_match_the_standard_char_files(tmp_path):
  """The real valid split spelled in memory gives the tokens of the standard
  character file that the shared script writes byte for byte."""
  subprocess.run([sys.executable, os.path.join(SHARED_PTB, "make_char_files.py"),
                  str(tmp_path)], check=True, capture_output=True)
  standard = ptb.read_tokens(str(tmp_path / "ptb.char.valid.txt"), "char")
  spelled = ptb.read_tokens(os.path.join(SHARED_PTB, "ptb.valid.txt"), "char",
                            spell_words=True)
  assert len(spelled) > 100_000
  assert spelled == standard


def test_missing_and_malformed_files_fail_with_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError,
                     match=r"ptb\.char\.train\.txt.*word-level.*make_char_files\.py"):
    build_dataset(data_cfg(tmp_path), 0, "")
  with pytest.raises(FileNotFoundError, match=r"ptb\.valid\.txt"):
    sentences = {"train": ["a b"], "test": ["a"]}
    build_dataset(data_cfg(write_corpus(tmp_path / "w", "word", sentences), "word"),
                  0, "")
  # Word-level text under character-file names.
  word_text = "".join(f" {s} \n" for s in SENTENCES["train"])
  for split in ptb.SPLITS:
    (tmp_path / f"ptb.char.{split}.txt").write_text(word_text)
  with pytest.raises(ValueError, match=r"line 1: 'the' is not one character"):
    build_dataset(data_cfg(tmp_path), 0, "")
  for split in ptb.SPLITS:
    (tmp_path / f"ptb.char.{split}.txt").write_text("\n \n")
  with pytest.raises(ValueError, match="holds no tokens"):
    build_dataset(data_cfg(tmp_path), 0, "")
  cfg = data_cfg(tmp_path)
  cfg.level = "byte"
  with pytest.raises(ValueError, match="config.data.level"):
    build_dataset(cfg, 0, "")


def test_train_streams_cover_every_token_once_per_epoch_in_order():
  dataset = toy_dataset(n=40, seq_len=4, batch_size=3)
  assert (dataset.stream_len, dataset.steps_per_epoch) == (13, 3)  # (13 - 1) // 4.
  inputs = np.concatenate([dataset.train_batch(i)["inputs"] for i in range(3)], 1)
  targets = np.concatenate([dataset.train_batch(i)["targets"] for i in range(3)], 1)
  # Row b is the contiguous stream [13 b, 13 b + 12), targets one token later.
  np.testing.assert_array_equal(inputs, np.arange(39).reshape(3, 13)[:, :12])
  np.testing.assert_array_equal(targets, inputs + 1)
  assert inputs.dtype == np.int32 and dataset.train_batch(0)["inputs"].shape == (3, 4)
  np.testing.assert_array_equal(dataset.train_batch(3)["inputs"], inputs[:, :4])
  assert [dataset.is_epoch_start(s) for s in range(7)] == [
      True, False, False, True, False, False, True]


def test_random_offset_is_a_function_of_seed_and_epoch():
  dataset = toy_dataset(n=40, seq_len=4, batch_size=3, random_offset=True)
  assert dataset.steps_per_epoch == 2  # Room for any offset in [0, 4).
  offsets = [dataset.epoch_offset(e) for e in range(20)]
  assert set(offsets) == {0, 1, 2, 3}
  assert offsets[5] == np.random.default_rng([7, 5]).integers(4)
  for step in range(40):
    epoch, index = divmod(step, 2)
    batch = dataset.train_batch(step)
    first = np.arange(3) * 13 + offsets[epoch] + 4 * index
    np.testing.assert_array_equal(batch["inputs"][:, 0], first)
    np.testing.assert_array_equal(batch["targets"], batch["inputs"] + 1)
  again = toy_dataset(n=40, seq_len=4, batch_size=3, random_offset=True)
  np.testing.assert_array_equal(again.train_batch(13)["inputs"],
                                dataset.train_batch(13)["inputs"])


def test_evaluation_walks_every_pair_once_in_order():
  ids = np.arange(23, dtype=np.int32)
  batches = list(ptb.eval_windows(ids, batch_size=3, seq_len=4))
  assert all(b["inputs"].shape == b["mask"].shape == (3, 4) for b in batches)
  streams = {k: np.concatenate([b[k] for b in batches], 1) for k in batches[0]}
  mask = streams["mask"].reshape(-1) > 0
  np.testing.assert_array_equal(streams["inputs"].reshape(-1)[mask], ids[:-1])
  np.testing.assert_array_equal(streams["targets"].reshape(-1)[mask], ids[1:])
  # Padding only at the end of each stream, so a carried state never skips.
  assert all(np.all(np.diff(row) <= 0) for row in streams["mask"])


def test_bpc_is_cross_entropy_over_ln2_and_the_mask_is_per_token():
  logits = np.log(np.array([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]],
                           np.float32))
  batch = {"targets": jnp.array([[0, 1, 0]]), "mask": jnp.array([[1.0, 1.0, 0.0]])}
  sums = tasks.batch_metrics("language_model", jnp.asarray(logits), batch)
  means = tasks.mean_metrics("language_model", jax.device_get(sums))
  nll = (-math.log(0.5) - math.log(0.8)) / 2  # The third token is masked.
  assert means["loss"] == pytest.approx(nll, rel=1e-6)
  assert means["bpc"] == pytest.approx(nll / math.log(2), rel=1e-6)
  assert means["bpc"] == pytest.approx((1 + math.log2(1.25)) / 2, rel=1e-6)
  assert means["perplexity"] == pytest.approx(math.exp(nll), rel=1e-6)
  assert means["accuracy"] == 1.0


@pytest.mark.parametrize("cell,connection", [("indrnn", "plain"),
                                             ("indrnn", "residual"),
                                             ("lstm", "plain")])
def test_carried_state_equals_one_pass_over_the_whole_sequence(cell, connection):
  m = configlib.base_config().model
  m.update(cell=cell, connection=connection, num_layers=3, hidden_size=8,
           input_init="glorot")
  m.cells.indrnn.u_high = 0.99
  model = models.build_model(m, seq_len=5, num_outputs=6, readout="all", vocab_size=6)
  tokens = jax.random.randint(jax.random.PRNGKey(1), (2, 10), 0, 6)
  variables = model.init(jax.random.PRNGKey(0), tokens, train=False)
  whole, final = model.apply(variables, tokens, train=False)
  first, carry = model.apply(variables, tokens[:, :5], train=False)
  second, final_2 = model.apply(variables, tokens[:, 5:], carry, train=False)
  np.testing.assert_allclose(np.concatenate([first, second], 1), whole, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
               final_2, final)
  assert len(final) == 3 and (cell != "lstm" or len(final[0][0]) == 2)
  # The carry matters: restarting from zero gives other outputs.
  restarted, _ = model.apply(variables, tokens[:, 5:], train=False)
  assert not np.allclose(restarted, second, atol=1e-3)


def tiny_lm_config(directory, **train_fields):
  cfg = ptb_char.get_config("indrnn")
  cfg.data.update(dir=str(directory), seq_len=8, batch_size=4, eval_batch_size=2,
                  random_offset=True)
  cfg.model.update(hidden_size=16, num_layers=2, dropout=0.1)
  cfg.optimizer.learning_rate = 1e-2
  cfg.train.update(num_steps=16, log_every=4, eval_every=16, checkpoint_every=8)
  cfg.train.update(train_fields)
  return cfg


def _checkpoint(workdir, step):
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
  return manager.restore(step, args=ocp.args.StandardRestore())


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
  """A tiny char LM trained straight through: (config, workdir, metrics,
  whether each step started from an all-zero carried state)."""
  root = tmp_path_factory.mktemp("lm")
  cfg = tiny_lm_config(write_corpus(root / "data"))
  workdir = str(root / "straight")
  original, zero_carry = train.make_train_step, []

  def spy(*args, **kwargs):
    step = original(*args, **kwargs)

    def watched(state, batch):
      zero_carry.append(not any(np.any(x) for x in jax.tree.leaves(state.carry)))
      return step(state, batch)

    return watched

  with pytest.MonkeyPatch.context() as m:
    m.setattr(train, "make_train_step", spy)
    metrics = train.train_and_evaluate(cfg, workdir)
  return cfg, workdir, metrics, zero_carry


def test_tiny_char_lm_trains_end_to_end(lm_run):
  cfg, workdir, metrics, zero_carry = lm_run
  dataset = build_dataset(cfg.data, cfg.seed, workdir)
  # (52 tokens a stream - 1 - the largest offset 7) // 8: epochs start at
  # steps 0, 5, 10, 15, so the run crosses three epoch starts.
  assert (dataset.stream_len, dataset.steps_per_epoch) == (52, 5)
  # The state restarts at zero exactly at the epoch starts.
  assert zero_carry == [step % 5 == 0 for step in range(16)]
  assert metrics["step"] == 16 and metrics["valid/bpc"] == pytest.approx(
      metrics["valid/loss"] / math.log(2))
  assert np.isfinite(metrics["test/perplexity"])
  scalars = read_scalars(workdir)
  loss = [v for *_, v in scalars["train/loss"]]
  assert loss[-1] < loss[0]
  bpc = [v for *_, v in scalars["train/bpc"]]
  np.testing.assert_allclose(bpc, np.array(loss) / math.log(2), rtol=1e-5)
  assert len(scalars["train/perplexity"]) == len(loss)
  assert os.path.exists(os.path.join(workdir, "vocab.json"))


def test_resumed_lm_run_equals_uninterrupted_run(lm_run, tmp_path, monkeypatch):
  cfg, straight, *_ = lm_run
  resumed = str(tmp_path / "resumed")
  original = ptb.PennTreebank.train_batch

  def crash_at_10(self, step):
    if step == 10:
      raise KeyboardInterrupt("simulated kill")
    return original(self, step)

  with monkeypatch.context() as m:
    m.setattr(ptb.PennTreebank, "train_batch", crash_at_10)
    with pytest.raises(KeyboardInterrupt):
      train.train_and_evaluate(cfg, resumed)
  # Step 8 is mid-epoch (5 steps per epoch): the resume needs the carried state.
  carry_8 = _checkpoint(resumed, 8)["carry"]
  assert max(float(np.abs(x).max()) for x in jax.tree.leaves(carry_8)) > 0
  train.train_and_evaluate(cfg, resumed)
  a, b = _checkpoint(straight, 16), _checkpoint(resumed, 16)
  for key in ("params", "batch_stats", "carry"):
    leaves_a, leaves_b = jax.tree.leaves(a[key]), jax.tree.leaves(b[key])
    assert len(leaves_a) == len(leaves_b) > 0
    for x, y in zip(leaves_a, leaves_b):
      np.testing.assert_array_equal(x, y)
  loss_a = read_scalars(straight)["train/loss"]
  loss_b = read_scalars(resumed)["train/loss"]
  np.testing.assert_allclose([v for *_, v in loss_b], [v for *_, v in loss_a])


def test_sampler_prints_text_and_follows_the_model(lm_run):
  _, workdir, *_ = lm_run
  text = sample.sample_text(workdir, length=30, temperature=0.8, prime="the ")
  assert text.startswith("the ") and len(text) == 34
  assert set(text) <= set("".join(SENTENCES["train"]) + "\n")
  # Greedy tokens are the argmax of the model run over the whole sequence in
  # windows with the state carried, as in evaluation: the windowing is right.
  loaded = run.load_run(workdir, with_data=False)
  model, variables, seq_len = loaded.model, loaded.variables, loaded.spec.seq_len
  context = [ptb.load_vocab(workdir)["tokens"].index(ptb.EOS)]
  ids = context + sampling.generate(model, variables, seq_len, context, 20, temperature=0.0)
  states, predicted = None, []
  for start in range(0, 24, seq_len):
    window = np.array([ids[start:start + seq_len]], np.int32)
    logits, states = model.apply(variables, window, states, train=False)
    predicted.extend(np.argmax(logits[0], -1).tolist())
  assert predicted[:20] == ids[1:21]


def test_sampler_rejects_unknown_characters(lm_run):
  _, workdir, *_ = lm_run
  with pytest.raises(ValueError, match="not in the vocabulary"):
    sample.sample_text(workdir, length=5, temperature=1.0, prime="The ")


@pytest.mark.parametrize("module", [ptb_char, ptb_word])
def test_every_ptb_variant_is_valid(module):
  for arch in ptb_configs.VARIANTS:
    for variant in (arch, arch + "_paper"):
      cfg = module.get_config(variant)
      configlib.validate(cfg)
      assert cfg.data.name == "ptb" and cfg.model.cell in ("indrnn", "lstm")
  paper = module.get_config("indrnn_paper").model
  assert (paper.num_layers, paper.hidden_size, paper.norm, paper.norm_position) == (
      6, 2000, "per_step", "pre")
  res = ptb_char.get_config("res_indrnn_paper")
  assert (res.model.num_layers, res.model.connection, res.data.seq_len) == (
      11, "residual", 150)
  with pytest.raises(ValueError, match="unknown PTB"):
    module.get_config("transformer")


def test_word_level_dense_indrnn_trains_one_step(tmp_path):
  cfg = tiny_lm_config(write_corpus(tmp_path / "data", "word"), num_steps=1)
  cfg.data.level = "word"
  cfg.data.random_offset = False
  cfg.model.update(ptb_word.get_config("dense_indrnn").model.to_dict())
  cfg.model.update(hidden_size=8, num_layers=3)
  metrics = train.train_and_evaluate(cfg, str(tmp_path / "work"))
  assert metrics["step"] == 1 and np.isfinite(metrics["valid/perplexity"])


def test_checkpoint_from_before_the_carry_field_still_restores(tmp_path):
  @flax.struct.dataclass
  class Before:
    step: jax.Array
    params: dict

  @flax.struct.dataclass
  class After:
    step: jax.Array
    params: dict
    carry: dict

  saver = Checkpointer(str(tmp_path), every=1, keep=1)
  saver.save(3, Before(jnp.int32(3), {"w": jnp.arange(4.0)}), force=True)
  saver.close()
  loader = Checkpointer(str(tmp_path), every=1, keep=1)
  restored = loader.restore(After(jnp.int32(0), {"w": jnp.zeros(4)}, {}))
  loader.close()
  assert int(restored.step) == 3 and restored.carry == {}
  np.testing.assert_array_equal(restored.params["w"], np.arange(4.0))
