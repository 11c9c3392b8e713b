"""Terminal tables that stay readable at any width, a pipe's 80 columns included.

Every command that prints a table (compare, bench, estimate, doctor, models, eval, export,
devices) builds it here, so one set of rules holds:

- Long free text (a row's reason, error, note, a verdict's detail) leaves the table as a numbered
  footnote below it; the cell keeps a short word and the marker, ``unavailable [1]``. (A TEXT
  column's cells stay inline when the whole table fits unwrapped, e.g. on a wide terminal.)
- A column is never narrower than its longest word, so rich wraps cells only at spaces: no cell
  is broken mid-word (``unavailab`` / ``le``).
- A table whose columns cannot all fit is split into parts, each repeating the key columns
  (candidate, backend ...), rather than squeezed until words break.
- Output that is not a terminal (a pipe, a file, CI logs) is laid out at ``$COLUMNS`` or 80
  columns (``output_width``), the width a log viewer, ``less`` or an e-mail shows unwrapped.

Column widths are computed here and handed to rich as fixed widths: rich's own collapse shrinks
the widest columns first and will go below a column's longest word, which is how words were split.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable

NUMBER, LABEL, TEXT = "number", "label", "text"
FOOTNOTE_OVER = 24  # a TEXT cell longer than this becomes a footnote
_PER_COLUMN = 3  # rich's default padding (1 + 1) and one vertical rule
_EDGE = 1  # the table's closing rule


def output_width(console: Any = None) -> int:
    """The width to lay tables out at: the terminal's, else ``$COLUMNS``, else 80."""
    if console is not None and console.is_terminal:
        return console.width
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 20 else 80


def table_console(stderr: bool = False):
    """A rich console for printing tables: the terminal as it is, or ``output_width()`` columns when
    stdout (stderr) is a pipe or file — rich alone would take a terminal width from the other stream."""
    from rich.console import Console

    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=output_width())


@dataclass(frozen=True)
class Col:
    """A column: ``kind`` NUMBER (never wrapped), LABEL (wrapped at spaces only) or TEXT (free text:
    a cell longer than ``FOOTNOTE_OVER`` goes to a footnote)."""

    header: str
    kind: str = LABEL
    justify: str | None = None  # default: right for numbers, left otherwise


@dataclass(frozen=True)
class Footnoted:
    """A cell that shows ``short`` and sends each of ``details`` to a numbered footnote."""

    short: str
    details: tuple[str, ...]

    @classmethod
    def of(cls, short: str, *details: str | None) -> "Footnoted | str":
        kept = tuple(d for d in details if isinstance(d, str) and d.strip())
        return cls(short, kept) if kept else short


@dataclass
class Footnotes:
    """Numbered notes shared by the tables of one command's output (numbering runs on across them)."""

    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> str:
        self.lines.append(" ".join(text.split()))
        return f"[{len(self.lines)}]"

    def __rich_console__(self, console: Any, options: Any):
        """Each note wrapped at spaces (a word longer than the line, e.g. a path, folds: no character lost)."""
        from rich.text import Text

        for number, line in enumerate(self.lines, 1):
            yield Text(f"[{number}] {line}", style="dim")


@dataclass
class _Row:
    cells: list[Any]
    style: str | None


class FitTable:
    """A table laid out to the width it is printed at, without breaking words; ``console.print`` it.

    Cells are plain strings (rich markup allowed: escape data), ``rich.text.Text``, or ``Footnoted``.
    ``keys`` is how many leading columns identify a row and are repeated in every part of a split.
    The footnotes follow the table, unless ``footnotes`` is given: then they are added there, for the
    caller to print after several tables.
    """

    def __init__(self, columns: Iterable[Col | str], title: str | None = None, keys: int = 1,
                 footnotes: Footnotes | None = None, **table_kwargs: Any) -> None:
        self.columns = [c if isinstance(c, Col) else Col(c) for c in columns]
        self.title, self.keys, self.table_kwargs = title, keys, table_kwargs
        self.footnotes, self._own_notes = footnotes or Footnotes(), footnotes is None
        self.rows: list[_Row] = []

    def add_row(self, *cells: Any, style: str | None = None) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"row of {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(_Row(list(cells), style))

    def __rich_console__(self, console: Any, options: Any):
        from rich.text import Text

        notes = Footnotes() if self._own_notes else self.footnotes
        inline = self._fits_unwrapped(options.max_width)  # free text stays in its cell when everything fits
        rows = [[self._cell(col, cell, notes, inline) for col, cell in zip(self.columns, row.cells)] for row in self.rows]
        parts = self._parts(rows, options.max_width)
        for n, (indices, widths) in enumerate(parts):
            if self.title:
                suffix = "" if len(parts) == 1 else f" ({n + 1}/{len(parts)})"
                yield Text.from_markup(self.title + suffix, style="bold")
            yield self._table(indices, widths, rows)
        if self._own_notes:
            yield notes

    # --- layout -----------------------------------------------------------------------------

    def _fits_unwrapped(self, width: int) -> bool:
        rows = [[self._cell(col, cell, Footnotes(), True) for col, cell in zip(self.columns, row.cells)] for row in self.rows]
        return sum(self._measure(i, rows)[1] for i in range(len(self.columns))) + _PER_COLUMN * len(self.columns) + _EDGE <= width

    def _cell(self, col: Col, cell: Any, notes: Footnotes, inline: bool = False):
        from rich.text import Text

        if isinstance(cell, Footnoted):
            marks = " ".join(notes.add(d) for d in cell.details)
            text = Text.from_markup(cell.short) + Text(f" {marks}" if cell.short else marks)
            text.no_wrap = " " not in cell.short  # "unavailable [2]" stays on one line
            return text
        text = cell if isinstance(cell, Text) else Text.from_markup("" if cell is None else str(cell))
        if col.kind == TEXT and text.cell_len > FOOTNOTE_OVER and not inline:
            return Text(notes.add(text.plain))
        return text

    def _measure(self, index: int, rows: list[list[Any]]) -> tuple[int, int]:
        """(narrowest width that breaks no word, width that wraps nothing) of one column."""
        col = self.columns[index]
        texts = [row[index] for row in rows]
        lines = [line for t in texts for line in t.plain.splitlines() or [""]] + col.header.splitlines()
        widest = max(_cell_len(line) for line in lines)
        if col.kind == NUMBER:
            return widest, widest
        whole = [t.plain for t in texts if t.no_wrap]  # cells kept on one line count as one word
        words = [w for line in lines for w in line.split()] + whole or [""]
        return max(_cell_len(w) for w in words), widest

    def _parts(self, rows: list[list[Any]], width: int) -> list[tuple[list[int], list[int]]]:
        sizes = [self._measure(i, rows) for i in range(len(self.columns))]
        keys = list(range(min(self.keys, len(self.columns))))
        for i in keys:  # the key columns name the row in every part: unwrapped, unless that takes a third of the line
            lo, hi = sizes[i]
            sizes[i] = (min(hi, max(lo, width // 3 // len(keys))), hi)

        def cost(indices: list[int], which: int) -> int:
            return sum(sizes[i][which] for i in indices) + _PER_COLUMN * len(indices) + _EDGE

        everything = list(range(len(self.columns)))
        if cost(everything, 0) <= width:  # one table, wrapping some cells at spaces
            parts = [everything]
        else:  # parts of unwrapped columns; a column too wide for that gets a part of its own, wrapped
            parts = []
            for i in everything[len(keys):]:
                if parts and cost(parts[-1] + [i], 1) <= width:
                    parts[-1].append(i)
                else:
                    parts.append(keys + [i])
            parts = parts or [keys]
        return [(indices, _spread([sizes[i] for i in indices], width - _PER_COLUMN * len(indices) - _EDGE))
                for indices in parts]

    def _table(self, indices: list[int], widths: list[int], rows: list[list[Any]]):
        """One part as a rich Table with the computed fixed widths.

        NUMBER columns are ``no_wrap=True``: a number cut over two lines reads as two numbers. Their
        width is never below their widest cell, so nothing is cut either; should a screen be narrower
        than one key column plus one number, rich shrinks every column and the number ends in "…"
        (``overflow="ellipsis"``): visibly incomplete, never silently another number. Other columns
        wrap at spaces, and their ``overflow="fold"`` is reached only by a single word wider than the
        whole screen (a long path): folding keeps every character, where "ellipsis" would hide some.
        """
        from rich.table import Table

        table = Table(header_style="bold", expand=False, **self.table_kwargs)
        for i, w in zip(indices, widths):
            col = self.columns[i]
            table.add_column(col.header, width=max(1, w), justify=col.justify or ("right" if col.kind == NUMBER else "left"),
                             no_wrap=col.kind == NUMBER, overflow="ellipsis" if col.kind == NUMBER else "fold")
        for row, src in zip(rows, self.rows):
            table.add_row(*(row[i] for i in indices), style=src.style)
        return table


def _cell_len(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def _spread(sizes: list[tuple[int, int]], room: int) -> list[int]:
    """Column widths: each at least its narrowest; the spare ``room`` goes first to the columns closest
    to fitting unwrapped (a short label wrapped over two lines reads worst), the rest to the next."""
    widths = [lo for lo, _ in sizes]
    if sum(hi for _, hi in sizes) <= room:
        return [hi for _, hi in sizes]
    spare = room - sum(widths)
    for i in sorted(range(len(sizes)), key=lambda i: sizes[i][1] - sizes[i][0]):
        if spare <= 0:
            break
        grow = min(spare, sizes[i][1] - widths[i])
        widths[i] += grow
        spare -= grow
    return widths
