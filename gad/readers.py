"""Bytes on disk -> raw records, for the files people actually have.

By name: .jsonl, .json, .csv, .tsv, .parquet, and gzip-compressed .jsonl.gz / .json.gz / .csv.gz /
.tsv.gz. Text may be UTF-8 (with or without the byte-order mark Excel's "CSV UTF-8" writes) or
UTF-16 / UTF-32 with a byte-order mark. Other encodings (Windows-1252, UTF-16 without a BOM) are
refused with the file, line and column of the first undecodable byte and how to re-save it; they
are never guessed, because a wrong guess silently turns prompts into mojibake that the teacher is
then paid to answer. A file whose content is not what its name says (a Parquet or gzip file named
.jsonl, an Excel workbook named .csv) is told so.

CSV: the delimiter is read from the header line (comma; semicolon, as European Excel writes it;
tab; pipe). A record is located at the line where it starts, even when quoted cells span lines.
Turning records into examples (field names, shapes) is gad/data.py's job.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import zlib
from pathlib import Path
from typing import Any, Iterator

TEXT_KINDS = ("jsonl", "json", "csv", "tsv")
SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet") + tuple(f".{k}.gz" for k in TEXT_KINDS)

# Checked longest first: a UTF-32 LE mark starts with the UTF-16 LE one.
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
RESAVE_HINT = "re-save it as UTF-8 (Excel: Save As 'CSV UTF-8'; an editor: encoding UTF-8) and load it again"


class DataError(ValueError):
    """Bad input data; the message starts with `file:line` and names the field."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where = where


def read_rows(path: str | Path) -> Iterator[tuple[str, Any]]:
    """Yield (where, row) for every record of a supported file; `where` is `file:line` (or row/item)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(str(path), "is a folder; give a data file")
    if not path.is_file():
        raise DataError(str(path), "file not found")
    kind, compressed = file_kind(path)
    raw = path.read_bytes()
    if compressed:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(str(path), f"not a valid gzip file ({err})") from None
    _check_content_matches_name(path, raw[:4], kind)
    if kind == "parquet":
        yield from _parquet_rows(path, raw)
        return
    text = _decode(path, raw)
    if kind == "jsonl":
        yield from _jsonl_rows(path, text)
    elif kind == "json":
        yield from _json_rows(path, text)
    else:
        yield from _csv_rows(path, text, "\t" if kind == "tsv" else _delimiter(text))


def file_kind(path: Path) -> tuple[str, bool]:
    """('jsonl' | 'json' | 'csv' | 'tsv' | 'parquet', gzip-compressed?) from the file name."""
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    named = suffixes[-2:] if compressed else suffixes[-1:]
    kind = named[0].lstrip(".") if named and (not compressed or len(named) == 2) else ""
    if kind in TEXT_KINDS or (kind == "parquet" and not compressed):
        return kind, compressed
    shown = "".join(named) or "(none)"
    hint = (" (an Excel workbook: save it as 'CSV UTF-8')" if shown in (".xlsx", ".xls")
            else " (name a compressed file .jsonl.gz, .csv.gz, ...)" if compressed else "")
    raise DataError(str(path), f"unsupported file type '{shown}'{hint}; use one of {', '.join(SUPPORTED_SUFFIXES)}")


def _check_content_matches_name(path: Path, head: bytes, kind: str) -> None:
    named = kind.upper()
    if kind == "parquet":
        if not head.startswith(b"PAR1"):
            raise DataError(str(path), "not a Parquet file (it lacks the PAR1 header); is it text with the wrong name?")
        return
    if head.startswith(b"PAR1"):
        raise DataError(str(path), f"this is a Parquet file, not {named} text: rename it to {path.stem}.parquet")
    if head.startswith(b"\x1f\x8b"):
        raise DataError(str(path), f"this file is gzip-compressed: name it {path.name}.gz (or decompress it)")
    if head.startswith(b"PK\x03\x04"):
        raise DataError(str(path), f"this is a zip archive (an Excel .xlsx workbook?), not {named} text: "
                                   f"in Excel, save it as 'CSV UTF-8'")


def _decode(path: Path, raw: bytes) -> str:
    for bom, encoding in BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError as err:
                raise DataError(str(path), f"starts with a {encoding.upper()} byte-order mark but is not valid "
                                           f"{encoding.upper()} (byte {err.start}); {RESAVE_HINT}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(f"{path}:{line}", f"not UTF-8 text: byte 0x{raw[err.start]:02x} at column {column}"
                                          f"{_encoding_guess(raw, err.start)}; {RESAVE_HINT}") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(f"{path}:{line}", f"holds NUL bytes: UTF-16 text without a byte-order mark, or not a "
                                          f"text file at all; {RESAVE_HINT}")
    return text


def _encoding_guess(raw: bytes, at: int) -> str:
    if raw[:4096].count(b"\x00") > 16:
        return " (it looks like UTF-16 without a byte-order mark)"
    try:
        char = raw[at:at + 1].decode("cp1252")
    except UnicodeDecodeError:
        return ""
    return f" (it looks like Windows-1252 / Latin-1 text, where that byte is '{char}')"


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    # Split on newlines only: str.splitlines would also cut at U+2028 and other separators that
    # JSON strings may hold unescaped.
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{lineno}", json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{lineno}", f"not valid JSON ({err.msg} at column {err.colno})") from None


def _json_rows(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}", f"not valid JSON ({err.msg} at column {err.colno})") from None
    if isinstance(data, dict):  # {"data": [...]}, {"instances": [...]}, ... or a single record
        lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        data = lists[0] if len(lists) == 1 else [data]
    if not isinstance(data, list):
        raise DataError(str(path), f"expected a JSON array of records, got {type(data).__name__}")
    for i, row in enumerate(data):
        yield f"{path}:item {i}", row


def _delimiter(text: str) -> str:
    """The separator the header line uses most, outside quotes; a comma when it has none."""
    header = re.sub(r'"[^"]*"', "", text.split("\n", 1)[0])
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])  # ties go to the comma, listed first
    return best if counts[best] else ","


def _csv_rows(path: Path, text: str, delimiter: str) -> Iterator[tuple[str, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    start = 1  # the line where the next record starts
    while True:
        where = f"{path}:{start}"
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise DataError(where, f"not valid CSV ({err})") from None
        start = reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip() for c in cells]
            seen = [h for i, h in enumerate(header) if h and h in header[:i]]
            if seen:
                raise DataError(where, f"the header names column '{seen[0]}' twice")
            continue
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
            raise DataError(where, f"{len(cells)} cells but the header has {len(header)} columns: a cell that "
                                   f"holds the separator {delimiter!r} must be quoted")
        row = {h: (cells[i] if i < len(cells) else "") for i, h in enumerate(header) if h}
        yield where, _parse_json_cells(row)


def _parse_json_cells(row: dict[str, str]) -> dict[str, Any]:
    """CSV cells holding JSON lists (messages, turns) are decoded; everything else stays text."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        text = (value or "").strip()
        if text[:1] in "[{" and text[-1:] in "]}":
            try:
                out[key] = json.loads(text)
                continue
            except json.JSONDecodeError:
                pass  # text that merely looks like JSON stays text
        out[key] = value
    return out


def _parquet_rows(path: Path, raw: bytes) -> Iterator[tuple[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(raw))
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(str(path), f"not a readable Parquet file ({str(err).splitlines()[0][:200]})") from None
    for i, row in enumerate(table.to_pylist()):
        yield f"{path}:row {i + 1}", row
