"""The trace as a document for a compliance ticket: markdown (with a mermaid lineage) and self-contained HTML.

Pure: the :class:`~ml_platform.trace.record.TraceRecord` in, text out. The HTML has no script and no
external resource: its lineage picture is an inline SVG of the nodes on the path (sources, features, the
model input, the signal) and of the model version and the ledger entry that served it.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path

from ml_platform.io.atomic import LocalFileSystem
from ml_platform.trace.record import StoredVersion, TraceRecord, float_hex

__all__ = ["lineage_graph", "lineage_svg", "render_html", "render_markdown", "trace_summary", "write_trace_report"]


def _short(value: str | None, digits: int = 16) -> str:
    if not value:
        return "-"
    algorithm, sep, digest = value.partition(":")
    return f"{algorithm}:{digest[:digits]}" if sep else value[:digits]


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value!r} ({float_hex(value)})"
    return "null" if value is None else str(value)


def _instrument(record: TraceRecord) -> str:
    return ", ".join(str(v) for v in record.signal.instrument.values())


def lineage_graph(record: TraceRecord) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Nodes (store keys, then the model version and its ledger entry) and edges of the lineage picture."""
    model = f"model {record.model.name} v{record.model.version}"
    entry = f"ledger entry {record.champion.seq} ({record.champion.kind})"
    nodes = [*reversed(record.nodes()), model, entry]
    edges = [*record.edges(), (model, record.signal_version.key), (entry, model)]
    if record.training_set is not None:
        nodes.insert(len(nodes) - 2, record.training_set.key)
        edges.append((record.training_set.key, model))
    return tuple(dict.fromkeys(nodes)), tuple(dict.fromkeys(edges))


def _mermaid(record: TraceRecord) -> list[str]:
    nodes, edges = lineage_graph(record)
    ident = {name: f"n{i}" for i, name in enumerate(nodes)}
    lines = ["```mermaid", "graph LR"]
    lines += [f'  {ident[n]}["{n}"]' for n in nodes]
    lines += [f"  {ident[a]} --> {ident[b]}" for a, b in edges if a in ident and b in ident]
    lines.append("```")
    return lines


def _table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return out


def _node_rows(record: TraceRecord) -> list[tuple[object, ...]]:
    """One row per node on the path: its version of the day (or nearest before), and how many it read."""
    rows = []
    for key in record.nodes():
        versions = record.versions_of(key)
        day = [v for v in versions if v.partition == record.signal_version.partition]
        shown = day[0] if day else versions[-1]
        partitions = f"{shown.partition}" + (f" (+{len(versions) - 1} more)" if len(versions) > 1 else "")
        rows.append((key, shown.role, partitions, f"`{shown.data_hash}`", f"`{_short(shown.code_hash)}`",
                     f"`{_short(shown.graph_hash)}`", f"`{shown.object_path}`"))
    return rows


def _version_rows(versions: Iterable[StoredVersion]) -> list[tuple[object, ...]]:
    return [(v.key, v.partition or "-", v.role, f"`{v.data_hash}`", f"`{v.code_hash or '-'}`",
             f"`{v.graph_hash or '-'}`", f"`{v.object_path}`") for v in versions]


def trace_summary(record: TraceRecord) -> list[str]:
    """A few lines for a terminal: the signal, the model, the champion entry, the recomputation."""
    s, m, c = record.signal, record.model, record.champion
    lines = [
        (f"signal    {s.model_name} v{s.model_version} {_instrument(record)} {record.day}: score {_number(s.score)} "
        f"weight {_number(s.weight)}"),
        (f"stored    {record.signal_version.label} {record.signal_version.data_hash} "
        f"(written {record.signal_version.written_at}, commit {record.signal_version.git_commit or '-'}, "
        f"image {record.signal_version.image_digest or '-'})"),
        f"champion  ledger entry {c.seq} ({c.kind}) by {c.actor}"
        + (f", approved by {c.approver}" if c.approver else "") + f", {c.recorded_at}: {c.reason}",
        (f"model     sha256 {m.model_sha256}, trained {m.training_window}, validated {m.validation_window}, "
        f"commit {m.git_commit or '-'}"),
        (f"features  {len(record.features)} versions over {len(record.nodes()) - 1} nodes, "
        f"{len(record.sources)} source versions, all re-read by their recorded hash"),
    ]
    if record.recompute is not None:
        r = record.recompute
        lines.append(f"recompute {'bit-identical' if r.equal else 'DIFFERS'} (score {r.score_equal}, weight "
                     f"{r.weight_equal}, partition {r.partition_equal}); full proof: {r.reproduce}")
    lines += [f"note      {n}" for n in record.notes]
    return lines


def render_markdown(record: TraceRecord) -> str:
    """The trace as markdown, ready to paste into a ticket."""
    s, m, c, f = record.signal, record.model, record.champion, record.feature_row
    out = [f"# Trace of the {s.model_name} v{s.model_version} signal for {_instrument(record)} on {record.day}", "",
           (f"Traced at {record.traced_at} from `{record.target}`; every version below was read back by the data "
           "hash recorded when the signal was written, not by today's head."), "", "## Signal", ""]
    out += _table(("field", "value"), [
        ("score", _number(s.score)), ("weight", _number(s.weight)),
        ("instrument", ", ".join(f"{k}={v}" for k, v in s.instrument.items())), ("time", s.time),
        ("stored in", f"{record.signal_version.label}"), ("data hash", f"`{record.signal_version.data_hash}`"),
        ("object", f"`{record.signal_version.object_path}`"), ("written at", record.signal_version.written_at),
        ("run", record.signal_version.run_id or "-"),
        ("other versions", "; ".join(f"{w} `{h}`" for w, h in record.other_versions) or "none"),
    ])
    out += ["", "## Champion of record at the time", ""]
    out += _table(("field", "value"), [
        ("ledger entry", (f"{c.seq} ({c.kind}{', override' if c.override else ''}): {c.from_version or '-'} -> "
                         f"{c.to_version}")),
        ("who", c.actor + (f" (approved by {c.approver})" if c.approver else "")), ("when", c.recorded_at),
        ("in force until", c.in_force_until or "still the champion of record"), ("why", c.reason),
        ("entry hash", f"`{c.entry_hash}` (chain verified: {c.chain_verified})"),
        ("report", "none linked" if c.report is None else f"`{c.report.ref}` ({c.report.sha256}, verified)"),
        ("rationale", "none linked" if c.rationale is None else f"`{c.rationale.ref}` ({c.rationale.sha256}, "
                                                                 "verified)"),
    ])
    if c.note:
        out += ["", f"> {c.note}"]
    if c.rationale is not None and c.rationale.text:
        out += ["", "Rationale, as recorded:", ""] + [f"> {line}" for line in c.rationale.text.splitlines()]
    out += ["", "## Model version and deploy contract", ""]
    out += _table(("field", "value"), [
        ("model", f"{m.name} version {m.version} ({m.model_format})"), ("model sha256", f"`{m.model_sha256}`"),
        ("contract sha256", f"`{m.contract_sha256}`"), ("feature graph hash", f"`{m.feature_graph_hash}`"),
        ("inputs", ", ".join(m.input_columns)), ("training window", m.training_window),
        ("validation window", m.validation_window), ("training set data hash", f"`{m.training_set_data_hash}`"),
        ("training set", "-" if record.training_set is None else
         f"{record.training_set.key} window {record.training_set.window}, `{record.training_set.object_path}`"),
        ("seeds", ", ".join(f"{k}={v}" for k, v in sorted(m.seeds.items())) or "-"),
        ("environment lock hash", f"`{m.environment_hash}`"), ("uv.lock hash", f"`{m.uv_lock_hash or '-'}`"),
        ("environment", ", ".join(f"{k} {v}" for k, v in m.environment.items())),
        ("git commit", f"`{m.git_commit or '-'}`" + (" (dirty tree)" if m.git_dirty else "")),
        ("signal written at commit", f"`{record.signal_version.git_commit or '-'}`"),
        ("signal written by image", f"`{record.signal_version.image_digest or '-'}`"),
        ("trained by", f"{m.trained_by} at {m.created_at}"),
    ])
    out += ["", f"## Feature row scored ({f.key} partition {f.partition}, `{f.data_hash}`)", ""]
    types = dict(f.types)
    out += _table(("column", "type", "value"), [(col, types.get(col, "?"), _number(v)) for col, v in f.values])
    out += ["", "## Lineage", ""] + _mermaid(record) + ["", "## Nodes on the path", ""]
    out += _table(("node", "role", "partition", "data hash", "code hash", "graph hash", "object"), _node_rows(record))
    out += ["", "## Sources (market data as delivered)", ""]
    out += _table(("node", "partition", "data hash", "object"),
                  [(v.key, v.partition or "-", f"`{v.data_hash}`", f"`{v.object_path}`") for v in record.sources])
    if record.recompute is not None:
        r = record.recompute
        out += ["", "## Recomputation in this process", ""]
        out += _table(("", "stored", "recomputed", "bit for bit"), [
            ("score", _number(s.score), _number(r.score), r.score_equal),
            ("weight", _number(s.weight), _number(r.weight), r.weight_equal),
            ("partition data hash", f"`{record.signal_version.data_hash}`", f"`{r.partition_data_hash}`",
             r.partition_equal)])
        out += ["", f"Environment differences from training: {len(r.environment_differences)}"
                + ("" if not r.environment_differences else " (" + "; ".join(r.environment_differences[:5])
                   + (" ..." if len(r.environment_differences) > 5 else "") + ")"),
                "", f"Full proof (the model rebuilt from its recorded code, lock and data): `{r.reproduce}`"]
    if record.notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in record.notes]
    out += ["", "## Every version on the path", ""]
    out += _table(("node", "partition", "role", "data hash", "code hash", "graph hash", "object"),
                  _version_rows([record.signal_version, *record.features, *record.sources]))
    return "\n".join(out) + "\n"


def _layers(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layer of every node (sources at 0)."""
    layer = dict.fromkeys(nodes, 0)
    for _ in nodes:  # a DAG settles in at most len(nodes) sweeps
        changed = False
        for a, b in edges:
            if a in layer and b in layer and layer[b] < layer[a] + 1:
                layer[b] = layer[a] + 1
                changed = True
        if not changed:
            break
    return layer


def lineage_svg(record: TraceRecord) -> str:
    """The lineage picture as an inline SVG (boxes by layer, arrows upstream to downstream)."""
    nodes, edges = lineage_graph(record)
    layer = _layers(nodes, edges)
    columns: dict[int, list[str]] = {}
    for node in nodes:
        columns.setdefault(layer[node], []).append(node)
    width = max(120, 7 * max(len(n) for n in nodes) + 20)
    gap_x, height, gap_y = 60, 34, 18
    position = {}
    for col, members in columns.items():
        for row, node in enumerate(members):
            position[node] = (20 + col * (width + gap_x), 20 + row * (height + gap_y))
    total_w = 40 + (max(columns) + 1) * (width + gap_x) - gap_x
    total_h = 40 + max(len(m) for m in columns.values()) * (height + gap_y) - gap_y
    roles = {record.signal_version.key: "#fde68a", **{s.key: "#bfdbfe" for s in record.sources}}
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{total_h}" '
             f'viewBox="0 0 {total_w} {total_h}" font-family="monospace" font-size="12">'),
             ('<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" orient="auto">'
             '<path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>')]
    for a, b in edges:
        if a in position and b in position:
            (x1, y1), (x2, y2) = position[a], position[b]
            parts.append(f'<line x1="{x1 + width}" y1="{y1 + height / 2}" x2="{x2}" y2="{y2 + height / 2}" '
                         'stroke="#555" marker-end="url(#arrow)"/>')
    for node in nodes:
        x, y = position[node]
        fill = roles.get(node, "#e5e7eb" if not node.startswith(("model ", "ledger ")) else "#bbf7d0")
        parts.append(f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="6" fill="{fill}" stroke="#333"/>')
        parts.append(f'<text x="{x + 10}" y="{y + height / 2 + 4}">{html.escape(node)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _html_table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v).strip('`'))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def render_html(record: TraceRecord) -> str:
    """The trace as one self-contained HTML page (inline SVG lineage, no script, no external resource)."""
    markdown = render_markdown(record).splitlines()
    sections: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            sections.append(_html_table(table[0], table[2:]))
            table.clear()

    in_mermaid = False
    for line in markdown:
        if line.startswith("```mermaid"):
            in_mermaid = True
            flush()
            sections.append(f'<div class="lineage">{lineage_svg(record)}</div>')
            continue
        if in_mermaid:
            in_mermaid = not line.startswith("```")
            continue
        if line.startswith("|"):
            table.append([c.strip().replace("\\|", "|") for c in line.strip().strip("|").split(" | ")])
            continue
        flush()
        if line.startswith("# "):
            sections.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            sections.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("> "):
            sections.append(f"<blockquote>{html.escape(line[2:])}</blockquote>")
        elif line.startswith("- "):
            sections.append(f"<ul><li>{html.escape(line[2:])}</li></ul>")
        elif line.strip():
            sections.append(f"<p>{html.escape(line.replace('`', ''))}</p>")
    flush()
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
             "margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left;"
             "vertical-align:top;word-break:break-all}th{background:#f3f4f6}blockquote{border-left:3px solid #999;"
             "margin:.2em 0;padding-left:.8em;color:#333}.lineage{overflow-x:auto}")
    title = html.escape(markdown[0].removeprefix("# "))
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title><style>{style}</style>'
            f"</head><body>{''.join(sections)}</body></html>\n")


def write_trace_report(record: TraceRecord, out: str | Path) -> dict[str, Path]:
    """Write ``trace.md``, ``trace.html`` and ``trace.json`` of ``record`` into ``out``; their paths."""
    folder = LocalFileSystem(Path(out))  # each file whole or not at all: temporary, fsync, rename
    written = {}
    for kind, name, text in (("markdown", "trace.md", render_markdown(record)), ("html", "trace.html",
                             render_html(record)), ("json", "trace.json", record.to_json() + "\n")):
        folder.write_bytes(name, text.encode("utf-8"))
        written[kind] = folder.root / name
    return written
