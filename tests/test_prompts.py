"""Prompts files: the documented syntax, and a clear InputError for every bad file."""

from __future__ import annotations

import io
import sys

import pytest

from scd.core.errors import InputError
from scd.ingest.prompts import PromptSpec, parse_prompts, read_prompts


def write(tmp_path, data: bytes, name: str = "prompts.txt"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_plain_text_rules(tmp_path):
    p = write(
        tmp_path,
        "\ufeffCopyright (C\r\n"  # BOM and CRLF
        "# a comment\r\n"
        "   # an indented comment\n"
        "\n"
        "   \t  \n"  # whitespace only
        "The capital of France is\t Paris\n"  # explicit target after a TAB, spaces kept
        " leading and trailing spaces  \n"
        "Copyright (C\n"  # duplicate: once
        "Copyright (C\t)\n".encode(),  # same text, other target: a different prompt
    )
    assert read_prompts(p) == [
        PromptSpec("Copyright (C", None, None, 1),
        PromptSpec("The capital of France is", " Paris", None, 6),
        PromptSpec(" leading and trailing spaces  ", None, None, 7),
        PromptSpec("Copyright (C", ")", None, 9),
    ]


def test_form_feed_and_unicode_separators_stay_inside_a_prompt():
    assert [s.text for s in parse_prompts("a\x0cb\u2028c\nd")] == ["a\x0cb\u2028c", "d"]


def test_jsonl(tmp_path):
    p = write(
        tmp_path,
        b'{"prompt": "Copyright (C", "target": ")"}\n\n'
        b'{"prompt": "# not a comment here", "target": null}\n'
        b'{"prompt": "a", "target": "b", "contrast": "c"}\n'
        b'{"prompt": "Copyright (C", "target": ")"}\n',
        "prompts.jsonl",
    )
    assert read_prompts(p) == [
        PromptSpec("Copyright (C", ")", None, 1),
        PromptSpec("# not a comment here", None, None, 3),
        PromptSpec("a", "b", "c", 4),
    ]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"not json\n", "line 1: not valid JSON"),
        (b'{"prompt": "a"}\n["x"]\n', "line 2: expected a JSON object"),
        (b'{"text": "a"}\n', "unknown key"),
        (b'{"prompt": ""}\n', '"prompt" must be a non-empty string'),
        (b'{"prompt": "a", "target": 3}\n', '"target" must be a non-empty string or null'),
    ],
)
def test_jsonl_errors(tmp_path, data, message):
    with pytest.raises(InputError, match=message):
        read_prompts(write(tmp_path, data, "p.jsonl"))


def test_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"one\n# c\ntwo\tt\n")))
    assert read_prompts("-") == [PromptSpec("one", None, None, 1), PromptSpec("two", "t", None, 3)]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'\n{"prompt": "x"}\n')))
    assert read_prompts("-") == [PromptSpec("x", None, None, 2)]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", r"has no prompts \(it is empty\)"),
        (b"# only\n\n  \n", r"has no prompts \(only blank or # lines\)"),
        (b"ok\ncaf\xe9\n", r"is not UTF-8 \(byte 0xe9 on line 2\)"),
        (b"ok\nprompt\t\n", "line 2: a TAB but no target after it"),
        (b"\tx\n", "line 1: the prompt before the TAB is empty"),
        (b"ok\nbin\x00ary\n", "line 2: contains a NUL character"),
    ],
)
def test_bad_files(tmp_path, data, message):
    with pytest.raises(InputError, match=message) as e:
        read_prompts(write(tmp_path, data))
    assert e.value.fix  # every error names a fix


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_prompts(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="is a folder"):
        read_prompts(tmp_path)


def test_unreadable_file(tmp_path, monkeypatch):
    p = write(tmp_path, b"x\n")

    def deny(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(p), "read_bytes", deny)  # root reads any file, so simulate the permission error
    with pytest.raises(InputError, match=r"cannot read prompts file .* \(Permission denied\)"):
        read_prompts(p)
