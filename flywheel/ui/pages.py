"""The plugin's HTML pages: plain HTML, a little CSS, plotly charts from the app's own plotly.js."""

from __future__ import annotations

import json
from html import escape
from typing import Any
from urllib.parse import quote

from flywheel.ui import files
from flywheel.ui.evidence import Evidence

PLOTLY_JS_URL = f"{files.URL_PREFIX}/static/plotly.min.js"
CSS = """
body { font-family: system-ui, sans-serif; margin: 1.2rem; color: #1d2433; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 1.6rem; } h3 { font-size: 1rem; }
table { border-collapse: collapse; font-size: .85rem; } td, th { border: 1px solid #d0d5dd; padding: .25rem .5rem; vertical-align: top; }
th { background: #f2f4f7; text-align: left; } .missing { color: #8a5a00; } .bad { color: #b42318; font-weight: 600; }
.ok { color: #067647; } .note { background: #f2f4f7; padding: .6rem; border-radius: 4px; } ul { margin: .2rem 0; }
.chart { width: 100%; max-width: 1100px; height: 300px; }
"""


def _page(title: str, body: str, scripts: str = "") -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{CSS}</style>{scripts}</head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def _link(text: str, url: str | None) -> str:
    """A link; pages of Airflow's origin (our files, the proxied MLflow UI) open in place, other
    sites (an MLflow server of the user's) in a new tab.

    The Airflow UI shows plugin pages in a sandboxed iframe that may navigate itself but not open
    popups; a site that refuses to be framed needs the browser's "open link in new tab" there.
    """
    if not url:
        return escape(text)
    if url.startswith("/"):
        return f"<a href='{escape(url)}'>{escape(text)}</a>"
    hint = "opens in a new tab (inside the Airflow UI's frame: right-click, Open link in new tab)"
    return f"<a href='{escape(url)}' target='_blank' rel='noopener' title='{hint}'>{escape(text)} &#8599;</a>"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def _json_for_script(payload: Any) -> str:
    # "</script>" inside a string must not end the script element.
    return json.dumps(payload).replace("</", "<\\/")


def _champion_table(rows: list[dict[str, Any]]) -> str:
    head = "<tr><th>as of</th><th>version</th><th>source</th><th>decision</th><th>reason</th><th>holdout metrics</th><th>MLflow</th></tr>"
    body = []
    for r in rows:
        css = "ok" if r["decision"] == "promoted" else "bad" if r["decision"] == "rejected" else ""
        metrics = ", ".join(f"{k} {_fmt(v)}" for k, v in r["metrics"].items())
        links = " / ".join(
            x
            for x in (
                _link("run", r["mlflow_run_url"]) if r["mlflow_run_url"] else "",
                _link(f"v{r['version']}", r["mlflow_version_url"]),
            )
            if x
        )
        body.append(
            f"<tr><td>{_fmt(r['as_of'])}</td><td>v{_fmt(r['version'])}</td><td>{_fmt(r['source'])}</td>"
            f"<td class='{css}'>{_fmt(r['decision'])}</td><td>{_fmt(r['reason'])}</td><td>{metrics or '-'}</td><td>{links}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _monitoring_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "<tr><th>day</th><th>champion</th><th>drift share</th><th>prediction drift</th><th>ROC AUC</th>"
        "<th>quality threshold</th><th>fired</th><th>decision</th><th>report</th><th>Data Docs</th></tr>"
    )
    body = []
    for r in rows:
        css = "bad" if r["decision"] == "drift" else "ok"
        report = (
            _link("Evidently report", r["report_url"])
            if r["report_url"]
            else "<span class='missing'>no report file</span>"
        )
        body.append(
            f"<tr><td>{escape(r['ds'])}</td><td>v{_fmt(r['champion_version'])}</td><td>{_fmt(r['drift_share'])}</td>"
            f"<td>{_fmt(r['prediction_drift'])}</td><td>{_fmt(r['roc_auc'])}</td><td>{_fmt(r['quality_threshold'])}</td>"
            f"<td>{escape(', '.join(r['fired'])) or '-'}</td><td class='{css}'>{_fmt(r['decision'])}</td><td>{report}</td>"
            f"<td>{' '.join(_link(d['suite'], d['url']) for d in r.get('data_docs') or []) or '-'}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def monitoring_figures(
    rows: list[dict[str, Any]], thresholds: dict[str, float], retrainings: list[str]
) -> list[dict[str, Any]]:
    """Three plotly figures (drift share, prediction drift, ROC AUC), each with its policy threshold,
    drift days in red and retraining as-of dates as dashed vertical lines; customdata holds the report URL."""
    days = [r["ds"] for r in rows]
    reports = [r["report_url"] for r in rows]
    colors = ["#d92d20" if r["decision"] == "drift" else "#1570ef" for r in rows]
    shapes = [
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": d,
            "x1": d,
            "y0": 0,
            "y1": 1,
            "line": {"dash": "dash", "color": "#7a5af8"},
        }
        for d in retrainings
    ]
    annotations = [
        {
            "x": d,
            "y": 1,
            "xref": "x",
            "yref": "paper",
            "text": f"retraining as of {d}",
            "showarrow": False,
            "yanchor": "bottom",
        }
        for d in retrainings
    ]

    def figure(key: str, title: str, threshold: list[float | None], threshold_name: str) -> dict[str, Any]:
        return {
            "data": [
                {"x": days, "y": [r[key] for r in rows], "customdata": reports, "mode": "lines+markers", "name": title,
                 "marker": {"color": colors, "size": 9}, "line": {"color": "#98a2b3"}},
                {"x": days, "y": threshold, "mode": "lines", "name": threshold_name, "line": {"color": "#d92d20", "dash": "dot", "shape": "hv"}},
            ],
            "layout": {"title": {"text": title}, "shapes": shapes, "annotations": annotations, "margin": {"t": 50, "b": 40},
                       "xaxis": {"type": "date"}, "hovermode": "closest"},
        }  # fmt: skip

    return [
        figure("drift_share", "Drifted share of features", [thresholds["drift_share"]] * len(rows), "policy threshold"),
        figure(
            "prediction_drift", "Prediction drift", [thresholds["prediction_drift"]] * len(rows), "policy threshold"
        ),
        figure(
            "roc_auc",
            "ROC AUC (pooled window)",
            [r["quality_threshold"] for r in rows],
            "champion holdout AUC - quality drop",
        ),
    ]


def model_health(
    champions: list[dict[str, Any]],
    monitoring: list[dict[str, Any]],
    thresholds: dict[str, float],
    retrainings: list[str],
) -> str:
    """The model health page."""
    if not champions and not monitoring:
        body = (
            "<p class='note'>Nothing has run yet: no promotion history and no monitored day in the lake. "
            "Train a first champion (flights_training), then score and monitor days.</p>"
        )
        return _page("Flywheel model health", body)
    parts = ["<h2>Champion timeline</h2>"]
    parts.append(_champion_table(champions) if champions else "<p class='note'>No promotion decision yet.</p>")
    parts.append("<h2>Monitoring</h2>")
    if not monitoring:
        parts.append("<p class='note'>No monitored day yet.</p>")
        return _page("Flywheel model health", "".join(parts))
    parts.append(
        f"<p>Policy: a day signals when the drifted share exceeds {thresholds['drift_share']}, prediction drift exceeds "
        f"{thresholds['prediction_drift']}, or ROC AUC falls more than {thresholds['quality_drop']} below the champion's "
        f"holdout AUC; drift after {thresholds['drift_consecutive_days']} consecutive signalling days. "
        "Red points are drift days; click a point to open that day's Evidently report.</p>"
    )
    figures = monitoring_figures(monitoring, thresholds, retrainings)
    parts += [f"<div class='chart' id='chart{i}'></div>" for i in range(len(figures))]
    parts.append(
        "<script>const figures = " + _json_for_script(figures) + ";\n"
        "figures.forEach((f, i) => { const el = document.getElementById('chart' + i);\n"
        "  Plotly.newPlot(el, f.data, f.layout, {responsive: true, displaylogo: false});\n"
        "  el.on('plotly_click', (ev) => { const url = ev.points[0].customdata; if (!url) return;\n"
        "    // In a frame (sandboxed, no popups) go there in place; in its own tab, open a new one.\n"
        "    if (window.self !== window.top) { window.location.assign(url); } else { window.open(url, '_blank'); } }); });</script>"
    )
    parts.append(_monitoring_table(monitoring))
    return _page("Flywheel model health", "".join(parts), f"<script src='{PLOTLY_JS_URL}'></script>")


def evidence_page(evidence: Evidence, airflow_run_url: str | None = None) -> str:
    """The evidence of a task instance (or of a whole run)."""
    what = f"{evidence.dag_id} / {evidence.run_id}" + (f" / {evidence.task_id}" if evidence.task_id else "")
    parts = [f"<p>{escape(what)}; days: {escape(', '.join(evidence.days)) or 'none'}</p>"]
    if evidence.note:
        parts.append(f"<p class='note'>{escape(evidence.note)}</p>")
    for section in evidence.sections:
        parts.append(f"<h2>{escape(section.heading)}</h2><ul>")
        for item in section.items:
            if item.missing:
                line = f"{escape(item.title)}: <span class='missing'>{escape(item.missing)}</span>"
            else:
                line = _link(item.title, item.url)
            if item.details:
                line += "<ul>" + "".join(f"<li>{escape(d)}</li>" for d in item.details) + "</ul>"
            parts.append(f"<li>{line}</li>")
        parts.append("</ul>")
    if evidence.task_id:
        run_url = f"{files.URL_PREFIX}/evidence/{quote(evidence.dag_id, safe='')}/{quote(evidence.run_id, safe='')}"
        parts.append(f"<p>{_link('Evidence of the whole run', run_url)}</p>")
    return _page("Flywheel evidence", "".join(parts))
