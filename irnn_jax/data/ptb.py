"""Penn Treebank language modelling (IndRNN paper 4.4), characters or words.

Files in config.data.dir (Mikolov's simple-examples release):
  level "word": ptb.{train,valid,test}.txt, one sentence a line, words
      separated by spaces, rare words already replaced by <unk>;
  level "char": ptb.char.{train,valid,test}.txt, the same text spelled out
      with one space between characters and '_' for a word boundary. Where
      only the word files are in the directory, their lines are spelled out
      the same way in memory (`spell_word_line`): the same tokens as the
      standard character files.

Tokens: every line's whitespace-separated symbols, then "<eos>" (so 50 char
tokens including '_' and <eos>, 10,000 word tokens including <unk> and
<eos>). The vocabulary is the sorted set of training tokens, kept in
workdir/vocab.json; a token of valid/test outside it becomes <unk> where the
vocabulary has <unk>, else the run stops naming it.

Training is truncated BPTT over `batch_size` contiguous streams: the training
tokens cut into B equal parts, rows of streams[B, S]. Step i of an epoch reads
the window [o + i T, o + (i + 1) T) of every row as inputs and the window one
token later as targets, where T = seq_len and the offset o is 0, or with
`random_offset` drawn per epoch from default_rng([seed, epoch]) in [0, T).
The trainer carries the recurrent state from one window to the next
(`carries_state`) and restarts it at zero where `is_epoch_start(step)`.

Evaluation walks a whole split in order: its (token, next token) pairs cut
into `eval_batch_size` contiguous streams, read in windows of T; padding at
the end of the streams has mask 0, so every pair counts once.
"""

import json
import os

from absl import logging
import numpy as np

from irnn_jax import configlib

LEVELS = ("char", "word")
SPLITS = ("train", "valid", "test")
EOS, UNK = "<eos>", "<unk>"
WORD_BOUNDARY = "_"  # Character files: a space of the text.
VOCAB_FILE = "vocab.json"
MAKE_CHAR_FILES = "../shared/data/ptb/make_char_files.py"


def file_path(directory: str, level: str, split: str) -> str:
  name = f"ptb.char.{split}.txt" if level == "char" else f"ptb.{split}.txt"
  return os.path.join(directory, name)


def _how_to_get(directory: str, level: str) -> str:
  if level == "char":
    return ("set --config.data.dir to a folder of ptb.char.{train,valid,test}.txt, "
            "or of the word-level ptb.{train,valid,test}.txt, which are then "
            f"spelled out (`python {MAKE_CHAR_FILES} DIR` writes the character "
            "files from the word files)")
  return ("set --config.data.dir to the folder of ptb.train.txt, ptb.valid.txt "
          "and ptb.test.txt (simple-examples/data of Mikolov's release)")


def spell_word_line(line: str) -> list[str]:
  """A word-level line as the character files spell it: its characters, with
  '_' for each space between words."""
  return list(line.strip().replace(" ", WORD_BOUNDARY))


def read_tokens(path: str, level: str, spell_words: bool = False) -> list[str]:
  """The tokens of one file: each line's symbols followed by <eos>.

  With `spell_words`, `path` is a word-level file read as characters.
  """
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not UTF-8 text ({e}); is this a PTB file?") from e
  lines = text.split("\n")
  if lines and not lines[-1].strip():
    lines.pop()  # What follows the last line break is no sentence.
  tokens = []
  for number, line in enumerate(lines, 1):
    symbols = spell_word_line(line) if spell_words else line.split()
    if level == "char" and not spell_words:
      long = next((s for s in symbols if len(s) != 1), None)
      if long is not None:
        raise ValueError(
            f"{path}, line {number}: {long!r} is not one character; character "
            "files have one space between characters (are these word-level "
            f"files? {_how_to_get(os.path.dirname(path), level)})")
    tokens.extend(symbols)
    tokens.append(EOS)
  if len(tokens) == len(lines):
    raise ValueError(f"{path} holds no tokens")
  return tokens


def encode(tokens: list[str], vocab: list[str], path: str) -> np.ndarray:
  """int32 [N] token ids; unknown tokens become <unk> if the vocabulary has it."""
  index = {token: i for i, token in enumerate(vocab)}
  unk = index.get(UNK)
  ids = np.fromiter((index.get(t, -1) for t in tokens), np.int32, len(tokens))
  unknown = ids < 0
  if unknown.any():
    if unk is None:
      first = tokens[int(np.argmax(unknown))]
      raise ValueError(f"{path}: {int(unknown.sum())} tokens are not in the "
                       f"training vocabulary, the first {first!r}")
    ids[unknown] = unk
  return ids


def check_vocab(workdir: str, level: str, vocab: list[str]) -> None:
  """Raise if workdir/vocab.json exists and is not `vocab`."""
  path = os.path.join(workdir or "", VOCAB_FILE)
  if not workdir or not os.path.exists(path):
    return
  saved = load_vocab(workdir)
  if saved != {"level": level, "tokens": vocab}:
    raise ValueError(
        f"{path} holds a {saved.get('level')}-level vocabulary of "
        f"{len(saved.get('tokens', []))} tokens, but the training file gives "
        f"a {level}-level one of {len(vocab)}: the data changed since this "
        "run started; use a new workdir")


def save_vocab(workdir: str, level: str, vocab: list[str]) -> None:
  """Write workdir/vocab.json unless it is there."""
  path = os.path.join(workdir, VOCAB_FILE)
  if os.path.exists(path):
    return
  tmp = path + f".{os.getpid()}.tmp"  # Per process: several may write at once.
  with open(tmp, "w") as f:
    json.dump({"level": level, "tokens": vocab}, f, indent=0)
  os.replace(tmp, path)


def load_vocab(workdir: str) -> dict:
  """{"level": "char" | "word", "tokens": [token of id 0, ...]}."""
  with open(os.path.join(workdir, VOCAB_FILE)) as f:
    return json.load(f)


def text_to_ids(text: str, vocab: list[str], level: str) -> list[int]:
  """Encode plain text (spaces, line breaks) the way the files are tokenised."""
  index = {token: i for i, token in enumerate(vocab)}
  if level == "char":
    symbols = [EOS if ch == "\n" else WORD_BOUNDARY if ch == " " else ch
               for ch in text]
  else:
    symbols = [s for line in text.split("\n") for s in line.split() + [EOS]][:-1]
  unknown = sorted({s for s in symbols if s not in index})
  if unknown and UNK not in index:
    raise ValueError(f"not in the vocabulary: {unknown}")
  return [index.get(s, index.get(UNK)) for s in symbols]


def ids_to_text(ids, vocab: list[str], level: str) -> str:
  """Decode ids to plain text: <eos> -> line break; chars: '_' -> space."""
  tokens = [vocab[int(i)] for i in ids]
  if level == "char":
    return "".join("\n" if t == EOS else " " if t == WORD_BOUNDARY else t
                   for t in tokens)
  pieces = []
  for t in tokens:
    if t == EOS:
      pieces.append("\n")
    else:
      pieces.append(t if not pieces or pieces[-1] == "\n" else " " + t)
  return "".join(pieces)


def train_streams(ids: np.ndarray, batch_size: int) -> np.ndarray:
  """[B, S]: the token stream cut into B contiguous parts (the rest dropped)."""
  length = len(ids) // batch_size
  return ids[:batch_size * length].reshape(batch_size, length)


def eval_windows(ids: np.ndarray, batch_size: int, seq_len: int):
  """Batches of windows over all len(ids) - 1 (token, next token) pairs.

  Yields {"inputs", "targets": int32 [B, T], "mask": float32 [B, T]}: the
  pairs cut into B contiguous streams of whole windows, padding at the end.
  """
  pairs = len(ids) - 1
  length = -(-pairs // batch_size)
  length = -(-length // seq_len) * seq_len
  flat = {k: np.zeros(batch_size * length, dtype)
          for k, dtype in (("inputs", np.int32), ("targets", np.int32),
                           ("mask", np.float32))}
  flat["inputs"][:pairs] = ids[:-1]
  flat["targets"][:pairs] = ids[1:]
  flat["mask"][:pairs] = 1.0
  streams = {k: v.reshape(batch_size, length) for k, v in flat.items()}
  for start in range(0, length, seq_len):
    yield {k: v[:, start:start + seq_len] for k, v in streams.items()}


class PennTreebank:
  """Token streams of PTB; see the module docstring.

  train_batch(step): {"inputs", "targets": int32 [B, T]};
  eval_batches(split): the same at eval_batch_size plus "mask" float32 [B, T].
  """

  task = "language_model"
  readout = "all"
  input_dim = 0  # Tokens go through an embedding of vocab_size rows.
  carries_state = True
  eval_splits = ("valid", "test")

  def __init__(self, ids: dict, vocab: list[str], *, level: str, seq_len: int,
               batch_size: int, eval_batch_size: int, seed: int,
               random_offset: bool = False):
    self.ids, self.vocab, self.level = ids, vocab, level
    self.vocab_size = self.num_outputs = len(vocab)
    self.seq_len, self.batch_size = seq_len, batch_size
    self.eval_batch_size, self.seed = eval_batch_size, seed
    self.random_offset = random_offset
    self.streams = train_streams(ids["train"], batch_size)
    self.stream_len = self.streams.shape[1]
    max_offset = seq_len - 1 if random_offset else 0
    self.steps_per_epoch = (self.stream_len - 1 - max_offset) // seq_len
    if self.steps_per_epoch < 1:
      raise ValueError(
          f"the {len(ids['train'])} training tokens make {batch_size} streams "
          f"of {self.stream_len} tokens, too short for one window of "
          f"config.data.seq_len={seq_len}"
          + (" after a random offset" if random_offset else "")
          + "; lower data.batch_size or data.seq_len")

  def save(self, workdir: str):
    """Write what the run needs later: the vocabulary (sampling reads it)."""
    save_vocab(workdir, self.level, self.vocab)

  def epoch_offset(self, epoch: int) -> int:
    if not self.random_offset:
      return 0
    return int(np.random.default_rng([self.seed, epoch]).integers(self.seq_len))

  def is_epoch_start(self, step: int) -> bool:
    """Whether the recurrent state restarts at zero before `step`."""
    return int(step) % self.steps_per_epoch == 0

  def train_batch(self, step: int) -> dict:
    epoch, index = divmod(int(step), self.steps_per_epoch)
    start = self.epoch_offset(epoch) + index * self.seq_len
    window = self.streams[:, start:start + self.seq_len + 1]
    return {"inputs": window[:, :-1].copy(), "targets": window[:, 1:].copy()}

  def eval_batches(self, split: str):
    if split not in self.eval_splits:
      raise ValueError(f"unknown split {split!r}; this data set has {self.eval_splits}")
    return eval_windows(self.ids[split], self.eval_batch_size, self.seq_len)


def _check_config(data_cfg):
  if data_cfg.level not in LEVELS:
    raise ValueError(f"config.data.level: unknown value {data_cfg.level!r}; "
                     f"choose from {LEVELS}")
  for field in ("seq_len", "batch_size", "eval_batch_size"):
    configlib.require_positive(data_cfg, field, "data")
  if not data_cfg.dir:
    raise ValueError("config.data.dir is empty; "
                     + _how_to_get("DIR", data_cfg.level))


def find_files(directory: str, level: str) -> tuple[dict, bool]:
  """({split: path}, whether word files stand in for missing char files)."""
  paths = {split: file_path(directory, level, split) for split in SPLITS}
  missing = [p for p in paths.values() if not os.path.isfile(p)]
  if not missing:
    return paths, False
  if level == "char":
    words = {split: file_path(directory, "word", split) for split in SPLITS}
    if all(os.path.isfile(p) for p in words.values()):
      logging.info("PTB: no character files in %s; spelling out the word files",
                   directory)
      return words, True
  raise FileNotFoundError(
      f"PTB {level}-level files missing: {', '.join(missing)} (config.data.dir"
      f"={directory!r}, i.e. {os.path.abspath(directory)}); "
      + _how_to_get(directory, level))


def build(data_cfg, seed: int, workdir: str) -> PennTreebank:
  _check_config(data_cfg)
  level, directory = data_cfg.level, data_cfg.dir
  paths, spell_words = find_files(directory, level)
  tokens = {split: read_tokens(path, level, spell_words)
            for split, path in paths.items()}
  vocab = sorted(set(tokens["train"]))
  check_vocab(workdir, level, vocab)
  ids = {split: encode(tokens[split], vocab, paths[split]) for split in SPLITS}
  dataset = PennTreebank(
      ids, vocab, level=level, seq_len=data_cfg.seq_len,
      batch_size=data_cfg.batch_size, eval_batch_size=data_cfg.eval_batch_size,
      seed=seed, random_offset=data_cfg.random_offset)
  logging.info("PTB %s level: %d tokens in the vocabulary; %s tokens; %d streams "
               "of %d, %d steps per epoch", level, len(vocab),
               ", ".join(f"{s} {len(ids[s])}" for s in SPLITS), data_cfg.batch_size,
               dataset.stream_len, dataset.steps_per_epoch)
  return dataset
