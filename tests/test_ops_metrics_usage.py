"""Token counts read from the last bytes of an answer: for each count, the last of its names
in the tail that has a number wins."""

from __future__ import annotations

import random
import re

from ollamux.plugins.metrics.usage import TAIL_BYTES, UsageTransform, parse_usage

_NAMES = {
    "prompt_eval_count": "prompt_tokens",
    "eval_count": "completion_tokens",
    "prompt_tokens": "prompt_tokens",
    "completion_tokens": "completion_tokens",
    "input_tokens": "prompt_tokens",
    "output_tokens": "completion_tokens",
}
_ANY = re.compile(rb'(?=("(' + b"|".join(n.encode() for n in _NAMES) + rb')"\s*:\s*(\d+)))')


def expected(tail: bytes) -> dict[str, int]:
    """The specification, written plainly: every name with a count, the last one wins."""
    out: dict[str, int] = {}
    for m in _ANY.finditer(tail):
        out[_NAMES[m.group(2).decode()]] = int(m.group(3))
    return out


def test_ollamas_final_line_gives_both_counts() -> None:
    line = b'{"done":true,"total_duration":9,"prompt_eval_count":11,"eval_count":22}\n'
    assert parse_usage(line) == {"prompt_tokens": 11, "completion_tokens": 22}


def test_an_answer_without_counts_gives_none() -> None:
    assert parse_usage(b'{"embeddings":[[0.1,0.2]],"total_tokens":3}') == {}


def test_a_name_without_a_number_gives_way_to_an_earlier_one_with_a_number() -> None:
    tail = b'{"eval_count":5}\n{"eval_count":null}'
    assert parse_usage(tail) == {"completion_tokens": 5}


def test_a_name_cut_by_the_start_of_the_tail_is_not_read() -> None:
    body = b'{"prompt_tokens":4,"completion_tokens":9}'
    start = body.index(b"completion") + 1  # the tail begins inside the second name
    assert parse_usage(body, start) == {}
    assert parse_usage(body, start - 2) == {"completion_tokens": 9}


def test_random_tails_read_as_the_specification_says() -> None:
    rng = random.Random(11)
    pieces = [
        *(f'"{n}":{{n}}'.encode() for n in _NAMES),
        *(f'"{n}": null'.encode() for n in _NAMES),
        b'"total_tokens":3',
        b'"x_tokens":8',
        b'"_count":1',
        b'"eval":2',
        b"data: ",
        b"\n",
        b",",
        b" ",
        b"{",
        b"}",
        b"tok tok",
    ]
    for _ in range(3000):
        text = b"".join(
            rng.choice(pieces).replace(b"{n}", str(rng.randint(0, 999)).encode())
            for _ in range(rng.randint(0, 30))
        )
        start = rng.randint(0, len(text))
        assert parse_usage(text, start) == expected(text[start:]), (text, start)


def test_a_one_chunk_answer_is_read_only_in_its_last_bytes() -> None:
    t = UsageTransform()
    body = b'{"prompt_eval_count":5,' + b" " * TAIL_BYTES + b'"eval_count":6}'
    t.feed(body)
    t.end()
    assert t.usage == {"completion_tokens": 6}


def test_a_long_stream_is_read_in_its_last_bytes() -> None:
    t = UsageTransform()
    first = b'{"done":false,"eval_count":1}\n'
    for chunk in [first, *[b'{"done":false}\n'] * 3000, b'{"done":true,"eval_count":8}\n']:
        t.feed(chunk)
    t.end()
    assert t.usage == {"completion_tokens": 8}


def test_however_an_answer_is_chunked_its_counts_are_read_from_its_last_bytes() -> None:
    rng = random.Random(5)
    line = b'{"done":false,"eval_count":%d,"prompt_tokens":%d}\n'
    body = b"".join(line % (i, i + 1) for i in range(1500))
    for _ in range(50):
        t = UsageTransform()
        pos = 0
        while pos < len(body):
            size = rng.choice((1, 7, 100, 3000, 20000))
            t.feed(body[pos : pos + size])
            pos += size
        t.end()
        assert t.usage == parse_usage(body[-TAIL_BYTES:])
