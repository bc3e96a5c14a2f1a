"""Users' own sequences: .npz arrays and UCR/UEA .ts files, read, checked and
batched (irnn_jax/data/sequence_files.py, sequences.py), on tiny files written here."""

import json
import os
import re

import numpy as np
import pytest

from configs import sequences as sequences_config
from irnn_jax import configlib, train
from irnn_jax.data import bumps, sequences
from irnn_jax.data import sequence_files as sf
from irnn_jax.data.sequence_files import SequenceFileError, Sequences

# Files.


def _npz(tmp_path, name="d.npz", **arrays) -> str:
  path = str(tmp_path / name)
  np.savez(path, **arrays)
  return path


def _ts(tmp_path, lines, name="f.ts") -> str:
  path = str(tmp_path / name)
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  return path


def _at(path, *more) -> str:
  """A regex: the escaped `path` then `more` (already regexes) in order."""
  return re.escape(path) + "".join(more)


def _labelled(n=20, t=6, seed=0, classes=("a", "b")):
  """x[n, t, 2] (example i has id i at step 0 of channel 0; zero past each
  length), lengths in [2, t] (the first t), labels classes[i % len(classes)]."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(2, t + 1, n)
  lengths[0] = t
  x = rng.normal(size=(n, t, 2)) * [1.0, 10.0] + [0.0, 5.0]
  x[:, 0, 0] = np.arange(n)
  x = np.where(np.arange(t)[None, :, None] < lengths[:, None, None], x, 0.0)
  return x.astype(np.float32), lengths.astype(np.int32), np.array(classes)[np.arange(n) %
                                                                         len(classes)]


def _labelled_npz(tmp_path, name="d.npz", **kwargs) -> str:
  x, lengths, labels = _labelled(**kwargs)
  return _npz(tmp_path, name, x_train=x, y_train=labels, len_train=lengths)


def _cfg(path="", **fields):
  d = configlib.base_config().data
  d.name = "arrays"
  d.path = path
  d.seq_len = 0
  d.batch_size = 4
  d.eval_batch_size = 3
  d.eval_examples = 0
  d.valid_fraction = 0.25
  d.update(fields)
  return d


def _ids(seqs) -> list[int]:
  """Example ids (step 0 of channel 0) of unstandardised rows."""
  return [int(round(v)) for v in np.asarray(seqs.x)[:, 0, 0]]


def _check(x, labels=(0, 1), lengths=None, fill=""):
  return sf.check_sequences(np.asarray(x), np.asarray(labels), lengths,
                            ("d.npz: x_train", "d.npz: y_train", "d.npz: len_train"), fill)


# .npz: every bad input names the array and the problem.


@pytest.mark.parametrize("shape", [(2,), (2, 3, 1, 1)])
def test_x_of_wrong_rank_names_x_and_its_shape(tmp_path, shape):
  path = _npz(tmp_path, x_train=np.zeros(shape), y_train=np.array([0, 1]))
  said = rf": x_train: expected rank 3 \[N, T, C\] or 2 \[N, T\], got shape {re.escape(str(shape))}"
  with pytest.raises(SequenceFileError, match=_at(path, said)):
    sf.read_npz(path)


def test_y_of_wrong_rank_names_y_and_its_shape(tmp_path):
  path = _npz(tmp_path, x_train=np.zeros((2, 3)), y_train=np.zeros((2, 1, 1)))
  with pytest.raises(SequenceFileError, match=_at(path, r": y_train: expected rank 1 \[N\] or "
                                                  r"2 \[N, K\], got shape \(2, 1, 1\)")):
    sf.read_npz(path)
  path = _npz(tmp_path, "scalar.npz", x_train=np.zeros((2, 3)), y_train=np.array(1))
  with pytest.raises(SequenceFileError, match=_at(path, r": y_train: expected rank 1")):
    sf.read_npz(path)


def test_label_count_that_differs_from_the_examples_names_both_arrays(tmp_path):
  path = _npz(tmp_path, x_train=np.zeros((4, 3)), y_train=np.array([0, 1, 0]))
  with pytest.raises(SequenceFileError, match=_at(
      path, ": y_train: 3 labels for the 4 examples of ", re.escape(path), ": x_train")):
    sf.read_npz(path)


@pytest.mark.parametrize("bad", [4, 0, -1])
def test_lengths_outside_one_to_t_name_the_example_and_the_range(tmp_path, bad):
  path = _npz(tmp_path, x_train=np.zeros((3, 3)), y_train=np.array([0, 1, 0]),
              len_train=np.array([3, bad, 2]))
  with pytest.raises(SequenceFileError, match=_at(
      path, rf": len_train: example 1 has length {bad}; lengths must be in \[1, 3\] \(T of ",
      re.escape(path), r": x_train\)")):
    sf.read_npz(path)


@pytest.mark.parametrize("lengths, said", [
    (np.array([1.0, 2.0]), r"got float64 \(2,\)"),
    (np.array([[1], [2]]), r"got int64 \(2, 1\)"),
    (np.array(["1", "2"]), r"got <U1 \(2,\)"),
])
def test_lengths_of_wrong_shape_or_dtype_are_named(tmp_path, lengths, said):
  path = _npz(tmp_path, x_train=np.zeros((2, 3)), y_train=np.array([0, 1]), len_train=lengths)
  with pytest.raises(SequenceFileError, match=_at(
      path, r": len_train: expected integers of shape \(2,\), ", said)):
    sf.read_npz(path)
  path = _npz(tmp_path, "three.npz", x_train=np.zeros((2, 3)), y_train=np.array([0, 1]),
              len_train=np.array([1, 2, 3]))
  with pytest.raises(SequenceFileError,
                     match=_at(path, ": len_train: 3 lengths for the 2 examples")):
    sf.read_npz(path)


def test_nan_in_a_valid_step_is_an_error_naming_example_step_and_channel(tmp_path):
  x = np.arange(24, dtype=np.float64).reshape(2, 4, 3)
  x[1, 2, 0] = np.nan
  path = _npz(tmp_path, x_train=x, y_train=np.array([0, 1]))
  with pytest.raises(SequenceFileError, match=_at(
      path, r": x_train: missing value at example 1, step 2, channel 0 \(NaN\); "
      r"fill_missing='zero' or 'forward' fills missing values \(config.data.fill_missing\)")):
    sf.read_npz(path)
  zero = sf.read_npz(path, "zero")["train"].x
  forward = sf.read_npz(path, "forward")["train"].x
  expected = x.copy()
  expected[1, 2, 0] = 0.0
  np.testing.assert_array_equal(zero, expected)
  expected[1, 2, 0] = x[1, 1, 0]  # The step before.
  np.testing.assert_array_equal(forward, expected)
  assert zero.dtype == forward.dtype == np.float32


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_input_is_an_error_even_with_fill(tmp_path, value):
  x = np.zeros((2, 3, 2))
  x[0, 1, 1] = value
  path = _npz(tmp_path, x_train=x, y_train=np.array([0, 1]))
  for fill in ("", "zero", "forward"):
    with pytest.raises(SequenceFileError, match=_at(
        path, ": x_train: an infinite value at example 0, step 1, channel 1")):
      sf.read_npz(path, fill)


def test_nan_and_inf_past_a_length_are_padding_and_read_as_zero(tmp_path):
  x = np.ones((2, 4, 2))
  x[0, 2:] = np.nan
  x[0, 3, 1] = np.inf
  x[1, 1:] = -np.inf
  path = _npz(tmp_path, x_train=x, y_train=np.array([0, 1]), len_train=np.array([2, 1]))
  seqs = sf.read_npz(path)["train"]
  expected = np.zeros((2, 4, 2), np.float32)
  expected[0, :2], expected[1, :1] = 1.0, 1.0
  np.testing.assert_array_equal(seqs.x, expected)
  np.testing.assert_array_equal(seqs.lengths, [2, 1])
  assert seqs.lengths.dtype == np.int32


def test_fewer_than_two_classes_is_an_error(tmp_path):
  path = _npz(tmp_path, x_train=np.zeros((4, 3)), y_train=np.array(["a"] * 4))
  with pytest.raises(SequenceFileError, match=_at(
      path, r": x_train: 1 class\(es\) in the training labels; classification needs at least two")):
    sequences.build_arrays(_cfg(path), 0, "")
  ts = _ts(tmp_path, ["@classLabel true a", "@data", "1,2:a", "3,4:a"])
  with pytest.raises(SequenceFileError, match=_at(
      ts, r", line 1: @classLabel true lists 1 class\(es\); classification needs at least two")):
    sf.read_ts(ts)
  ts = _ts(tmp_path, ["@classLabel true a a", "@data", "1,2:a"], "twice.ts")
  with pytest.raises(SequenceFileError, match=_at(ts, r", line 1: @classLabel true lists 1 class")):
    sf.read_ts(ts)


def test_splits_with_different_feature_counts_name_each_split_and_its_count(tmp_path):
  x, _, labels = _labelled()
  path = _npz(tmp_path, x_train=x, y_train=labels, x_test=x[..., :1], y_test=labels)
  said = _at(path, ": x_train, 1 in ") + _at(path, ": x_test$")
  with pytest.raises(SequenceFileError, match="^every split needs the same number of "
                     "features a step; got 2 in " + said):
    sequences.build_arrays(_cfg(path), 0, "")


def test_a_split_with_x_but_no_y_names_the_missing_array(tmp_path):
  path = _npz(tmp_path, x_train=np.zeros((2, 3)), y_train=np.array([0, 1]),
              x_valid=np.zeros((2, 3)))
  with pytest.raises(SequenceFileError, match=_at(path, ": has x_valid but no y_valid")):
    sf.read_npz(path)
  path = _npz(tmp_path, "len_only.npz", x_train=np.zeros((2, 3)), y_train=np.array([0, 1]),
              len_test=np.array([1, 2]))
  with pytest.raises(SequenceFileError, match=_at(path, ": has len_test but no x_test")):
    sf.read_npz(path)


def test_unknown_array_names_are_listed(tmp_path):
  path = _npz(tmp_path, x_train=np.zeros((2, 3)), y_train=np.array([0, 1]),
              x_tran=np.zeros(1), labels=np.zeros(1))
  with pytest.raises(SequenceFileError, match=_at(
      path, r": unknown arrays \['labels', 'x_tran'\]; expected x_SPLIT, y_SPLIT")):
    sf.read_npz(path)


def test_object_arrays_are_refused_without_unpickling(tmp_path):
  path = _npz(tmp_path, x_train=np.zeros((2, 3)), y_train=np.array(["a", 1], dtype=object))
  with pytest.raises(SequenceFileError, match=_at(
      path, r": cannot read it as .npz arrays without pickle \(save strings as a numpy str "
      r"array, not objects\)")):
    sf.read_npz(path)
  with pytest.raises(SequenceFileError, match="d.npz: x_train: inputs must be real numbers, "
                                              "got dtype object"):
    _check(np.array([[1, "a"], [2, "b"]], dtype=object))


def test_no_x_train_is_an_error(tmp_path):
  path = _npz(tmp_path, x_test=np.zeros((2, 3)), y_test=np.array([0, 1]))
  with pytest.raises(SequenceFileError, match=_at(path, ": no x_train and y_train arrays")):
    sf.read_npz(path)


def test_files_that_are_not_npz_archives_give_a_clear_error(tmp_path):
  """A .npy array, a truncated archive, an empty file: SequenceFileError, not a crash."""
  npy = str(tmp_path / "one.npy")
  np.save(npy, np.zeros(3))
  with pytest.raises(SequenceFileError, match=_at(npy, ": one .npy array, not a .npz file")):
    sf.read_npz(npy)
  whole = _labelled_npz(tmp_path, "whole.npz")
  with open(whole, "rb") as f:
    payload = f.read()
  for name, part in (("cut.npz", payload[:len(payload) // 2]), ("empty.npz", b"")):
    with open(tmp_path / name, "wb") as f:
      f.write(part)
    with pytest.raises(SequenceFileError, match=_at(str(tmp_path / name))):
      sf.read_npz(str(tmp_path / name))


def test_complex_and_empty_inputs_are_refused():
  with pytest.raises(SequenceFileError, match="x_train: inputs must be real numbers, got dtype "
                                              "complex128"):
    _check(np.ones((2, 3)) * 1j)
  with pytest.raises(SequenceFileError, match=r"x_train: no examples, steps or channels \(shape "
                                              r"\(2, 0, 1\)\)"):
    _check(np.zeros((2, 0, 1)))


# .ts: every bad input names the file, the line and the problem.

_MISSING = ["@problemName Gaps", "@missing true", "@dimensions 2", "@classLabel true a b",
            "@data", "?,?,3,?,5:1,?,2,2,?:a", "1,2:?,?:b"]


def test_ts_missing_value_without_fill_names_file_line_channel_and_step(tmp_path):
  path = _ts(tmp_path, ["@dimensions 2", "@classLabel true a b", "@data", "1,2,3:4,5,6:a",
                        "1,2,3:4,5,?:b"])
  with pytest.raises(SequenceFileError, match=_at(
      path, r", line 5: missing value at channel 1, step 2 \('\?'\); fill_missing='zero' or "
      r"'forward' fills missing values \(config.data.fill_missing\)")):
    sf.read_ts(path)
  with pytest.raises(SequenceFileError, match=_at(path := _ts(tmp_path, _MISSING, "g.ts"),
                                                  r", line 6: missing value at channel 0, step 0")):
    sf.read_ts(path)


def test_ts_missing_values_filled_with_zero(tmp_path):
  _, seqs = sf.read_ts(_ts(tmp_path, _MISSING), "zero")
  expected = np.zeros((2, 5, 2), np.float32)
  expected[0, :, 0] = [0, 0, 3, 0, 5]
  expected[0, :, 1] = [1, 0, 2, 2, 0]
  expected[1, :2, 0] = [1, 2]
  np.testing.assert_array_equal(seqs.x, expected)
  np.testing.assert_array_equal(seqs.lengths, [5, 2])


def test_ts_missing_values_filled_forward_and_leading_gaps_backward(tmp_path):
  _, seqs = sf.read_ts(_ts(tmp_path, _MISSING), "forward")
  expected = np.zeros((2, 5, 2), np.float32)
  expected[0, :, 0] = [3, 3, 3, 3, 5]  # A leading gap takes the first value.
  expected[0, :, 1] = [1, 1, 2, 2, 2]
  expected[1, :2, 0] = [1, 2]  # Channel 1 has no value: 0; past length 2: 0.
  np.testing.assert_array_equal(seqs.x, expected)


_BAD_TS = {
    "dimensions": (["@dimensions 2", "@classLabel true a b", "@data", "1,2:a"],
                   r", line 4: 1 channels, but the header says @dimensions 2"),
    "univariate": (["@univariate true", "@classLabel true a b", "@data", "1,2:3,4:a"],
                   r", line 4: 2 channels, but the header says @univariate true"),
    "univariate_false": (["@univariate false", "@classLabel true a b", "@data", "1,2:a"],
                         r", line 4: 1 channel, but the header says @univariate false"),
    "equal_length": (["@equalLength true", "@classLabel true a b", "@data", "1,2:a", "1,2,3:b"],
                     r", line 5: 3 values per channel, but @equalLength true and line 4 has 2"),
    "series_length": (["@seriesLength 3", "@classLabel true a b", "@data", "1,2,3:a", "1,2:b"],
                      r", line 5: 2 values per channel, but @seriesLength 3"),
    "series_length_max": (["@equalLength false", "@seriesLength 2", "@classLabel true a b",
                           "@data", "1:a", "1,2,3:b"],
                          r", line 6: 3 values per channel, more than @seriesLength 2"),
    "label": (["@classLabel true a b", "@data", "1,2:a", "1,2:c"],
              r", line 4: label 'c' is not in @classLabel \['a', 'b'\]"),
    "missing_false": (["@missing false", "@classLabel true a b", "@data", "1,?:a"],
                      r", line 4: a missing value '\?', but the header says @missing false"),
    "header_after_data": (["@classLabel true a b", "@data", "1,2:a", "@missing false"],
                          r", line 4: a header line after @data"),
    "data_before_data": (["@classLabel true a b", "1,2:a", "@data"],
                         r", line 2: data before the @data line"),
    "no_data": (["@classLabel true a b", "@missing false"],
                r": no @data line \(the header must end with @data\)"),
    "no_cases": (["@classLabel true a b", "@data", "# none yet", ""],
                 r": no cases after @data"),
    "unknown_key": (["@problemName P", "@colour red", "@classLabel true a b", "@data", "1:a"],
                    r", line 2: unknown header key @colour; known: @problemName"),
    "duplicated_key": (["@missing false", "@classLabel true a b", "@MISSING false", "@data"],
                       r", line 3: @MISSING given twice"),
    "dimension_and_dimensions": (["@dimension 1", "@dimensions 1", "@classLabel true a b",
                                  "@data"], r", line 2: @dimensions given twice"),
    "bad_flag": (["@univariate yes", "@classLabel true a b", "@data"],
                 r", line 1: @univariate must be true or false, got 'yes'"),
    "bad_integer": (["@dimensions two", "@classLabel true a b", "@data"],
                    r", line 1: @dimensions needs one positive integer, got 'two'"),
    "not_a_number": (["@classLabel true a b", "@data", "1,2,3:a", "1,x,3:b"],
                     r", line 4, channel 0, step 1: 'x' is not a number"),
    "infinite": (["@classLabel true a b", "@data", "1,inf:a"],
                 r", line 3, channel 0, step 1: an infinite value"),
    "ragged_case": (["@classLabel true a b", "@data", "1,2:3:a"],
                    r", line 3: channels of \[2, 1\] values; the channels of one case must "
                    r"have one length"),
    "channel_count": (["@classLabel true a b", "@data", "1,2:3,4:a", "", "5,6:b"],
                      r", line 5: 1 channels, but line 3 has 2"),
    "empty_channel": (["@classLabel true a b", "@data", ":a"],
                      r", line 3: channel 0 has no values"),
    "no_label": (["@targetLabel true", "@data", "1,2,3"], r", line 3: no label after the last ':'"),
    "class_label_false": (["@classLabel false", "@data", "1,2:a"],
                          r", line 2: no labels \(@classLabel false or absent, no @targetLabel "
                          r"true\)"),
    "no_label_keys": (["@problemName P", "@data", "1,2:a"], r", line 2: no labels"),
    "both_labels": (["@classLabel true a b", "@targetLabel true", "@data"],
                    r", line 3: both @classLabel true and @targetLabel true"),
    "bad_target": (["@targetLabel true", "@data", "1,2:high"],
                   r", line 3, target: 'high' is not a number"),
    "bad_pair": (["@timeStamps true", "@classLabel true a b", "@data", "(0,1),2:a"],
                 r", line 4: '2' is not a \(timestamp,value\) pair \(@timeStamps true\)"),
}


@pytest.mark.parametrize("case", sorted(_BAD_TS))
def test_ts_header_and_data_that_disagree_name_the_file_line_and_problem(tmp_path, case):
  lines, message = _BAD_TS[case]
  path = _ts(tmp_path, lines)
  with pytest.raises(SequenceFileError, match="^" + _at(path, message)):
    sf.read_ts(path, "zero")  # Filling changes none of these.


# .ts: every header variant, against arrays written by hand.


def test_ts_univariate_equal_length(tmp_path):
  header, seqs = sf.read_ts(_ts(tmp_path, [
      "@problemName Uni", "@timeStamps false", "@missing false", "@univariate true",
      "@equalLength true", "@seriesLength 3", "@classLabel true 1 2", "@data",
      "1,2,3:1", "4,5.5,-6e-1:2", "0.25,0,1e3:2"]))
  np.testing.assert_array_equal(
      seqs.x[..., 0], np.float32([[1, 2, 3], [4, 5.5, -0.6], [0.25, 0, 1000]]))
  assert seqs.x.shape == (3, 3, 1) and seqs.x.dtype == np.float32
  np.testing.assert_array_equal(seqs.lengths, [3, 3, 3])
  assert seqs.labels.tolist() == ["1", "2", "2"]
  assert (header.problem_name, header.univariate, header.series_length) == ("Uni", True, 3)
  assert header.class_labels == ("1", "2") and header.missing is False


def test_ts_multivariate_variable_length_is_zero_padded(tmp_path):
  header, seqs = sf.read_ts(_ts(tmp_path, [
      "@problemName Multi", "@univariate false", "@dimensions 2", "@equalLength false",
      "@classLabel true a b", "@data", "1,2,3:4,5,6:a", "7:8:b", "1.5,2:3,-4:a"]))
  expected = np.zeros((3, 3, 2), np.float32)
  expected[0] = [[1, 4], [2, 5], [3, 6]]
  expected[1, 0] = [7, 8]
  expected[2, :2] = [[1.5, 3], [2, -4]]
  np.testing.assert_array_equal(seqs.x, expected)
  np.testing.assert_array_equal(seqs.lengths, [3, 1, 2])
  assert seqs.labels.tolist() == ["a", "b", "a"] and header.dimensions == 2


def test_ts_timestamps_keep_the_values_in_file_order(tmp_path):
  _, seqs = sf.read_ts(_ts(tmp_path, [
      "@timeStamps true", "@dimensions 2", "@classLabel true a b", "@data",
      "(0,1.0),(1,2.0),(2,3.0):(0,4),(1,5),(2,6):a",
      "(2007-01-01 00:00:00,7),(2007-01-01 01:00:00,8):(2007-01-01 00:00:00,9),"
      "(2007-01-01 01:00:00,10):b"]))
  expected = np.zeros((2, 3, 2), np.float32)
  expected[0] = [[1, 4], [2, 5], [3, 6]]
  expected[1, :2] = [[7, 9], [8, 10]]
  np.testing.assert_array_equal(seqs.x, expected)
  np.testing.assert_array_equal(seqs.lengths, [3, 2])
  assert seqs.labels.tolist() == ["a", "b"]


def test_ts_target_label_gives_float_targets(tmp_path):
  header, seqs = sf.read_ts(_ts(tmp_path, [
      "@problemName Reg", "@targetLabel true", "@data", "1,2:0.5", "3,4,5:-2", "6:1e2"]))
  assert header.target_label and header.class_labels is None
  assert seqs.labels.dtype == np.float64
  np.testing.assert_array_equal(seqs.labels, [0.5, -2.0, 100.0])
  np.testing.assert_array_equal(seqs.x[..., 0], [[1, 2, 0], [3, 4, 5], [6, 0, 0]])
  assert sf.infer_task(seqs.labels, "auto", "f.ts") == "regression"


def test_ts_comments_blank_lines_and_case_of_keys_do_not_matter(tmp_path):
  plain = sf.read_ts(_ts(tmp_path, [
      "@problemName P", "@univariate true", "@classLabel true a b", "@data", "1,2:a", "3,4:b"],
      "plain.ts"))
  noisy = sf.read_ts(_ts(tmp_path, [
      "# A comment before the header", "", "@PROBLEMNAME P", "   # indented comment",
      "@Univariate TRUE", "", "@CLASSLABEL True a b", "@DATA", "# a comment in the data",
      "", "  1,2:a  ", "3, 4 :b", ""], "noisy.ts"))
  assert plain[0] == noisy[0]
  np.testing.assert_array_equal(plain[1].x, noisy[1].x)
  np.testing.assert_array_equal(plain[1].labels, noisy[1].labels)


def test_ts_dimension_and_dimensions_are_one_key(tmp_path):
  lines = ["@classLabel true a b", "@data", "1,2:3,4:a", "5,6:7,8:b"]
  one = sf.read_ts(_ts(tmp_path, ["@dimension 2"] + lines, "one.ts"))
  other = sf.read_ts(_ts(tmp_path, ["@dimensions 2"] + lines, "other.ts"))
  assert one[0] == other[0] and one[0].dimensions == 2
  np.testing.assert_array_equal(one[1].x, other[1].x)
  with pytest.raises(SequenceFileError, match=r"three.ts, line 4: 2 channels, but the header says "
                                              r"@dimensions 3"):
    sf.read_ts(_ts(tmp_path, ["@dimension 3"] + lines, "three.ts"))


# Round trips.


def _six_digits(x):
  return np.vectorize(lambda v: np.float32(float(f"{v:.6g}")))(x).astype(np.float32)


@pytest.mark.parametrize("equal", [False, True])
def test_write_ts_then_read_ts_gives_the_same_sequences(tmp_path, equal):
  rng = np.random.default_rng(3)
  lengths = np.full(7, 5, np.int32) if equal else rng.integers(1, 6, 7).astype(np.int32)
  x = (rng.normal(size=(7, 5, 3)) * np.array([1e-3, 1.0, 1e4])).astype(np.float32)
  x = np.where(np.arange(5)[None, :, None] < lengths[:, None, None], x, 0.0)
  labels = np.array(["up", "down", "10", "2"])[np.arange(7) % 4]
  path = str(tmp_path / "rt.ts")
  sf.write_ts(path, Sequences(x, lengths, labels, "mine"), "RoundTrip", ("up", "down", "10", "2"))
  header, seqs = sf.read_ts(path)
  np.testing.assert_array_equal(seqs.x, _six_digits(x)[:, :lengths.max()])
  np.testing.assert_allclose(seqs.x, x[:, :lengths.max()], rtol=5e-6)
  np.testing.assert_array_equal(seqs.lengths, lengths)
  assert seqs.labels.tolist() == labels.tolist()
  assert header.class_labels == ("up", "down", "10", "2") and header.dimensions == 3
  assert header.equal_length is equal and header.series_length == (5 if equal else None)


def test_write_ts_of_regression_targets_round_trips(tmp_path):
  rng = np.random.default_rng(4)
  x = rng.normal(size=(4, 3, 1)).astype(np.float32)
  targets = np.array([0.1, -2.5, 3e-7, 12345.678])
  path = str(tmp_path / "reg.ts")
  sf.write_ts(path, Sequences(x, np.array([3, 2, 3, 1], np.int32), targets, "mine"), "Reg")
  header, seqs = sf.read_ts(path)
  assert header.target_label and header.univariate
  np.testing.assert_array_equal(seqs.labels, targets)
  np.testing.assert_array_equal(seqs.lengths, [3, 2, 3, 1])
  np.testing.assert_array_equal(seqs.x[1, 2], [0.0])


def test_bumps_example_files_read_back_as_made(tmp_path):
  """write_example: the .npz reads back exactly, the .ts pair to its 6 digits."""
  paths = bumps.write_example(str(tmp_path), num_train=12, num_test=5, seed=7)
  made = {"train": bumps.make_bumps(12, 7), "test": bumps.make_bumps(5, 8)}
  arrays = sf.read_npz(paths[0])
  assert set(arrays) == {"train", "test"}
  for split, ts_path in zip(("train", "test"), paths[1:]):
    ours, read = made[split], arrays[split]
    np.testing.assert_array_equal(read.x, ours.x)
    np.testing.assert_array_equal(read.lengths, ours.lengths)
    assert read.labels.tolist() == ours.labels.tolist()
    header, ts = sf.read_ts(ts_path)
    assert header.class_labels == bumps.CLASSES
    np.testing.assert_array_equal(ts.x, _six_digits(ours.x)[:, :ours.lengths.max()])
    np.testing.assert_array_equal(ts.lengths, ours.lengths)
    assert ts.labels.tolist() == ours.labels.tolist()


# fill_missing.


def _forward_reference(x, lengths):
  """Forward fill by plain loops: last value seen, else the first value of the
  channel, else 0; 0 past each length."""
  out = np.zeros(x.shape, np.float32)
  for i in range(x.shape[0]):
    for c in range(x.shape[2]):
      values = [v for v in x[i, :lengths[i], c] if not np.isnan(v)]
      last = values[0] if values else 0.0
      for t in range(lengths[i]):
        if not np.isnan(x[i, t, c]):
          last = x[i, t, c]
        out[i, t, c] = last
  return out


def test_forward_fill_matches_a_plain_loop():
  rng = np.random.default_rng(5)
  x = rng.normal(size=(30, 9, 3))
  x[rng.random(x.shape) < 0.4] = np.nan
  x[0, :, 1] = np.nan  # A channel with no value at all.
  x[1, :4, 0] = np.nan  # A leading gap.
  lengths = rng.integers(1, 10, 30)
  lengths[1] = 9
  x_past = np.where(np.arange(9)[None, :, None] < lengths[:, None, None], x, 99.0)
  filled = sf.fill_missing(x_past, lengths, "forward")
  np.testing.assert_array_equal(filled, _forward_reference(x, lengths))
  assert filled.dtype == np.float32 and not np.isnan(filled).any()
  zero = sf.fill_missing(x_past, lengths, "zero")
  valid = np.arange(9)[None, :, None] < lengths[:, None, None]
  np.testing.assert_array_equal(zero, np.where(valid, np.nan_to_num(x), 0.0).astype(np.float32))
  with pytest.raises(ValueError, match="fill_missing: unknown value 'mean'"):
    sf.fill_missing(x, lengths, "mean")


# Labels.


def test_class_order_is_numeric_for_numeric_names():
  assert sf.sorted_classes(["10", "2", "b", "1", "a", "2"]) == ("1", "2", "10", "a", "b")
  assert sf.sorted_classes([3, -1, 20]) == ("-1", "3", "20")


@pytest.mark.parametrize("labels, task", [
    (np.array(["a", "b"]), "classification"),
    (np.array([3, 1]), "classification"),
    (np.array([3, 1], np.uint8), "classification"),
    (np.array([True, False]), "classification"),
    (np.array([0.5, 1.0]), "regression"),
    (np.array([1.0, 2.0], np.float32), "regression"),
    (np.zeros((2, 3)), "regression"),
])
def test_auto_task_follows_the_label_dtype(labels, task):
  assert sf.infer_task(labels, "auto", "w") == task


def test_task_errors_name_the_source():
  with pytest.raises(SequenceFileError, match=r"^f.npz: x_train: class labels must have shape "
                                              r"\(N,\), got \(2, 3\)"):
    sf.infer_task(np.zeros((2, 3), np.int64), "auto", "f.npz: x_train")
  with pytest.raises(SequenceFileError, match="^f.ts: regression targets must be numbers, got <U1"):
    sf.infer_task(np.array(["a", "b"]), "regression", "f.ts")
  with pytest.raises(ValueError, match="task: unknown value 'ranking'"):
    sf.infer_task(np.array([1, 2]), "ranking", "f.ts")


@pytest.mark.parametrize("labels, task, classes, targets", [
    (np.array([10, 2, 2, 1, 10]), "auto", ("1", "2", "10"), [2, 1, 1, 0, 2]),
    (np.array(["dog", "cat", "dog", "ant", "cat"]), "auto", ("ant", "cat", "dog"),
     [2, 1, 2, 0, 1]),
    (np.array([b"yes", b"no", b"no", b"yes", b"no"]), "auto", ("no", "yes"), [1, 0, 0, 1, 0]),
    (np.array([2.0, 10.0, 2.0, -1.0, 2.0]), "classification", ("-1", "2", "10"),
     [1, 2, 1, 0, 1]),
])
def test_labels_become_class_indices_in_sorted_order(tmp_path, labels, task, classes, targets):
  x = np.arange(25, dtype=np.float32).reshape(5, 5)
  path = _npz(tmp_path, x_train=x, y_train=labels, x_test=x, y_test=labels)
  data = sequences.build_arrays(_cfg(path, task=task, valid_fraction=0.0, batch_size=5), 0, "")
  assert data.task == "classification" and data.class_names == classes
  assert data.num_outputs == len(classes)
  assert data.splits["train"].labels.dtype == np.int32
  np.testing.assert_array_equal(data.splits["train"].labels, targets)
  np.testing.assert_array_equal(data.splits["test"].labels, targets)


def test_float_labels_as_classes_must_be_whole_numbers(tmp_path):
  path = _npz(tmp_path, x_train=np.zeros((4, 3)), y_train=np.array([1.0, 2.5, 1.0, 2.0]))
  with pytest.raises(SequenceFileError, match=_at(path, ": x_train: class labels given as floats "
                                                  "must be whole numbers")):
    sequences.build_arrays(_cfg(path, task="classification", batch_size=1), 0, "")
  assert sequences.build_arrays(_cfg(path, batch_size=1), 0, "").task == "regression"


def test_a_test_label_not_among_the_training_classes_names_the_file(tmp_path):
  x, lengths, labels = _labelled(8)
  test_labels = labels.copy()
  test_labels[3] = "c"
  path = _npz(tmp_path, x_train=x, y_train=labels, x_test=x, y_test=test_labels)
  with pytest.raises(SequenceFileError, match=_at(
      path, r": x_test: label 'c' is not one of the training classes \['a', 'b'\]")):
    sequences.build_arrays(_cfg(path), 0, "")
  train_ts = _ts(tmp_path, ["@classLabel true a b", "@data", "1,2:a", "3:b", "4:a", "5,6:b"],
                 "TRAIN.ts")
  test_ts = _ts(tmp_path, ["@classLabel true a b c", "@data", "1:a", "2:c"], "TEST.ts")
  with pytest.raises(SequenceFileError, match="^" + _at(
      test_ts, r": label 'c' is not one of the training classes \['a', 'b'\]")):
    sequences.build_ts(_cfg(train_path=train_ts, test_path=test_ts, batch_size=1), 0, "")


# Building data sets.


def test_the_valid_split_is_fixed_by_the_seed_and_disjoint_from_train(tmp_path):
  path = _labelled_npz(tmp_path)
  build = lambda seed: sequences.build_arrays(_cfg(path, standardize=False), seed, "")
  data = build(0)
  train_ids, valid_ids = _ids(data.splits["train"]), _ids(data.splits["valid"])
  assert len(valid_ids) == 5 and len(train_ids) == 15
  assert sorted(train_ids + valid_ids) == list(range(20))
  assert data.eval_splits == ("valid",) and data.examples_per_epoch == 15
  for split in ("train", "valid"):  # Labels and lengths travel with their rows.
    ids = np.array(_ids(data.splits[split]))
    np.testing.assert_array_equal(data.splits[split].labels, ids % 2)
    np.testing.assert_array_equal(data.splits[split].lengths, _labelled()[1][ids])
  again = build(0)
  assert _ids(again.splits["valid"]) == valid_ids and _ids(again.splits["train"]) == train_ids
  assert _ids(build(1).splits["valid"]) != valid_ids
  assert data.splits["valid"].where == f"{path}: x_train (valid_fraction)"


def test_a_given_valid_split_is_used_and_nothing_is_carved(tmp_path):
  x, lengths, labels = _labelled(12)
  path = _npz(tmp_path, x_train=x, y_train=labels, x_valid=x[:4], y_valid=labels[:4])
  data = sequences.build_arrays(_cfg(path, standardize=False), 0, "")
  assert _ids(data.splits["train"]) == list(range(12))
  assert _ids(data.splits["valid"]) == [0, 1, 2, 3]
  path = _npz(tmp_path, "alone.npz", x_train=x, y_train=labels)
  with pytest.raises(ValueError, match="nothing to evaluate"):
    sequences.build_arrays(_cfg(path, valid_fraction=0.0), 0, "")


def test_standardisation_uses_the_valid_steps_of_the_training_split_only(tmp_path):
  path = _labelled_npz(tmp_path)
  raw = sequences.build_arrays(_cfg(path, standardize=False), 0, "")
  data = sequences.build_arrays(_cfg(path), 0, "")
  train = raw.splits["train"]
  valid_steps = np.arange(6)[None, :] < train.lengths[:, None]
  steps = train.x[valid_steps].astype(np.float64)  # [steps, C]
  mean, std = steps.mean(0), steps.std(0)
  np.testing.assert_allclose(data.mean, mean, rtol=1e-5)
  np.testing.assert_allclose(data.std, std, rtol=1e-5)
  everything = np.concatenate([train.x, raw.splits["valid"].x]).reshape(-1, 2)
  assert np.all(np.abs(everything.mean(0) - mean) > 1e-2)  # Neither padding nor valid rows.
  for split in ("train", "valid"):
    seqs, ours = raw.splits[split], data.splits[split]
    valid = np.arange(6)[None, :, None] < seqs.lengths[:, None, None]
    expected = np.where(valid, (seqs.x - mean) / std, 0.0)
    np.testing.assert_allclose(ours.x, expected, rtol=1e-4, atol=1e-5)
    assert ours.x.dtype == np.float32
  np.testing.assert_array_equal(raw.mean, [0, 0])
  np.testing.assert_array_equal(raw.std, [1, 1])


def test_prepare_inputs_standardises_raw_sequences_as_the_splits_are(tmp_path):
  """What Run.predict applies to raw inputs: the data set's own statistics."""
  path = _labelled_npz(tmp_path)
  raw = sequences.build_arrays(_cfg(path, standardize=False), 0, "")
  data = sequences.build_arrays(_cfg(path), 0, "")
  seqs = raw.splits["valid"]
  np.testing.assert_allclose(data.prepare_inputs(seqs.x, seqs.lengths), data.splits["valid"].x,
                             rtol=1e-6, atol=1e-6)
  one_channel = sequences.build_arrays(_cfg(_npz(tmp_path, "one.npz", x_train=seqs.x[..., 1],
                                                 y_train=seqs.labels)), 0, "")
  assert one_channel.prepare_inputs(seqs.x[..., 1]).shape == seqs.x.shape[:2] + (1,)
  with pytest.raises(ValueError, match=r"inputs of shape \(5, 6, 3\): expected \[B, T, 2\]"):
    data.prepare_inputs(np.zeros((5, 6, 3)))
  gap = seqs.x.copy()
  gap[1, 0, 1] = np.nan
  with pytest.raises(SequenceFileError, match=r"inputs: missing value at example 1, step 0, "
                     "channel 1.*fill_missing"):
    data.prepare_inputs(gap, seqs.lengths)
  filled = sequences.build_arrays(_cfg(path, fill_missing="zero"), 0, "")
  assert filled.prepare_inputs(gap, seqs.lengths)[1, 0, 1] == pytest.approx(
      -filled.mean[1] / filled.std[1])


def test_a_constant_channel_keeps_std_one():
  x = np.ones((3, 4, 2), np.float32)
  x[:, :, 1] = np.arange(12).reshape(3, 4)
  mean, std = sequences.channel_stats(Sequences(x, np.array([4, 2, 1], np.int32), None, "w"))
  np.testing.assert_allclose(mean, [1.0, np.mean([0, 1, 2, 3, 4, 5, 8])], rtol=1e-6)
  np.testing.assert_allclose(std, [1.0, np.std([0, 1, 2, 3, 4, 5, 8])], rtol=1e-6)


def test_saved_statistics_are_reused_and_changed_classes_refused(tmp_path):
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  first = sequences.build_arrays(_cfg(_labelled_npz(tmp_path)), 0, workdir)
  first.save(workdir)
  saved_path = os.path.join(workdir, sequences.DATA_FILE)
  with open(saved_path) as f:
    saved = json.load(f)
  assert saved["task"] == "classification" and saved["class_names"] == ["a", "b"]
  assert (saved["input_dim"], saved["num_outputs"]) == (2, 2)
  np.testing.assert_array_equal(np.float32(saved["mean"]), first.mean)
  np.testing.assert_array_equal(np.float32(saved["std"]), first.std)
  x, lengths, labels = _labelled(seed=1)
  other = _npz(tmp_path, "other.npz", x_train=3 * x + 1, y_train=labels, len_train=lengths)
  second = sequences.build_arrays(_cfg(other), 0, workdir)
  np.testing.assert_array_equal(second.mean, first.mean)
  np.testing.assert_array_equal(second.std, first.std)
  assert np.all(np.abs(sequences.build_arrays(_cfg(other), 0, "").mean - first.mean) > 0.1)
  second.save(workdir)  # Leaves the file as it was.
  with open(saved_path) as f:
    assert json.load(f) == saved
  three = _labelled_npz(tmp_path, "three.npz", classes=("a", "b", "c"))
  with pytest.raises(ValueError, match=_at(saved_path, r" has class_names=\['a', 'b'\], but the "
                                           r"data give \['a', 'b', 'c'\]")):
    sequences.build_arrays(_cfg(three), 0, workdir)
  x, lengths, _ = _labelled()
  targets = _npz(tmp_path, "reg.npz", x_train=x, y_train=np.linspace(0, 1, 20), len_train=lengths)
  with pytest.raises(ValueError, match=_at(saved_path, " has task='classification'")):
    sequences.build_arrays(_cfg(targets), 0, workdir)


def test_config_errors_name_the_config_field(tmp_path):
  path = _labelled_npz(tmp_path)
  with pytest.raises(ValueError, match=r"^config.data.batch_size=16 exceeds the 15 training "
                                       r"examples"):
    sequences.build_arrays(_cfg(path, batch_size=16), 0, "")
  assert sequences.build_arrays(_cfg(path, batch_size=15), 0, "").steps_per_epoch == 1
  with pytest.raises(ValueError, match=r"^config.data.seq_len=5, but the longest sequence has 6 "
                                       r"steps; set --config.data.seq_len=0"):
    sequences.build_arrays(_cfg(path, seq_len=5), 0, "")
  assert sequences.build_arrays(_cfg(path, seq_len=6), 0, "").seq_len == 6
  with pytest.raises(ValueError, match=r"^config.data.path is empty: set it to your .npz file"):
    sequences.build_arrays(_cfg(""), 0, "")
  gone = str(tmp_path / "gone.npz")
  with pytest.raises(FileNotFoundError, match="^" + _at("config.data.path: " + gone, " not found")):
    sequences.build_arrays(_cfg(gone), 0, "")
  with pytest.raises(ValueError,
                     match=r"^config.data.train_path is empty: set it to your .ts file"):
    sequences.build_ts(_cfg(), 0, "")
  train_ts = _ts(tmp_path, ["@classLabel true a b", "@data", "1:a", "2:b", "3:a", "4:b"])
  with pytest.raises(FileNotFoundError, match=r"^config.data.test_path: .*gone.ts not found"):
    sequences.build_ts(_cfg(train_path=train_ts, test_path=str(tmp_path / "gone.ts")), 0, "")
  with pytest.raises(ValueError, match=r"config.data.valid_fraction=0.9 leaves no training"):
    sequences.build_ts(_cfg(train_path=train_ts, valid_fraction=0.9), 0, "")


def test_eval_batches_pad_the_last_batch_with_mask_zero_and_length_one(tmp_path):
  data = sequences.build_arrays(_cfg(_labelled_npz(tmp_path)), 0, "")
  valid = data.splits["valid"]
  batches = list(data.eval_batches("valid"))
  assert [len(b["mask"]) for b in batches] == [3, 3]
  np.testing.assert_array_equal(batches[0]["mask"], [1, 1, 1])
  np.testing.assert_array_equal(batches[1]["mask"], [1, 1, 0])
  last = batches[1]
  assert last["lengths"][2] == 1 and last["targets"][2] == 0 and not last["inputs"][2].any()
  for key, whole in (("inputs", valid.x), ("targets", valid.labels), ("lengths", valid.lengths)):
    np.testing.assert_array_equal(np.concatenate([b[key] for b in batches])[:5], whole)
    assert batches[0][key].dtype == whole.dtype
  assert batches[0]["mask"].dtype == np.float32
  data.eval_examples = 4
  assert [b["mask"].sum() for b in data.eval_batches("valid")] == [3, 1]
  with pytest.raises(ValueError, match=r"unknown split 'test'; this data set has \('valid',\)"):
    next(data.eval_batches("test"))


def test_train_batches_depend_on_seed_and_step_only_and_an_epoch_visits_each_row_once(tmp_path):
  path = _labelled_npz(tmp_path)
  build = lambda seed, batch: sequences.build_arrays(
      _cfg(path, standardize=False, batch_size=batch), seed, "")
  data = build(0, 5)
  assert data.steps_per_epoch == 3
  train_ids = sorted(_ids(data.splits["train"]))
  orders = []
  for epoch in range(2):
    ids = [i for step in range(3 * epoch, 3 * epoch + 3)
           for i in _ids(Sequences(data.train_batch(step)["inputs"], None, None, ""))]
    assert sorted(ids) == train_ids
    orders.append(ids)
  assert orders[0] != orders[1]
  other = build(0, 5)  # Another object, steps out of order: the same batches.
  for step in (4, 0, 5, 1):
    ours, theirs = data.train_batch(step), other.train_batch(step)
    for key in ("inputs", "targets", "lengths"):
      np.testing.assert_array_equal(ours[key], theirs[key])
  first = data.train_batch(0)
  assert first["inputs"].shape == (5, 6, 2) and first["targets"].dtype == np.int32
  np.testing.assert_array_equal(first["targets"], np.array(_ids(Sequences(
      first["inputs"], None, None, ""))) % 2)
  assert "mask" not in first
  reseeded = build(1, 5)
  assert [_ids(Sequences(reseeded.train_batch(s)["inputs"], None, None, "")) for s in range(3)] \
      != [orders[0][5 * s:5 * s + 5] for s in range(3)]
  ragged = build(0, 4)  # 15 rows, batches of 4: 3 steps, 12 rows, none twice.
  ids = [i for step in range(ragged.steps_per_epoch)
         for i in _ids(Sequences(ragged.train_batch(step)["inputs"], None, None, ""))]
  assert ragged.steps_per_epoch == 3 and len(set(ids)) == 12


def test_regression_targets_of_k_values_give_k_outputs(tmp_path):
  x, lengths, _ = _labelled(12)
  y = np.random.default_rng(0).normal(size=(12, 3))
  path = _npz(tmp_path, x_train=x, y_train=y, len_train=lengths, x_test=x[:5], y_test=y[:5],
              len_test=lengths[:5])
  data = sequences.build_arrays(_cfg(path), 0, "")
  assert (data.task, data.num_outputs, data.class_names) == ("regression", 3, None)
  batch = data.train_batch(0)
  assert batch["targets"].shape == (4, 3) and batch["targets"].dtype == np.float32
  (test,) = list(data.eval_batches("test"))[1:]  # Rows 3 and 4, then padding.
  np.testing.assert_allclose(test["targets"][:2], y[3:5], rtol=1e-6)
  assert not test["targets"][2].any()
  one = _npz(tmp_path, "one.npz", x_train=x, y_train=y[:, 0], len_train=lengths)
  assert sequences.build_arrays(_cfg(one), 0, "").num_outputs == 1
  bad = _npz(tmp_path, "bad.npz", x_train=x, y_train=y, x_test=x[:5], y_test=y[:5, :2])
  with pytest.raises(SequenceFileError, match=_at(bad, r": x_test: targets of shape \(2,\) per "
                                                  r"example, train has \(3,\)")):
    sequences.build_arrays(_cfg(bad), 0, "")


def test_ts_files_build_with_the_header_classes(tmp_path):
  train_ts = _ts(tmp_path, ["@dimensions 2", "@classLabel true a b c", "@data", "1,2:3,4:a",
                            "5:6:b", "7,8,9:1,2,3:a", "4:5:b"], "TRAIN.ts")
  test_ts = _ts(tmp_path, ["@dimensions 2", "@classLabel true a b c", "@data", "1:2:c",
                           "3,4,5,6:7,8,9,0:a"], "TEST.ts")
  data = sequences.build_ts(_cfg(train_path=train_ts, test_path=test_ts, batch_size=2,
                                 standardize=False), 0, "")
  assert data.class_names == ("a", "b", "c") and data.num_outputs == 3
  assert data.seq_len == 4 and data.input_dim == 2  # T: the longest of any split.
  assert data.eval_splits == ("valid", "test")
  test = data.splits["test"]
  np.testing.assert_array_equal(test.labels, [2, 0])
  np.testing.assert_array_equal(test.x[1], [[3, 7], [4, 8], [5, 9], [6, 0]])
  np.testing.assert_array_equal(test.x[0, 1:], np.zeros((3, 2)))


# Nothing is written before the data validate.


def test_training_on_bad_data_writes_nothing(tmp_path):
  x, lengths, labels = _labelled()
  lengths[4] = 7  # Longer than T = 6.
  path = _npz(tmp_path, x_train=x, y_train=labels, len_train=lengths)
  config = sequences_config.get_config("hidden=8,layers=1")
  config.data.path = path
  config.data.batch_size = 4
  workdir = str(tmp_path / "run")
  with pytest.raises(SequenceFileError, match=_at(path, ": len_train: example 4 has length 7")):
    train.train_and_evaluate(config, workdir)
  assert not os.path.exists(workdir)
  os.makedirs(workdir)
  with pytest.raises(SequenceFileError, match="example 4 has length 7"):
    train.train_and_evaluate(config, workdir)
  assert os.listdir(workdir) == []
