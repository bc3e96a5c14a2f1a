"""Print text sampled from a trained language model (configs/ptb_*.py).

  python -m experiments.sample --workdir=runs/ptb_char --length=500 \
      --temperature=0.8 --prime="the "

Reloads the run (irnn_jax.run.load_run) from the workdir alone: the model,
its latest checkpoint or --step, and the tokens of workdir/vocab.json; the
corpus files are not needed (for runs written before workdirs held
data_spec.json, they are: the model's shapes then come from the data set). Generation
starts after an <eos> (a sentence start), then the --prime text, which is
printed too. How the model steps through time: irnn_jax/sampling.py.
"""

from absl import app, flags, logging

from irnn_jax import run, sampling
from irnn_jax.data import ptb

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Work directory of a language-model run.")
flags.DEFINE_integer("length", 500, "Tokens to generate.")
flags.DEFINE_float("temperature", 0.8, "Softmax temperature; <= 0 is greedy.")
flags.DEFINE_string("prime", "", "Text the model reads before generating.")
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.")


def sample_text(workdir: str, length: int, temperature: float, prime: str = "",
                seed: int = 0, step=None) -> str:
  loaded = run.load_run(workdir, step, with_data=False)
  vocab = ptb.load_vocab(workdir)
  tokens, level = vocab["tokens"], vocab["level"]
  context = [tokens.index(ptb.EOS)] + ptb.text_to_ids(prime, tokens, level)
  ids = sampling.generate(loaded.model, loaded.variables, loaded.spec.seq_len, context,
                          length, temperature, seed)
  text = ptb.ids_to_text(ids, tokens, level)
  if level == "word" and prime.strip() and not prime[-1].isspace() and text[:1] != "\n":
    text = " " + text
  return prime + text


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # Orbax logs several lines per restore.
  print(sample_text(FLAGS.workdir, FLAGS.length, FLAGS.temperature, FLAGS.prime,
                    FLAGS.seed, FLAGS.step))


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir"])  # Not on import (tests import it).
  app.run(main)
