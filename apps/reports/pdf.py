"""The report for people: a PDF of tables rendered with reportlab from evidence.json.

Everything printed comes from the evidence dictionary, so the PDF can never say something the JSON
evidence does not. Long lists are cut to what a reader can use (``MAX_ROWS``) with the total stated;
the JSON evidence holds them all.
"""

from __future__ import annotations

import io
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

MAX_ROWS = 40  # rows per table in the PDF; evidence.json lists everything

_STYLES = getSampleStyleSheet()
_BODY = _STYLES["BodyText"]
_CELL = ParagraphStyle("cell", parent=_BODY, fontSize=7.5, leading=9)
_HEAD = ParagraphStyle("head", parent=_CELL, fontName="Helvetica-Bold", textColor=colors.white)
_GRID = TableStyle(
    [
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#1f3b5c")),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9aa7b4")),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#eef2f6")]),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
)


def _table(
    headers: list[str], rows: list[list[Any]], widths: list[float], total: int | None = None
) -> list[Any]:
    """A table with a header row; an empty one says so instead of printing a bare header."""
    if not rows:
        return [Paragraph("<i>none in this period</i>", _BODY), Spacer(1, 4 * mm)]
    shown = rows[:MAX_ROWS]
    data = [[Paragraph(h, _HEAD) for h in headers]]
    data += [[Paragraph(_text(cell), _CELL) for cell in row] for row in shown]
    table = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(_GRID)
    flow: list[Any] = [table]
    count = total if total is not None else len(rows)
    if count > len(shown):
        flow.append(Paragraph(f"<i>{len(shown)} of {count} rows shown; evidence.json lists all.</i>", _CELL))
    flow.append(Spacer(1, 5 * mm))
    return flow


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    text = str(value)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _reverified(findings: dict[str, Any]) -> str:
    through = findings["reverified_through_seq"]
    if through is None:
        return "the async audit has not re-verified this log yet"
    whole = "the whole period" if findings["period_fully_reverified"] else "not all of the period yet"
    return f"re-verified through seq {through} ({whole})"


def _h(text: str) -> Paragraph:
    return Paragraph(text, _STYLES["Heading2"])


def _summary(meta: dict[str, Any], ev: dict[str, Any]) -> list[Any]:
    d, cp = ev["decisions"], ev["checkpoint"]
    rows = [
        ["Tenant", f"{meta['tenant_name']} ({meta['tenant']})"],
        ["Framework", meta["framework_title"]],
        ["Period (UTC)", f"{ev['period']['start']} to {ev['period']['end']} (end excluded)"],
        ["Report", f"#{meta['report_id']}, generated {meta['generated_at']}"],
        ["Decisions", f"{d['total']}"],
        [
            "Audit entries in period",
            f"{ev['log']['entries_in_period']} (seq {ev['log']['first_seq']} to {ev['log']['last_seq']})",
        ],
        [
            "Audit chain",
            "verifies"
            if ev["chain_verification"]["ok"]
            else "BROKEN: " + "; ".join(ev["chain_verification"]["problems"]),
        ],
        ["Checkpoint covered", f"size {cp['tree_size']}, root {cp['root_hash']}"],
        ["Checkpoint anchored", (cp["anchor"] or {}).get("reference", "not anchored")],
        [
            "Previous report's checkpoint",
            f"size {cp['previous_tree_size']} (consistency proof included)"
            if cp["previous_tree_size"]
            else "none: first report",
        ],
    ]
    table = Table(
        [[Paragraph(f"<b>{_text(k)}</b>", _CELL), Paragraph(_text(v), _CELL)] for k, v in rows],
        colWidths=[45 * mm, 125 * mm],
    )
    table.setStyle(
        TableStyle(
            [("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9aa7b4")), ("VALIGN", (0, 0), (-1, -1), "TOP")]
        )
    )
    return [table, Spacer(1, 5 * mm)]


def report_pdf(*, meta: dict[str, Any], evidence: dict[str, Any]) -> bytes:
    """Render the PDF of a report from its metadata and evidence."""
    ev = evidence
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"FLK {meta['framework_title']} report: {meta['tenant']}",
        author="FLK",
    )
    story: list[Any] = [
        Paragraph(f"{_text(meta['framework_title'])} compliance report", _STYLES["Title"]),
        Paragraph(
            "Evidence from the tenant's hash-chained audit log, sealed in a signed checkpoint. The bundle's "
            "manifest is signed with the audit key; <font face='Courier'>flk-agent report verify</font> "
            "checks every file and proof offline.",
            _BODY,
        ),
        Spacer(1, 4 * mm),
        *_summary(meta, ev),
        _h("Control mapping"),
        *_table(
            ["Control", "Title", "State", "Observation", "Evidence"],
            [
                [c["ref"], c["title"], c["state"], c["observation"], ", ".join(c["evidence"])]
                for c in ev["controls"]
            ],
            [22, 32, 20, 68, 32],
        ),
        PageBreak(),
        _h("Decisions by outcome"),
        *_table(
            ["Outcome", "Count"],
            [[k, v] for k, v in ev["decisions"]["by_outcome"].items()],
            [60, 30],
        ),
        _h("Decisions by outcome and reason"),
        *_table(
            ["Outcome", "Status", "Reason", "Count"],
            [
                [r["outcome"], r["status"], r["reason"] or "(none)", r["count"]]
                for r in ev["decisions"]["by_reason"]
            ],
            [25, 18, 105, 22],
        ),
        _h("Signature failures (failed authentications) by day"),
        *_table(
            ["Day (UTC)", "Failed authentications"],
            [[r["day"], r["count"]] for r in ev["signature_failures"]["by_day"]],
            [40, 50],
        ),
        _h("Escalations and reviews"),
        *_table(
            ["Escalated", "Reviewed", "Pending", "Accepted", "Rejected", "Median s", "p90 s", "Max s"],
            [
                [
                    ev["escalations"]["total"],
                    ev["escalations"]["reviewed"],
                    ev["escalations"]["pending"],
                    ev["escalations"]["review_outcomes"].get("accepted", 0),
                    ev["escalations"]["review_outcomes"].get("rejected", 0),
                    ev["escalations"]["seconds_to_decision"]["median"],
                    ev["escalations"]["seconds_to_decision"]["p90"],
                    ev["escalations"]["seconds_to_decision"]["max"],
                ]
            ],
            [22, 22, 20, 22, 22, 21, 20, 21],
        ),
        *_table(
            ["Seq", "PCS", "Outcome", "Reviewer", "Reason", "Seconds"],
            [
                [
                    r["seq"],
                    r["pcs_id"][:16],
                    r["outcome"],
                    r["reviewer"] or r["actor"],
                    r["reason"],
                    r["seconds_to_decision"],
                ]
                for r in ev["escalations"]["reviews"]
            ],
            [14, 30, 20, 30, 56, 20],
        ),
        _h("Key changes with actors"),
        *_table(
            ["Seq", "When", "Change", "Actor", "Detail"],
            [[c["seq"], c["created_at"][:19], c["kind"], c["actor"], c["reason"]] for c in ev["key_changes"]],
            [14, 32, 24, 28, 72],
        ),
        _h("Policy changes with actors"),
        *_table(
            ["Seq", "When", "Change", "Version", "Actor", "Detail"],
            [
                [c["seq"], c["created_at"][:19], c["kind"], c["policy_version"], c["actor"], c["reason"]]
                for c in ev["policy_changes"]
            ],
            [14, 32, 28, 18, 28, 50],
        ),
        _h("Tenant changes with actors"),
        *_table(
            ["Seq", "When", "Change", "Actor", "Detail"],
            [
                [c["seq"], c["created_at"][:19], c["kind"], c["actor"], c["reason"]]
                for c in ev["tenant_changes"]
            ],
            [14, 32, 28, 28, 68],
        ),
        _h("Audit chain verification"),
        *_table(
            ["Entries verified", "Result", "Problems"],
            [
                [
                    ev["chain_verification"]["entries"],
                    "verifies" if ev["chain_verification"]["ok"] else "broken",
                    "; ".join(ev["chain_verification"]["problems"]) or "none",
                ]
            ],
            [35, 30, 105],
        ),
        _h("Checkpoints and anchors"),
        Paragraph(
            f"{ev['checkpoints']['sealed_in_period']} checkpoints sealed in the period, "
            f"{ev['checkpoints']['anchored_in_period']} anchored to write-once storage; the newest:",
            _BODY,
        ),
        *_table(
            ["Tree size", "Root hash", "Sealed", "Anchor", "Retained until"],
            [
                [
                    c["tree_size"],
                    c["root_hash"][:24] + "…",
                    (c["sealed_at"] or "")[:19],
                    (c["anchor"] or {}).get("reference", "not anchored"),
                    ((c["anchor"] or {}).get("retain_until") or "-")[:10],
                ]
                for c in ev["checkpoints"]["newest"]
            ],
            [20, 45, 32, 50, 23],
        ),
        _h("Async-audit findings"),
        Paragraph(
            f"{ev['findings']['open']} open; {ev['findings']['resolved_in_period']} resolved in the period; "
            f"{_reverified(ev['findings'])}.",
            _BODY,
        ),
        *_table(
            ["Seq", "Problem", "Detail", "Found", "Resolved"],
            [
                [
                    d["seq"],
                    d["problem"],
                    d["detail"],
                    (d["created_at"] or "")[:19],
                    (d["resolved_at"] or "open")[:19],
                ]
                for d in ev["findings"]["dead_letters"]
            ],
            [14, 28, 70, 29, 29],
        ),
        _h("Retention"),
        *_table(["Setting", "Value"], [[k, v] for k, v in ev["retention"].items()], [50, 120]),
    ]
    doc.build(story, onFirstPage=_footer, onLaterPages=_footer)
    return buffer.getvalue()


def _footer(canvas: Any, doc: Any) -> None:
    canvas.saveState()
    canvas.setFont("Helvetica", 7)
    canvas.drawString(18 * mm, 9 * mm, doc.title)
    canvas.drawRightString(A4[0] - 18 * mm, 9 * mm, f"page {doc.page}")
    canvas.restoreState()
