"""The syntax tree of a rule query: what `query` builds and `match` evaluates.

Plain frozen dataclasses; `str()` of a node writes it back in the query language (for reports).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Bool", "Meta", "Near", "Node", "Not", "Term", "leaves"]


@dataclass(frozen=True, slots=True)
class Term:
    """A word, prefix or phrase; `text` is how the user wrote it (reported in matches)."""

    text: str
    words: tuple[str, ...]
    prefix: bool
    title_only: bool
    pattern: str = ""  # what the automaton looks for: " w1 w2 " (no trailing pad for a prefix)

    def __post_init__(self) -> None:
        pattern = " " + " ".join(self.words) + ("" if self.prefix else " ")
        object.__setattr__(self, "pattern", pattern)

    def __str__(self) -> str:
        return ("title:" if self.title_only else "") + self.text


@dataclass(frozen=True, slots=True)
class Meta:
    """A `source:` or `lang:` test on the article's metadata."""

    field: str
    value: str
    prefix: bool

    def __str__(self) -> str:
        value = self.value + ("*" if self.prefix else "")
        return f'{self.field}:"{value}"' if " " in value else f"{self.field}:{value}"


@dataclass(frozen=True, slots=True)
class Not:
    child: Node

    def __str__(self) -> str:
        return f"NOT {self.child}"


@dataclass(frozen=True, slots=True)
class Bool:
    op: str  # "AND" or "OR"
    children: tuple[Node, ...]

    def __str__(self) -> str:
        return "(" + f" {self.op} ".join(map(str, self.children)) + ")"


@dataclass(frozen=True, slots=True)
class Near:
    left: tuple[Term, ...]
    right: tuple[Term, ...]
    distance: int

    def __str__(self) -> str:
        def side(ts: tuple[Term, ...]) -> str:
            return str(ts[0]) if len(ts) == 1 else "(" + " OR ".join(map(str, ts)) + ")"

        return f"({side(self.left)} NEAR/{self.distance} {side(self.right)})"


Node = Term | Meta | Not | Bool | Near


def leaves(node: Node, negated: bool = False) -> Iterator[tuple[Term | Meta, bool]]:
    """Every term and metadata test in query order, with whether it sits under a NOT."""
    if isinstance(node, Term | Meta):
        yield node, negated
    elif isinstance(node, Not):
        yield from leaves(node.child, True)
    elif isinstance(node, Bool):
        for child in node.children:
            yield from leaves(child, negated)
    elif isinstance(node, Near):
        yield from ((t, negated) for t in node.left + node.right)
