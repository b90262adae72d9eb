"""The C helper (``_vectorpath``) reads an embed answer's vectors exactly as the Python
steps do, whatever the text holds: the same vectors and end, or both refuse (``None``)."""

from __future__ import annotations

import base64
import json
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ollamux.plugins.translate import vectorpath

try:
    from ollamux.plugins.translate._vectorpath import one as compiled_one
    from ollamux.plugins.translate._vectorpath import vectors as compiled
except ImportError:  # installed without a C compiler: only Python's steps run (.ci/run checks)
    compiled = compiled_one = None

needs_c = pytest.mark.skipif(compiled is None, reason="the C helper is not built here")


def _both(text: str, start: int = 0) -> None:
    """Each format read by C and by Python gives the same, and so does each vector."""
    assert compiled is not None and compiled_one is not None
    for at in [i for i, c in enumerate(text) if c == "["]:
        assert compiled_one(text, at) == vectorpath._one(text, at), (text, at)
    for base64_, python in ((False, vectorpath._floats), (True, vectorpath._base64)):
        try:
            expected = python(text, start)
        except ValueError:  # the Python step's JSON scanner: its caller refuses the answer
            expected = None
        assert compiled(text, start, base64_) == expected, (text, base64_)


# numbers as JSON writes them and as other encoders might, with their edges
NUMBER_TEXTS = [
    "0", "-0", "0.0", "-0.0", "-0e0", "0e-5", "1", "-1", "0.5", "0.1", "0.30000000000000004",
    "123456789012345", "1234567890123456", "12345678901234567890", "1e22", "1e23", "1.5e-22",
    "1e-23", "3.4028234663852886e38", "3.4028235e38", "3.40282357e38", "1e39", "-1e39",
    "1e400", "-1e400", "1e-400", "1.4e-45", "7e-46", "1.17549435e-38", "10" * 200, "1" * 400,
    "0.000000000000000000000000001", "9007199254740993", "2.5E+3", "2.5e-3", "1E5",
    "123456.789e-3", "0.0000001234567890123456789",
]  # fmt: skip
BROKEN_NUMBERS = ["01", "1.", ".5", "-", "+1", "1e", "1e+", "--1", "0x10", "1_0", "NaN",
                  "Infinity", "-Infinity", "true", "null", '"1"', "1 2", "[1]", "{}"]  # fmt: skip


@needs_c
@pytest.mark.parametrize("number", NUMBER_TEXTS + BROKEN_NUMBERS)
def test_one_number_is_read_as_python_reads_it(number: str) -> None:
    _both(f"[[{number}]]")
    _both(f"[[0.5, {number} ], [{number}]]")


@needs_c
@pytest.mark.parametrize("number", NUMBER_TEXTS)
def test_a_number_is_packed_as_struct_packs_what_json_reads(number: str) -> None:
    value = json.loads(number)
    try:
        packed = struct.pack("<f", value)
    except (struct.error, OverflowError):
        assert compiled is not None and compiled(f"[[{number}]]", 0, True) is None
        return
    assert compiled is not None
    assert compiled(f"[[{number}]]", 0, True) == (
        [f'"{base64.b64encode(packed).decode()}"'],
        2 + len(number) + 2,
    )


@needs_c
@pytest.mark.parametrize(
    "text",
    ["[]", "[ ]", "[[]]", "[[],[]]", "[ [ 1 , 2 ] , [ ] ]", "[\n[1,\t2]\r]", "[[1],]", "[[1] [2]]",
     "[[1]", "[[1", "[", "", "x", "[1]", "[[[1]]]", "[{}]", '[""]', "[[1],2]", "[[1,,2]]",
     "[[,1]]", "[[1]]]", "[[1]] trailing"],
)  # fmt: skip
def test_the_lists_around_the_numbers_are_read_as_python_reads_them(text: str) -> None:
    _both(text)


@needs_c
def test_the_vectors_start_where_asked_and_end_after_the_list() -> None:
    text = '{"embeddings": [[1,2],[3]], "x": 1}'
    start = text.index("[")
    assert compiled is not None
    assert compiled(text, start, False) == (["[1,2]", "[3]"], text.index(", ", start + 10))
    _both(text, start)
    for start in (-1, len(text), len(text) + 5, 0):
        assert compiled(text, start, False) is None


@needs_c
def test_a_text_that_is_not_ascii_is_read_by_python() -> None:
    text = '[[0.5]] "\u00e9"'
    assert compiled is not None and compiled(text, 0, False) is None
    assert vectorpath.floats(text, 0) == (["[0.5]"], 7)


json_numbers = st.one_of(
    st.integers(),
    st.integers(-(10**60), 10**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.tuples(st.integers(-(10**18), 10**18), st.integers(0, 30), st.integers(-400, 400)).map(
        lambda t: f"{t[0]}.{'0' * t[1]}1e{t[2]}"
    ),
).map(lambda n: n if isinstance(n, str) else json.dumps(n))
spaces = st.sampled_from(["", " ", "\n", "\t ", "\r\n"])


@needs_c
@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(st.tuples(json_numbers, spaces), max_size=8), max_size=4), spaces)
@example([[("1e39", "")]], "")
def test_any_list_of_vectors_is_read_as_python_reads_it(
    vectors: list[list[tuple[str, str]]], space: str
) -> None:
    text = (
        "["
        + space
        + f",{space}".join("[" + ",".join(n + s for n, s in v) + "]" for v in vectors)
        + "]"
    )
    _both(text)


@needs_c
@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(json_numbers, max_size=6), max_size=3), st.data())
def test_a_damaged_byte_is_refused_or_read_as_python_reads_it(
    vectors: list[list[str]], data: st.DataObject
) -> None:
    text = list("[" + ",".join("[" + ",".join(v) + "]" for v in vectors) + "]")
    at = data.draw(st.integers(0, len(text) - 1))
    text[at] = data.draw(st.sampled_from(list('0123456789.eE+-,[]" xNtf\n')))
    _both("".join(text))
