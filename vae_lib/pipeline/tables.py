"""The report's tables as HTML (and Table 1 as Markdown, for the README), from the rows of
:mod:`.results`."""
from __future__ import annotations

import html
import math

import numpy as np

from .convergence import past_protocol, run_label
from .references import PAPER, REFERENCE
from .registry import model_label
from .results import cell_summary, model_differences, paired_difference, select


def fmt(value, digits=2, signed=False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "&ndash;"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def cell_html(rows, planned=None, **where) -> str:
    """'mean &plusmn; err' of the complete rows matching ``where`` (with their seeds), or why
    there is none (:func:`~vae_lib.pipeline.results.cell_summary`)."""
    return _summary_html(*cell_summary(rows, planned, **where))


def _summary_html(s, note) -> str:
    if s is None:
        return f"<em>{note}</em>"
    return f"{s.mean:.2f} &plusmn; {s.err:.2f}" + (f"<br><small>{note}</small>" if note else "")


def _table1_rows(rows, datasets, models, planned=None):
    """(model, dataset, selector) of Table 1's rows: every dataset for the VAE, and a row for another
    model where it was run, where the plan has it, or where the paper reports a number for it (a
    result still to reproduce shows as not run). The selector picks the profile's own cells."""
    for model in models:
        for dataset in datasets:
            where = dict(dataset=dataset, model=model, own_cell=True)
            if (model == "vae" or select(rows, status=None, **where)
                    or any(key[:2] == (dataset, model) for key in [*PAPER, *(planned or ())])):
                yield model, dataset, where


def table1_cells(rows, datasets, priors, models=("vae",), planned=None, needs_gpu=()):
    """Table 1's contents, for each of its rows (:func:`_table1_rows`): (model, dataset, cells), a
    cell per prior: (summary of ours or None, the note beside it or why there is none, our mean
    bits/dim or None, the reference report's number or None, the paper's or None). ``planned``:
    the (dataset, model, prior) cells of the profile's plan (a set, or a dict to each cell's
    seeds); others without a record say so."""
    for model, dataset, where in _table1_rows(rows, datasets, models, planned):
        cells = []
        for prior in priors:
            summary, note = cell_summary(rows, planned, needs_gpu, prior=prior, **where)
            bpd = [r.get("test_bits_per_dim") for r in select(rows, prior=prior, **where)
                   if r.get("test_bits_per_dim") is not None]
            cells.append((summary, note, float(np.mean(bpd)) if bpd else None,
                          REFERENCE.get(dataset, {}).get(prior) if model == "vae" else None,
                          PAPER.get((dataset, model, prior))))
        yield model, dataset, cells


def table1_html(rows, datasets, priors, models=("vae",), planned=None, needs_gpu=()) -> str:
    """Table 1: per dataset (and model) x prior, ours (mean &plusmn; error) beside the reference
    report's number and the paper's where known; Frey Faces also in bits/dim."""
    head = "".join(f"<th colspan=2>{html.escape(p)}</th>" for p in priors)
    sub = "".join("<th>ours</th><th>reference</th>" for _ in priors)
    body = []
    for model, dataset, cells in table1_cells(rows, datasets, priors, models, planned, needs_gpu):
        out = []
        for summary, note, bpd, ref, paper in cells:
            ours = _summary_html(summary, note)
            if bpd is not None:
                ours += f"<br><small>{bpd:.3f} bits/dim</small>"
            ref_text = fmt(ref)
            if paper is not None:
                ref_text += f"<br><small>paper: {paper:.2f}</small>"
            out.append(f"<td>{ours}</td><td style='color:#666'>{ref_text}</td>")
        label = html.escape(dataset) + ("" if model == "vae" else f" <small>({html.escape(model_label(model))})</small>")
        body.append(f"<tr><th>{label}</th>{''.join(out)}</tr>")
    return (f"<table><thead><tr><th rowspan=2>dataset</th>{head}</tr><tr>{sub}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def paired_table_html(rows, datasets, priors, baseline="standard", models=("vae",)) -> str:
    """Each prior's per-image test LL minus the baseline prior's (the profile's own cells), on the
    same test images and the same seeds: mean &plusmn; (std across seeds, or the paired standard
    error for one seed)."""
    others = [p for p in priors if p != baseline]
    head = "".join(f"<th>{html.escape(p)} &minus; {html.escape(baseline)}</th>" for p in others)
    body = []
    for model in models:
        for dataset in datasets:
            where = dict(dataset=dataset, model=model, own_cell=True)
            base = select(rows, prior=baseline, **where)
            if not base:
                continue
            cells = []
            for prior in others:
                d = paired_difference(select(rows, prior=prior, **where), base)
                cells.append("<td>&ndash;</td>" if d is None else
                             f"<td>{d.mean:+.2f} &plusmn; {d.err:.2f}<br><small>{len(d.per_seed)} "
                             f"seed{'s' if len(d.per_seed) > 1 else ''}, {d.err_kind}</small></td>")
            label = html.escape(dataset) + ("" if model == "vae" else f" ({model_label(model)})")
            body.append(f"<tr><th>{label}</th>{''.join(cells)}</tr>")
    return f"<table><thead><tr><th>dataset</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def model_paired_table_html(rows, datasets, priors, model="hvae", baseline="vae") -> str:
    """One row per dataset x prior run with both models: each model's test LL and the paired
    difference ``model`` - ``baseline`` (mean &plusmn; std across seeds, or paired s.e. for one)."""
    body = []
    for dataset, prior, a, b, d in model_differences(rows, datasets, priors, model, baseline):
        body.append(f"<tr><th>{html.escape(dataset)}</th><td>{html.escape(prior)}</td>"
                    f"<td>{b.mean:.2f} &plusmn; {b.err:.2f}</td><td>{a.mean:.2f} &plusmn; {a.err:.2f}</td>"
                    f"<td>{d.mean:+.2f} &plusmn; {d.err:.2f}<br><small>{len(d.per_seed)} "
                    f"seed{'s' if len(d.per_seed) > 1 else ''}, {d.err_kind}</small></td></tr>")
    m, base = html.escape(model_label(model)), html.escape(model_label(baseline))
    return (f"<table><thead><tr><th>dataset</th><th>prior</th><th>{base}</th><th>{m}</th>"
            f"<th>{m} &minus; {base} (paired)</th></tr></thead><tbody>{''.join(body)}</tbody></table>")


def table1_markdown(rows, datasets, priors, models=("vae",), planned=None, needs_gpu=()) -> str:
    """Table 1 as Markdown (for the README): ours (mean &plusmn; error, seeds) / reference / paper."""
    lines = ["| dataset | " + " | ".join(priors) + " |", "|---|" + "---:|" * len(priors)]
    for model, dataset, cells in table1_cells(rows, datasets, priors, models, planned, needs_gpu):
        out = []
        for s, note, _, ref, paper in cells:
            text = note if s is None else f"**{s.mean:.2f}** ± {s.err:.2f}" + (f" ({note})" if note else "")
            extra = [f"ref. {ref:.2f}"] if ref is not None else []
            extra += [f"paper {paper:.2f}"] if paper is not None else []
            out.append(" / ".join([text] + extra))
        label = dataset if model == "vae" else f"{dataset} ({model_label(model)})"
        lines.append(f"| {label} | " + " | ".join(out) + " |")
    return "\n".join(lines)


def convergence_table_html(entries, protocol_samples: int, baseline="standard") -> str:
    """Per run scored at the protocol's S and above: the mean estimate at that S and at the largest,
    how much it rose, and (against the baseline prior of the same seed) the paired difference at
    both."""
    head = ("<table><tr><th>dataset</th><th>run</th><th>S</th><th>mean log p(x)</th><th>rise</th>"
            f"<th>&minus; {baseline} (paired)</th></tr>")
    diff = lambda p: "&ndash;" if p is None else f"{p[0]:+.2f} &plusmn; {p[1]:.2f}"
    out = []
    for r in past_protocol(entries, protocol_samples, baseline):
        out.append(f"<tr><td rowspan='2'>{r.entry['dataset']}</td><td rowspan='2'>{run_label(r.entry)}</td>"
                   f"<td>{protocol_samples}</td><td>{r.mean_at_s:.2f}</td>"
                   f"<td rowspan='2'>{r.rise:+.2f}</td><td>{diff(r.paired_at_s)}</td></tr>"
                   f"<tr><td>{r.top}</td><td>{r.mean_at_top:.2f}</td><td>{diff(r.paired_at_top)}</td></tr>")
    return head + "".join(out) + "</table>"
