"""Markdown tables and YAML front matter, as the model card writes them (no dependency: the card is plain text)."""

from __future__ import annotations

import json
import re

# Strings the front matter writes unquoted: start with a letter, no YAML indicator (quoted otherwise, as JSON).
PLAIN = re.compile(r"[A-Za-z_][\w .,:/@+()'-]*(?<![ :])")
YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


def table(headers: list[str], rows: list[list[str]], center: bool = False) -> str:
    """A markdown table with padded columns, left-aligned (or centred, as sentence-transformers' log table)."""
    widths = [max(3, len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]

    def line(cells) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    rule = "|" + "|".join(":" + "-" * w + ":" if center else ":" + "-" * (w + 1) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def html_list(data: dict) -> str:
    return "<ul><li>" + "</li><li>".join(f"{k}: {v}" for k, v in data.items()) + "</li></ul>" if data else ""


def cell(value) -> str:
    text = str(value)
    text = text[:1000] + "..." if len(text) > 1000 else text
    return text.replace("|", "\\|").replace("\n", " ")


def indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())


def join_words(items: list[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def number(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def yaml_lines(value, depth: int = 0) -> list[str]:
    """YAML lines for dicts, lists and scalars, ``depth`` spaces in (strings quoted when not plain, see yaml_scalar)."""
    pad = " " * depth
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                # a dict's keys go two spaces in; a list's dashes sit under its key
                lines += yaml_lines(item, depth + 2 if isinstance(item, dict) else depth)
            else:
                lines.append(f"{pad}{key}: {yaml_scalar(item)}")
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            nested = isinstance(item, (dict, list)) and item
            sub = yaml_lines(item, depth + 2) if nested else [pad + "  " + yaml_scalar(item)]
            lines.append(f"{pad}- {sub[0][depth + 2 :]}")  # the item's first line goes after the dash
            lines += sub[1:]
        return lines
    return [pad + yaml_scalar(value)]


def yaml_scalar(value) -> str:
    """A scalar as YAML: plain when nothing in it means something to YAML, else a JSON string (valid YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    if isinstance(value, (int, float)):
        return repr(value) if value == value and abs(value) != float("inf") else json.dumps(str(value))
    if PLAIN.fullmatch(value) and value.lower() not in YAML_WORDS and ": " not in value and " #" not in value:
        return value
    return json.dumps(value, ensure_ascii=False)
