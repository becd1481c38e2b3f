"""Bad input, tried systematically: random and corrupted ARC files, grids and generator args.

Every loader either returns exactly what the file says or raises ``DataError`` (``GridError``
for the grid functions, ``ValueError`` for the pattern generator) whose message names the
file, the task and the pair; never an unrelated exception, a hang or silently changed data.
"""

import json
import math
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lpn_arc.data import (
    DataError,
    GridError,
    decode_grid,
    encode_grid,
    generate_pattern_tasks,
    load_rearc,
    load_tasks,
    make_pairs,
)

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("reliability_data")


colours = st.integers(0, 9)


@st.composite
def grids(draw, max_side=5):
    rows, cols = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    return [draw(st.lists(colours, min_size=cols, max_size=cols)) for _ in range(rows)]


@st.composite
def tasks(draw, with_outputs=None):
    with_outputs = draw(st.booleans()) if with_outputs is None else with_outputs
    train = [
        {"input": draw(grids()), "output": draw(grids())} for _ in range(draw(st.integers(1, 3)))
    ]
    test = []
    for _ in range(draw(st.integers(1, 2))):
        entry = {"input": draw(grids())}
        if with_outputs:
            entry["output"] = draw(grids())
        test.append(entry)
    return {"train": train, "test": test}


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**25), 10**25)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=3)
)


json_keys = st.sampled_from(["train", "test", "input", "output"]) | st.text(max_size=3)


json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_keys, inner, max_size=4),
    max_leaves=40,
)


# Corruptions of one grid: (name, function of the grid, fragment of the expected message).
BAD_CELLS = st.one_of(
    st.sampled_from([10, -1, 2**63, -(2**63) - 1, 10**30]),  # the edges and int64 overflow
    st.integers(10, 10**30),
    st.integers(-(10**30), -1),
    st.floats(allow_nan=True).filter(lambda x: not float(x).is_integer() or math.isinf(x)),
    st.text(max_size=2),
    st.booleans(),
    st.none(),
    st.lists(st.integers(0, 9), max_size=2),
)


@st.composite
def corrupted(draw, grid):
    """A malformed version of ``grid`` and a regular expression its error must match."""
    kind = draw(
        st.sampled_from(
            ["cell", "ragged", "empty", "empty row", "tall", "wide", "not a list", "row type"]
        )
    )
    grid = [list(row) for row in grid]
    if kind == "cell":
        r, c = draw(st.integers(0, len(grid) - 1)), draw(st.integers(0, len(grid[0]) - 1))
        value = draw(BAD_CELLS)
        grid[r][c] = value
        return grid, rf"cell \({r}, {c}\)"
    if kind == "ragged":
        assume(len(grid) > 1)
        r = draw(st.integers(1, len(grid) - 1))
        grid[r] = grid[r] + [0] if draw(st.booleans()) or len(grid[r]) == 1 else grid[r][:-1]
        return grid, rf"row {r} has {len(grid[r])} cells, expected {len(grid[0])}"
    if kind == "empty":
        return [], "grid is empty"
    if kind == "empty row":
        return [[]], "grid is empty"
    if kind == "tall":
        rows = draw(st.integers(31, 200))
        return [grid[0]] * rows, rf"grid is {rows}x{len(grid[0])}, ARC grids have at most 30"
    if kind == "wide":
        cols = draw(st.integers(31, 200))
        return [[0] * cols], rf"grid is 1x{cols}, ARC grids have at most 30"
    if kind == "not a list":
        return draw(st.sampled_from([5, "0123", {"rows": 1}, None, 1.5])), "grid must be a list"
    r = draw(st.integers(0, len(grid) - 1))
    grid[r] = draw(st.sampled_from([7, "12", None, {"a": 1}]))
    return grid, rf"row {r} must be a list of cells"


def _write(path, obj):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def _same_grid(array, grid):
    return array.dtype == np.int8 and array.tolist() == grid


def _check_task(task, raw):
    """The loaded task holds exactly the grids of the JSON (nothing dropped or changed)."""
    assert len(task.train) == len(raw["train"])
    for (inp, out), entry in zip(task.train, raw["train"], strict=True):
        assert _same_grid(inp, entry["input"]) and _same_grid(out, entry["output"])
    assert [g.tolist() for g in task.test_inputs] == [e["input"] for e in raw["test"]]
    if all("output" in e for e in raw["test"]):
        assert [g.tolist() for g in task.test_outputs] == [e["output"] for e in raw["test"]]
    else:
        assert task.test_outputs is None


@SETTINGS
@given(value=json_values)
def test_random_json_task_files_load_or_fail_with_a_data_error(folder, value):
    path = _write(folder / "abc.json", value)
    try:
        tasks = load_tasks(path)
    except DataError as err:
        assert str(err).startswith(str(path)), err
        assert "\n" not in str(err)
        return
    (task,) = tasks  # only a well-formed task loads
    assert task.task_id == "abc"
    _check_task(task, value)


@SETTINGS
@given(value=json_values)
def test_random_json_challenges_and_rearc_files_fail_with_a_data_error(folder, value):
    challenges = _write(folder / "x_challenges.json", {"t1": value})
    rearc = folder / "rearc"
    rearc.mkdir(exist_ok=True)
    _write(rearc / "t1.json", value)
    for load, source in ((load_tasks, challenges), (load_rearc, rearc)):
        try:
            loaded = load(source)
        except DataError as err:
            assert str(rearc if load is load_rearc else challenges) in str(err)
            assert "t1" in str(err), err
            continue
        if load is load_tasks:  # a well-formed task: loaded exactly as written
            (task,) = loaded
            assert task.task_id == "t1"
            _check_task(task, value)
        else:  # a well-formed pool: every pair, exactly as written
            assert list(loaded) == ["t1"] and len(loaded["t1"]) == len(value)
            for (inp, out), entry in zip(loaded["t1"], value, strict=True):
                assert _same_grid(inp, entry["input"]) and _same_grid(out, entry["output"])


@SETTINGS
@given(text=st.text(max_size=40) | st.binary(max_size=40).map(lambda b: b.decode("latin-1")))
def test_random_text_is_a_json_error_naming_the_file(folder, text):
    path = folder / "junk.json"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    try:
        json.loads(text)
        assume(False)  # valid JSON is covered above
    except (ValueError, RecursionError):
        pass
    with pytest.raises(DataError, match="junk.json"):
        load_tasks(path)


@pytest.mark.parametrize(
    "content",
    [
        "[" * 100_000 + "]" * 100_000,  # nested beyond the recursion limit
        '{"train": [{"input": [['
        + "9" * 5000
        + ']], "output": [[1]]}], "test": []}',  # 5000 digits
        b'{"train": "\xff\xfe"}',  # not UTF-8
        "",
    ],
    ids=["deep", "huge int literal", "not utf-8", "empty"],
)
def test_pathological_json_is_a_data_error(folder, content):
    path = folder / "weird.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=r"weird\.json: (invalid JSON|cannot read)"):
        load_tasks(path)


@SETTINGS
@given(data=st.data())
def test_each_corrupted_grid_names_the_file_task_pair_and_side(folder, data):
    raw = data.draw(tasks(with_outputs=True))
    part = data.draw(st.sampled_from(["train", "test"]))
    index = data.draw(st.integers(0, len(raw[part]) - 1))
    side = data.draw(st.sampled_from(["input", "output"]))
    bad, message = data.draw(corrupted(raw[part][index][side]))
    raw[part][index][side] = bad
    path = _write(folder / "abc.json", raw)
    where = rf"abc\.json: task abc, {part} pair {index}, {side}: "
    with pytest.raises(DataError, match=where + message):
        load_tasks(path)
    # the same grid in a challenges file (the test outputs in its solutions file)
    challenge = {
        "t9": {"train": raw["train"], "test": [{"input": e["input"]} for e in raw["test"]]}
    }
    solutions = {"t9": [e["output"] for e in raw["test"]]}
    chal = _write(folder / "y_challenges.json", challenge)
    _write(folder / "y_solutions.json", solutions)
    source = "y_solutions" if part == "test" and side == "output" else "y_challenges"
    with pytest.raises(DataError, match=rf"{source}\.json: task t9, {part} pair {index}, {side}: "):
        load_tasks(chal)


@SETTINGS
@given(data=st.data())
def test_structural_faults_name_the_task_and_pair(folder, data):
    raw = data.draw(tasks(with_outputs=True))
    fault = data.draw(
        st.sampled_from(["no train", "no test key", "empty train", "missing", "not object"])
    )
    if fault == "no train":
        del raw["train"]
        message = r'task abc: missing "train"'
    elif fault == "no test key":
        del raw["test"]
        message = r'task abc: missing "test"'
    elif fault == "empty train":
        raw["train"] = []
        message = r"task abc: no train pairs"
    elif fault == "missing":
        i = data.draw(st.integers(0, len(raw["train"]) - 1))
        key = data.draw(st.sampled_from(["input", "output"]))
        del raw["train"][i][key]
        message = rf'task abc, train pair {i}: missing "{key}"'
    else:
        i = data.draw(st.integers(0, len(raw["train"]) - 1))
        raw["train"][i] = data.draw(st.sampled_from([[], 3, "pair", None]))
        message = rf"task abc, train pair {i}: expected an object"
    with pytest.raises(DataError, match=message):
        load_tasks(_write(folder / "abc.json", raw))


@SETTINGS
@given(raw=tasks())
def test_valid_tasks_load_unchanged_from_files_folders_and_challenges(folder, raw):
    path = _write(folder / "ok.json", raw)
    (task,) = load_tasks(path)
    _check_task(task, raw)
    sub = folder / "one"
    sub.mkdir(exist_ok=True)
    _write(sub / "ok.json", raw)
    (task,) = load_tasks(sub)
    _check_task(task, raw)
    chal = {"ok": {"train": raw["train"], "test": [{"input": e["input"]} for e in raw["test"]]}}
    (task,) = load_tasks(_write(folder / "z_challenges.json", chal))
    assert task.test_outputs is None
    _check_task(task, chal["ok"])


def test_duplicate_task_ids_and_keys_are_errors(folder):
    task = json.dumps({"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}]})
    chal = folder / "dup_challenges.json"
    chal.write_text(f'{{"a1": {task}, "b2": {task}, "a1": {task}}}')
    with pytest.raises(DataError, match=r"dup_challenges\.json: the key 'a1' appears twice"):
        load_tasks(chal)
    chal.write_text(f'{{"a1": {task}}}')
    sols = folder / "dup_solutions.json"
    sols.write_text('{"a1": [[[3]]], "a1": [[[4]]]}')
    with pytest.raises(DataError, match=r"dup_solutions\.json: the key 'a1' appears twice"):
        load_tasks(chal)
    single = folder / "dupkey.json"
    single.write_text('{"train": [{"input": [[1]], "output": [[2]]}], "test": [], "train": []}')
    with pytest.raises(DataError, match=r"dupkey\.json: the key 'train' appears twice"):
        load_tasks(single)
    pair = '[{"input": [[1]], "input": [[5]], "output": [[2]]}]'
    (folder / "rearc_dup").mkdir(exist_ok=True)
    (folder / "rearc_dup" / "t.json").write_text(pair)
    with pytest.raises(DataError, match=r"t\.json: the key 'input' appears twice"):
        load_rearc(folder / "rearc_dup")


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30])
def test_cells_beyond_int64_name_the_cell(folder, value):
    with pytest.raises(GridError, match=rf"^w: cell \(1, 0\) has colour {value}, expected 0-9"):
        encode_grid([[1], [value]], 30, 30, where="w")
    raw = {"train": [{"input": [[1]], "output": [[2, value]]}], "test": []}
    with pytest.raises(DataError, match=r"train pair 0, output: cell \(0, 1\) has colour"):
        load_tasks(_write(folder / "int.json", raw))


def test_oversize_grids_fail_fast(folder):
    big = [[0] * 2000] * 2000  # 4 million cells: rejected on its shape, not cell by cell
    path = _write(folder / "big.json", {"train": [{"input": [[1]], "output": big}], "test": []})
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"train pair 0, output: grid is 2000x2000"):
        load_tasks(path)
    tall = [[0]] * 1_000_000
    with pytest.raises(GridError, match=r"grid is 1000000x1"):
        encode_grid(tall, 30, 30)
    assert time.perf_counter() - start < 20


@SETTINGS
@given(data=st.data(), as_array=st.booleans())
def test_encode_grid_and_make_pairs_reject_every_corruption(data, as_array):
    grid = data.draw(grids())
    bad, message = data.draw(corrupted(grid))
    where = "task q, train pair 1, input"
    with pytest.raises(GridError, match="^" + where + ": " + message):
        encode_grid(bad, 30, 30, where=where)
    with pytest.raises(GridError, match=r"^task q, pair 0, output: " + message):
        make_pairs([(grid, bad)], 30, 30, where="task q")
    if as_array:  # arrays: only integer 2-D arrays are grids
        dtype = data.draw(st.sampled_from([np.float32, np.float64, np.bool_, np.complex64]))
        with pytest.raises(GridError, match="must hold integers"):
            encode_grid(np.array(grid, dtype=dtype), 30, 30)
        with pytest.raises(GridError, match="must be 2-D"):
            encode_grid(np.array(grid, dtype=np.int64)[None], 30, 30)


@SETTINGS
@given(grid=grids(max_side=30), pad=st.tuples(st.integers(0, 3), st.integers(0, 3)))
def test_encoding_never_changes_a_valid_grid(grid, pad):
    rows, cols = len(grid), len(grid[0])
    max_rows, max_cols = min(rows + pad[0], 30), min(cols + pad[1], 30)
    padded, shape = encode_grid(grid, max_rows, max_cols)
    assert decode_grid(padded, shape) == grid
    if rows > 1:  # a padded size smaller than the grid is an error, not a crop
        with pytest.raises(GridError, match="larger than the maximum"):
            encode_grid(grid, rows - 1, max_cols)


@SETTINGS
@given(
    shape=st.one_of(
        st.tuples(st.integers(-3, 40), st.integers(-3, 40)),
        st.tuples(st.integers(1, 3)),
        st.tuples(st.just(1), st.just(1), st.just(1)),
    ),
    size=st.tuples(st.integers(1, 5), st.integers(1, 5)),
)
def test_decode_grid_rejects_shapes_that_do_not_fit(shape, size):
    array = np.zeros(size, np.int32)
    fits = len(shape) == 2 and 1 <= shape[0] <= size[0] and 1 <= shape[1] <= size[1]
    if fits:
        assert decode_grid(array, shape) == [[0] * shape[1]] * shape[0]
    else:
        with pytest.raises(ValueError, match="shape"):
            decode_grid(array, shape)


ARG_VALUES = {
    "num_tasks": st.integers(-2, 4) | st.sampled_from([2.0, True, None, "3", math.nan]),
    "num_pairs": st.integers(-2, 4) | st.sampled_from([1.5, False, None]),
    "grid_size": st.integers(-1, 35) | st.sampled_from([10.0, None, math.inf]),
    "pattern_size": st.integers(-1, 12) | st.sampled_from([2.5, None]),
    "density": st.floats(-1, 2) | st.sampled_from([math.nan, math.inf, True, None, "0.5"]),
}


@SETTINGS
@given(kwargs=st.fixed_dictionaries({k: v for k, v in ARG_VALUES.items()}))
def test_pattern_generator_validates_every_argument(kwargs):
    def ok_int(v, low, high=None):
        return type(v) is int and v >= low and (high is None or v <= high)

    grid = kwargs["grid_size"]
    valid = (
        ok_int(kwargs["num_tasks"], 1)
        and ok_int(kwargs["num_pairs"], 1)
        and ok_int(grid, 1, 30)
        and ok_int(kwargs["pattern_size"], 1, grid)
        and type(kwargs["density"]) is float
        and 0 <= kwargs["density"] <= 1
    )
    rng = np.random.default_rng(0)
    if not valid:
        with pytest.raises(ValueError) as info:
            generate_pattern_tasks(rng, **kwargs)
        assert any(name in str(info.value) for name in kwargs), info.value
        return
    pairs, patterns = generate_pattern_tasks(rng, **kwargs)
    t, n = kwargs["num_tasks"], kwargs["num_pairs"]
    assert pairs.inputs.shape == pairs.outputs.shape == (t, n, grid, grid)
    assert patterns.shape == (t, kwargs["pattern_size"], kwargs["pattern_size"])
    assert ((pairs.inputs == 1).sum(axis=(-1, -2)) == 1).all()  # exactly one marker
    assert pairs.outputs.min() >= 0 and pairs.outputs.max() <= 9
