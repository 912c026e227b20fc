"""The docs site's reference, generated from the code so that it cannot drift.

A page of ``docs/`` says where generated text goes with a marker on a line of its own,
``<!-- gen:NAME -->`` (NAME one of ``SECTIONS``). MkDocs runs this module as a hook
(``hooks:`` in ``mkdocs.yml``): every page's markers are replaced as the site is built, from
the registries themselves (the command-line parser, the checks registry, the fault catalogue,
the targets schema, the SLO keys, the exit codes, the metric definitions). A check, fault or
flag added anywhere appears in the next build without an edit here.

Run it by hand to read one section or to write the rendered pages somewhere::

    python scripts/gen_docs.py faults          # one section, as markdown, on stdout
    python scripts/gen_docs.py --out DIR       # every page of docs/, markers replaced
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- gen:([a-z-]+) -->$", re.MULTILINE)
HELP_WIDTH = 100


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell: pipes escaped, braces as entities (a trailing
    ``{...}`` would be read as an attribute list and vanish)."""
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat.replace("{", "&#123;").replace("}", "&#125;")


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _code(ids: Iterable[str]) -> str:
    return ", ".join(f"`{i}`" for i in ids)


# -- the command line ---------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's commands, by name, in the order ``gateprobe --help`` lists them."""
    for action in parser._actions:  # argparse keeps its subcommands only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help_text(parser: argparse.ArgumentParser) -> str:
    """A parser's ``--help``, wrapped at a fixed width whatever the terminal."""
    original = parser.formatter_class
    parser.formatter_class = functools.partial(original, width=HELP_WIDTH)  # type: ignore[assignment]
    try:
        return parser.format_help()
    finally:
        parser.formatter_class = original


def cli() -> str:
    """Every command's ``--help``, as the command prints it."""
    from gateprobe.cli import build_parser

    parser = build_parser()
    out = ["## gateprobe\n", "```text\n" + _help_text(parser) + "```\n"]
    for name, sub in _subparsers(parser).items():
        out += [f"## gateprobe {name}\n", "```text\n" + _help_text(sub) + "```\n"]
    return "\n".join(out)


def cli_options() -> dict[str, list[str]]:
    """Every option string of every command (what the docs test looks for)."""
    from gateprobe.cli import build_parser

    return {name: [o for action in sub._actions for o in action.option_strings]
            for name, sub in _subparsers(build_parser()).items()}


# -- checks and faults -------------------------------------------------------------------------
def _faults_tripping(ids: Iterable[str]) -> list[str]:
    from gateprobe.reference.faults import CATALOGUE

    wanted = set(ids)
    return [f.name for f in CATALOGUE.values() if wanted & set(f.trips)]


def registered_checks() -> list[Any]:
    """The built-in checks, as the conformance suite registers them."""
    import gateprobe.protocols.conformance  # noqa: F401  (registers the built-in checks)
    from gateprobe.core import checks

    return checks.all_checks()


def finding_ids() -> dict[str, str]:
    """Every id a finding can carry -> what reports it: the checks and what they emit, the
    load verdicts (rate limits, SLOs), and what a fault declares it trips."""
    from gateprobe.commands.load.ratelimits import CHECK_IDS
    from gateprobe.commands.load.slo import KNOWN
    from gateprobe.reference.faults import CATALOGUE

    found: dict[str, str] = {}
    for check in registered_checks():
        for emitted in (check.id, *check.emits):
            found.setdefault(emitted, f"check `{check.id}`")
    for verdict in CHECK_IDS:
        found.setdefault(verdict, "`gateprobe load rate-limits`")
    for key in KNOWN:
        found.setdefault(f"slo.{key}", "a load run's SLO file")
    for fault in CATALOGUE.values():
        for tripped in fault.trips:
            found.setdefault(tripped, f"the {fault.proven_by} runner")
    return found


def checks_section() -> str:
    """The registered checks: id, severity, what it expects, what it reports, its proof."""
    rows = []
    for check in sorted(registered_checks(), key=lambda c: c.id):
        emits = [e for e in check.emits if e != check.id]
        proof = _faults_tripping((check.id, *check.emits))
        rows.append([f"`{check.id}`", str(check.severity), check.description,
                     _code(emits) or "-", _code(proof) or "(see below)"])
    return _table(["check", "severity", "what it expects", "also reports", "proven by"], rows)


def finding_ids_section() -> str:
    """Every finding id, who reports it and which faults of the reference trip it."""
    rows = [[f"`{i}`", source, _code(_faults_tripping([i])) or "-"]
            for i, source in sorted(finding_ids().items())]
    return _table(["finding id", "reported by", "tripped by the faults"], rows)


def faults_section() -> str:
    """The reference gateway's faults, grouped by the runner that proves them."""
    from gateprobe.reference.faults import CATALOGUE, endpoints_text

    kinds: dict[str, list[Any]] = {}
    for fault in CATALOGUE.values():
        kinds.setdefault(fault.proven_by, []).append(fault)
    out = []
    for kind, members in kinds.items():
        out.append(f"### {kind} ({len(members)})\n")
        out.append(_table(["fault", "what it breaks", "trips", "on"], [
            [f"`{f.name}`", f.description, _code(f.trips), endpoints_text(f)]
            for f in members]))
    return "\n".join(out)


# -- files a user writes -----------------------------------------------------------------------
def _schema_type(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return "list of " + _schema_type(schema.get("items", {}))
    if kind == "object":
        props = schema.get("properties")
        if props:
            return "mapping: " + ", ".join(f"`{p}`" for p in props)
        extra = schema.get("additionalProperties")
        return "mapping of name to " + (_schema_type(extra) if isinstance(extra, dict)
                                        else "anything")
    if schema.get("pattern") == r"^[A-Za-z_][A-Za-z0-9_]*$":
        return "the name of an environment variable"
    return kind


def targets_section() -> str:
    """The keys of a target entry, from the schema the file is validated against."""
    from gateprobe.core.targets import TARGETS_SCHEMA

    entry: Mapping[str, Any] = TARGETS_SCHEMA["properties"]["targets"][  # type: ignore[index]
        "additionalProperties"]
    required = set(entry.get("required", ()))
    rows = [[f"`{key}`", "yes" if key in required else "", _schema_type(schema)]
            for key, schema in entry["properties"].items()]
    nested = [[f"`{key}.{sub}`", "", _schema_type(s)]
              for key, schema in entry["properties"].items()
              for sub, s in schema.get("properties", {}).items() if schema.get("type") == "object"
              and key != "models"]
    return _table(["key", "required", "value"], rows + nested)


def targets_example() -> str:
    """``targets.example.yaml`` as shipped, comments and all."""
    return "```yaml\n" + (ROOT / "targets.example.yaml").read_text(encoding="utf-8") + "```\n"


def gate_example() -> str:
    """``docs/gate.example.yaml`` as shipped."""
    return "```yaml\n" + (ROOT / "docs" / "gate.example.yaml").read_text(encoding="utf-8") + \
        "```\n"


def ci_example() -> str:
    """``docs/ci-example.yml`` as shipped."""
    return "```yaml\n" + (ROOT / "docs" / "ci-example.yml").read_text(encoding="utf-8") + \
        "```\n"


def architecture() -> str:
    """``ARCHITECTURE.md``, the layers and the import rule the tests enforce (its title
    dropped: the page has its own)."""
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    return text.split("\n", 1)[1].strip() + "\n"


def slo_section() -> str:
    """Every key an SLO file may hold (``gateprobe.commands.load.slo.KNOWN``)."""
    from gateprobe.commands.load.slo import KNOWN

    def meaning(key: str) -> str:
        match = re.fullmatch(r"(\w+?)_p(\d+)_ms", key)
        if match:
            return f"upper bound on the p{match.group(2)} of {match.group(1)}, in ms"
        return "lower bound" if key.endswith("_min") else "upper bound" \
            if key.endswith("_max") else "a fraction of the limit"

    return _table(["key", "kind"], [[f"`{k}`", meaning(k)] for k in KNOWN])


def slo_doc() -> str:
    """The SLO module's own account of its keys."""
    from gateprobe.commands.load import slo

    return inspect.cleandoc(slo.__doc__ or "").replace("``", "`") + "\n"


def slo_file() -> str:
    """``load/slo.yaml``, the shipped defaults."""
    return "```yaml\n" + (ROOT / "load" / "slo.yaml").read_text(encoding="utf-8") + "```\n"


def exit_codes() -> str:
    """``gateprobe.core.errors.EXIT_CODES``."""
    from gateprobe.core.errors import exit_codes_markdown

    return exit_codes_markdown() + "\n"


# -- metrics -----------------------------------------------------------------------------------
def attribute_docs(path: Path, class_name: str) -> dict[str, str]:
    """A class's attribute docstrings (the string under each annotated field), read from its
    source: Python keeps no other record of them."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == class_name)
    docs: dict[str, str] = {}
    for field, doc in zip(cls.body, cls.body[1:], strict=False):
        if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name) and \
                isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
            docs[field.target.id] = " ".join(str(doc.value.value).split())
    return docs


def metrics_section() -> str:
    """What every field of a stream's measurement means (``gateprobe.core.metrics``)."""
    from gateprobe.core import metrics

    documented = attribute_docs(Path(inspect.getfile(metrics)), "StreamMetrics")
    fields = {name: documented.get(name, "") for name in metrics.StreamMetrics.__dataclass_fields__}
    for name in ("tpot_ms", "tokens_per_s"):
        prop = getattr(metrics.StreamMetrics, name)
        fields[name] = " ".join((prop.__doc__ or "").split())
    rows = [[f"`{name}`", doc.replace("``", "`")] for name, doc in fields.items()]
    intro = inspect.cleandoc(metrics.__doc__ or "").replace("``", "`")
    class_doc = inspect.cleandoc(metrics.StreamMetrics.__doc__ or "").replace("``", "`")
    return f"{intro}\n\n{class_doc}\n\n" + _table(["field", "meaning"], rows)


SECTIONS: dict[str, Callable[[], str]] = {
    "cli": cli, "checks": checks_section, "finding-ids": finding_ids_section,
    "faults": faults_section, "targets": targets_section,
    "targets-example": targets_example, "slo": slo_section, "slo-doc": slo_doc,
    "slo-file": slo_file, "exit-codes": exit_codes, "metrics": metrics_section,
    "gate-example": gate_example, "architecture": architecture, "ci-example": ci_example,
}
"""Every marker a page may hold, and what replaces it."""


def render(markdown: str) -> str:
    """The page with each marker replaced by its section (an unknown marker is an error)."""
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in SECTIONS:
            raise KeyError(f"unknown docs marker gen:{name}; known: {', '.join(SECTIONS)}")
        return SECTIONS[name]().rstrip("\n")

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs hook: fill the page's markers as the site is built."""
    return render(markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("section", nargs="?", choices=[*SECTIONS, "options"])
    parser.add_argument("--out", type=Path, help="write every rendered page of docs/ here")
    args = parser.parse_args(argv)
    if args.section == "options":
        sys.stdout.write(json.dumps(cli_options(), indent=2) + "\n")
    elif args.section:
        sys.stdout.write(SECTIONS[args.section]())
    if args.out:
        for page in (ROOT / "docs").rglob("*.md"):
            target = args.out / page.relative_to(ROOT / "docs")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render(page.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
