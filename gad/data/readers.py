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
Turning records into examples (field names, shapes) is gad/data/examples.py's job.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import itertools
import json
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TEXT_KINDS = ("jsonl", "json", "csv", "tsv")
SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet") + tuple(f".{k}.gz" for k in TEXT_KINDS)

# Checked longest first: a UTF-32 LE mark starts with the UTF-16 LE one.
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# A compressed file may expand to at most this many times the byte cap its caller sets on the
# upload itself: text compresses 3-10x, a bomb 1000x and more.
GZIP_EXPANSION_LIMIT = 10
CHUNK = 1 << 16
MAX_LINE_BYTES = 64 * 2**20  # one JSONL record or CSV line; longer is not a prompt file
RESAVE_HINT = "re-save it as UTF-8 (Excel: Save As 'CSV UTF-8'; an editor: encoding UTF-8) and load it again"


class DataError(ValueError):
    """Bad input data; the message starts with `file:line` and names the field."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where = where


class DataTooLarge(DataError):
    """Input past a stated limit: `limit` is 'bytes' (after decompression) or 'rows'."""

    def __init__(self, where: str, message: str, *, limit: str):
        super().__init__(where, message)
        self.limit = limit


def read_rows(path: str | Path, *, max_bytes: int | None = None, max_rows: int | None = None,
              max_document_bytes: int | None = None,
              progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[str, Any]]:
    """Yield (where, row) for every record of a supported file; `where` is `file:line` (or row/item).

    The file is read as a stream: JSONL and CSV/TSV a line at a time (at most MAX_LINE_BYTES each),
    so memory follows the record being parsed, not the file. `max_bytes` caps the bytes read after
    decompression (a gzip bomb stops there); `max_rows` caps the records, and the blank lines or
    rows skipped; `max_document_bytes` caps JSON and Parquet files, which are parsed whole. Past
    any: DataTooLarge, naming the limit. `progress(bytes_read, file_size)` is called every
    PROGRESS_EVERY records with how far into the file (as stored: compressed bytes for .gz) reading is.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(str(path), "is a folder; give a data file")
    if not path.is_file():
        raise DataError(str(path), "file not found")
    kind, compressed = file_kind(path)
    if kind in ("json", "parquet") and max_document_bytes is not None:
        max_bytes = min(max_bytes or max_document_bytes, max_document_bytes)
    with _open_stream(path, compressed, max_bytes) as stream:
        size, disk = path.stat().st_size, stream.raw.disk
        count = blank = 0
        for where, row in _rows(path, kind, stream):
            if row is _BLANK:  # skipped, but counted: a file of a billion empty rows is not free to read
                blank += 1
                if max_rows is not None and blank > max_rows:
                    raise DataTooLarge(where, f"the file holds more than {max_rows:,} blank lines or rows, the "
                                              f"limit", limit="rows")
                continue
            count += 1
            if max_rows is not None and count > max_rows:
                raise DataTooLarge(where, f"the file holds more than {max_rows:,} records, the limit", limit="rows")
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress(disk.tell(), size)
            yield where, row
        if progress is not None:
            progress(size, size)


PROGRESS_EVERY = 2_000  # records between progress calls: cheap next to parsing them
_BLANK = object()  # what _jsonl_rows and _csv_rows yield for a line or row they skip


def _rows(path: Path, kind: str, stream: io.BufferedReader) -> Iterator[tuple[str, Any]]:
    _check_content_matches_name(path, _head(stream, 4), kind)
    if kind == "parquet":
        yield from _parquet_rows(path, stream.read())
    elif kind == "json":  # one document: parsed whole (its size is capped by max_bytes / max_document_bytes)
        yield from _json_rows(path, _decode(path, stream.read()))
    elif kind == "jsonl":
        yield from _jsonl_rows(path, _text_lines(path, stream, skip_blank_runs=True))
    else:
        lines = (text for _, text in _text_lines(path, stream))
        first = next(lines, "")
        delimiter = "\t" if kind == "tsv" else _delimiter(first)
        yield from _csv_rows(path, itertools.chain([first], lines), delimiter)


class _Capped(io.RawIOBase):
    """A byte stream that refuses to yield more than `limit` bytes, and turns a corrupt gzip
    stream into a DataError at whatever read finds it."""

    def __init__(self, inner, path: Path, limit: int | None, compressed: bool, disk):
        super().__init__()
        self.inner, self.path, self.limit, self.compressed, self.seen = inner, path, limit, compressed, 0
        self.disk = disk  # the file as stored: its position is how far reading has got

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            n = self.inner.readinto(buffer)
        except (OSError, EOFError, zlib.error) as err:
            if not self.compressed:
                raise
            raise DataError(str(self.path), f"not a valid gzip file ({err})") from None
        self.seen += n or 0
        if self.limit is not None and self.seen > self.limit:
            what = "decompresses to" if self.compressed else "holds"
            raise DataTooLarge(str(self.path), f"{what} more than {self.limit:,} bytes, the limit", limit="bytes")
        return n

    def close(self) -> None:
        self.inner.close()
        super().close()


def _open_stream(path: Path, compressed: bool, max_bytes: int | None) -> io.BufferedReader:
    raw = path.open("rb")
    inner = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
    if compressed:
        inner.close = lambda close=inner.close: (close(), raw.close())  # GzipFile leaves fileobj open
    return io.BufferedReader(_Capped(inner, path, max_bytes, compressed, raw), CHUNK)


def _head(stream: io.BufferedReader, n: int) -> bytes:
    """The first n bytes without consuming them (peek may give fewer while more are coming)."""
    head = stream.peek(n)
    return head[:n]


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
                                          f"{_encoding_guess(raw, raw[err.start:err.start + 1])}; "
                                          f"{RESAVE_HINT}") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(f"{path}:{line}", f"holds NUL bytes: UTF-16 text without a byte-order mark, or not a "
                                          f"text file at all; {RESAVE_HINT}")
    return text


def _encoding_guess(head: bytes, byte: bytes) -> str:
    if head[:4096].count(b"\x00") > 16:
        return " (it looks like UTF-16 without a byte-order mark)"
    try:
        char = byte.decode("cp1252")
    except UnicodeDecodeError:
        return ""
    return f" (it looks like Windows-1252 / Latin-1 text, where that byte is '{char}')"


def _text_lines(path: Path, stream: io.BufferedReader, skip_blank_runs: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, text with its end) for the file's lines, decoded one at a time; errors name the line.

    Lines are cut at b"\n" only: never inside a UTF-8 character, and not at U+2028 and the other
    separators that JSON strings may hold unescaped (str.splitlines would cut there).
    skip_blank_runs (JSONL, where no value spans lines): runs of blank lines are skipped a block at
    a time, at C speed; a gigabyte of newlines is otherwise a billion loop turns."""
    head = _head(stream, 4)
    for bom, encoding in BOMS:
        if head.startswith(bom):
            if encoding != "utf-8-sig":
                yield from _wide_lines(path, stream, encoding)
                return
            stream.read(len(bom))
            break
    first_block = stream.peek(4096)[:4096]
    lineno = 0
    while True:
        if skip_blank_runs:
            lineno += _skip_blank_lines(stream)
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        lineno += 1
        if len(raw) > MAX_LINE_BYTES:
            raise DataTooLarge(f"{path}:{lineno}", f"a line longer than {MAX_LINE_BYTES:,} bytes: no record is that "
                                                   f"long; is this a text file with line breaks?", limit="bytes")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{path}:{lineno}", f"not UTF-8 text: byte 0x{raw[err.start]:02x} at column {err.start + 1}"
                                                f"{_encoding_guess(first_block, raw[err.start:err.start + 1])}; "
                                                f"{RESAVE_HINT}") from None
        _refuse_nul(path, lineno, line)
        yield lineno, line


def _skip_blank_lines(stream: io.BufferedReader) -> int:
    """Consume whole blank lines at the stream's position, a buffer at a time; how many went."""
    skipped = 0
    while True:
        ahead = stream.peek(CHUNK)
        blank = len(ahead) - len(ahead.lstrip(b" \t\r\n"))
        end = ahead.rfind(b"\n", 0, blank) + 1  # only whole lines: a line's leading blanks stay with it
        if end <= 0:
            return skipped
        skipped += ahead.count(b"\n", 0, end)
        stream.read(end)


def _wide_lines(path: Path, stream: io.BufferedReader, encoding: str) -> Iterator[tuple[int, str]]:
    """UTF-16 / UTF-32 text with its byte-order mark, a line at a time."""
    text = io.TextIOWrapper(stream, encoding=encoding, newline="\n")
    lineno = 0
    try:
        for lineno, line in enumerate(text, 1):
            _refuse_nul(path, lineno, line)
            yield lineno, line
    except UnicodeDecodeError:
        raise DataError(f"{path}:{lineno + 1}", f"starts with a {encoding.upper()} byte-order mark but is not valid "
                                                f"{encoding.upper()}; {RESAVE_HINT}") from None
    finally:
        text.detach()


def _refuse_nul(path: Path, lineno: int, line: str) -> None:
    if "\x00" in line:
        raise DataError(f"{path}:{lineno}", f"holds NUL bytes: UTF-16 text without a byte-order mark, or not a "
                                            f"text file at all; {RESAVE_HINT}")


def _jsonl_rows(path: Path, lines: Iterator[tuple[int, str]]) -> Iterator[tuple[str, Any]]:
    for lineno, line in lines:
        if not line.strip():
            yield f"{path}:{lineno}", _BLANK
            continue
        try:
            yield f"{path}:{lineno}", json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{lineno}", f"not valid JSON ({err.msg} at column {err.colno})") from None
        except RecursionError:
            raise DataError(f"{path}:{lineno}", "not usable JSON: nested too deeply") from None


def _json_rows(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}", f"not valid JSON ({err.msg} at column {err.colno})") from None
    except RecursionError:
        raise DataError(str(path), "not usable JSON: nested too deeply") from None
    if isinstance(data, dict):  # {"data": [...]}, {"instances": [...]}, ... or a single record
        lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        data = lists[0] if len(lists) == 1 else [data]
    if not isinstance(data, list):
        raise DataError(str(path), f"expected a JSON array of records, got {type(data).__name__}")
    for i, row in enumerate(data):
        yield f"{path}:item {i}", row


def _delimiter(first_line: str) -> str:
    """The separator the header line uses most, outside quotes; a comma when it has none."""
    header = re.sub(r'"[^"]*"', "", first_line.split("\n", 1)[0])
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])  # ties go to the comma, listed first
    return best if counts[best] else ","


def _csv_rows(path: Path, lines: Iterator[str], delimiter: str) -> Iterator[tuple[str, Any]]:
    reader = csv.reader(lines, delimiter=delimiter)
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
            yield where, _BLANK
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
            except (json.JSONDecodeError, RecursionError):
                pass  # text that merely looks like JSON (or nests absurdly deep) stays text
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
