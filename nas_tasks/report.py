"""``WORK_DIR/report.html``: a search at a glance, in one static page.

Written (atomically) at the end of every search, and again when a finished
search is resumed. The page needs no server and loads nothing: its pictures
are embedded as base64 PNG (the work directory's own PNGs, i.e. the task's
pictures of the found architecture, and ``plots/*.png``), and a few lines of
inline JavaScript sort its table (click a column heading, or open the page
with ``?sort=COLUMN`` and optionally ``&order=asc|desc``). A sample-based
search's table lists every evaluated candidate; a differentiable search's
lists its epochs.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from nas_tasks.io import atomic_write_text, to_json
from nas_tasks.search_logging import arch_entropies
from nas_tasks.validation import is_int
from nas_tasks.workdir import BEST_ARCH_NAME, PLOTS_DIR

REPORT_NAME = 'report.html'


class Column:
    """A table column: the record key, its heading, and whether it sorts as numbers."""

    def __init__(self, key: str, label: str | None = None, numeric: bool = True):
        self.key, self.label, self.numeric = key, label or key, numeric


def write_candidates_report(work_dir: str | Path, title: str, score_name: str, best: Mapping,
                            history: Sequence[Mapping]) -> Path:
    """The report of a sample-based search: ``history`` holds its candidate
    records (as ``candidates.jsonl``), ``best`` is the best one."""
    rows = [_candidate_row(index, record) for index, record in enumerate(history)]
    costs = _keys(record.get('costs') for record in history)
    metrics = [key for key in _keys(record.get('metrics') for record in history) if key != score_name]
    failed = sum(row['status'] != 'ok' for row in rows)
    # The flops heading names what they count (the records' flops_convention).
    convention = next((r['flops_convention'] for r in history if r.get('flops_convention')), None)
    labels = {'flops': f'flops ({convention})'} if convention else {}
    columns = ([Column('index', '#'), Column('round'), Column('status', numeric=False),
                Column('score', score_name)]
               + [Column(f'cost:{key}', labels.get(key, key)) for key in costs]
               + [Column(f'metric:{key}', key) for key in metrics]
               + [Column('arch', numeric=False)] + ([Column('error', numeric=False)] if failed else []))
    distinct = len({to_json(record['arch'], sort_keys=True) for record in history})
    summary = [('best ' + score_name, _number_cell(best['score'], 'best-score')),
               ('candidates evaluated', _number_cell(len(history), 'candidate-count')),
               ('distinct architectures', _number_cell(distinct, 'arch-count')),
               ('failed', _number_cell(failed, 'failed-count')),
               ('rounds', _number_cell(len({r['round'] for r in history}), 'round-count'))]
    best_index = next((i for i, record in enumerate(history) if record is best), None)
    table = _table(columns, rows, 'Candidates, in the order they were evaluated', best_index)
    return _write(Path(work_dir), title, summary, best, table)


def write_epochs_report(work_dir: str | Path, title: str, score_name: str, result: Mapping,
                        history: Sequence[Mapping]) -> Path:
    """The report of a differentiable search: ``result`` is its decoded
    architecture's record, ``history`` the trainer's per-epoch records."""
    rows = [_epoch_row(record) for record in history]
    groups = _keys(row.get('entropies') for row in rows)
    metrics = _keys(record.get('metrics') for record in history)
    for row in rows:
        row.update({f'entropy:{group}': value for group, value in row.pop('entropies').items()})
    columns = ([Column('epoch'), Column('step'), Column('weight_loss', 'weight loss'),
                Column('arch_loss', 'arch loss'), Column('arch_cost', 'arch cost'), Column('lr')]
               + [Column(f'entropy:{group}', f'entropy of {group}') for group in groups]
               + [Column(f'metric:{key}', key) for key in metrics])
    summary = [(score_name + ' of the result', _number_cell(result['score'], 'best-score')),
               ('epochs', _number_cell(len(history), 'epoch-count'))]
    table = _table(columns, rows, 'Epochs (entropies in nats, of the normalised architecture '
                   'weights, averaged over rows)')
    return _write(Path(work_dir), title, summary, result, table)


# -- rows ------------------------------------------------------------------------------

def _candidate_row(index: int, record: Mapping) -> dict:
    row = {'index': index, 'round': record.get('round'), 'status': record.get('status', 'ok'),
           'score': record.get('score'), 'arch': to_json(record['arch'], sort_keys=True)}
    row.update({f'cost:{k}': v for k, v in (record.get('costs') or {}).items()})
    row.update({f'metric:{k}': v for k, v in (record.get('metrics') or {}).items()})
    error = record.get('error')
    row['error'] = f"{error.get('type')}: {error.get('message')}" if error else None
    return row


def _epoch_row(record: Mapping) -> dict:
    row = {'epoch': record['epoch'] + 1, 'step': record.get('step'),
           'weight_loss': record.get('weight_loss'), 'arch_loss': record.get('arch_loss'),
           'arch_cost': record.get('arch_cost'), 'lr': record.get('lr'),
           'entropies': arch_entropies(record.get('arch_weights') or {})}
    row.update({f'metric:{k}': v for k, v in (record.get('metrics') or {}).items()})
    return row


def _keys(mappings) -> list[str]:
    """The keys of all ``mappings`` (None ones skipped), in first-seen order."""
    keys: dict[str, None] = {}
    for mapping in mappings:
        keys.update(dict.fromkeys(mapping or {}))
    return list(keys)


# -- HTML ------------------------------------------------------------------------------

def _number_cell(value: Any, element_id: str) -> str:
    return f'<dd id="{element_id}" data-value="{_data_value(value)}">{_shown(value)}</dd>'


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _data_value(value: Any) -> str:
    """What the script sorts by: the full number, the text, or '' (sorted last)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ''
    return html.escape(repr(value) if _finite(value) else str(value), quote=True)


def _shown(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return '&ndash;'
    if is_int(value):
        return str(value)
    if _finite(value):
        return f'{value:.6g}'
    return html.escape(str(value))


def _table(columns: list[Column], rows: list[dict], caption: str, best_index: int | None = None) -> str:
    heads = ''.join(
        f'<th scope="col" data-key="{html.escape(c.key, quote=True)}" '
        f'data-type="{"number" if c.numeric else "text"}"><button type="button">'
        f'{html.escape(c.label)}</button></th>' for c in columns)
    body = []
    for index, row in enumerate(rows):
        cells = ''.join(_cell(row.get(c.key), c) for c in columns)
        marks = ' class="best"' if index == best_index else ''
        status = row.get('status')
        if status and status != 'ok':
            marks = ' class="failed"'
        body.append(f'<tr{marks}>{cells}</tr>')
    return (f'<table id="records"><caption>{html.escape(caption)}</caption>'
            f'<thead><tr>{heads}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def _cell(value: Any, column: Column) -> str:
    shown = _shown(value)
    if column.key == 'arch':
        shown = f'<code>{shown}</code>'
    kind = '' if column.numeric else ' class="text"'
    return f'<td{kind} data-value="{_data_value(value)}">{shown}</td>'


def _pictures(paths: list[Path]) -> str:
    figures = []
    for path in paths:
        data = base64.b64encode(path.read_bytes()).decode('ascii')
        name = html.escape(path.name)
        figures.append(f'<figure><img alt="{name}" src="data:image/png;base64,{data}">'
                       f'<figcaption>{name}</figcaption></figure>')
    return ''.join(figures)


def _best_document(work_dir: Path, best: Mapping) -> str:
    """``best_arch.json`` as the search wrote it, or the record's arch where there is none."""
    path = work_dir / BEST_ARCH_NAME
    if path.is_file():
        return path.read_text(encoding='utf-8')
    return json.dumps(json.loads(to_json(best['arch'])), indent=2)


def _write(work_dir: Path, title: str, summary: list[tuple[str, str]], best: Mapping,
           table: str) -> Path:
    items = ''.join(f'<div><dt>{html.escape(label)}</dt>{cell}</div>' for label, cell in summary)
    pictures = _pictures(sorted(work_dir.glob('*.png')))
    plots = _pictures(sorted((work_dir / PLOTS_DIR).glob('*.png')))
    page = f'''<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<header><h1>{html.escape(title)}</h1><dl class="summary">{items}</dl></header>
<section id="best"><h2>Best architecture</h2>
<pre id="best-arch">{html.escape(_best_document(work_dir, best))}</pre>
<div class="pictures">{pictures}</div></section>
<section id="plots"><h2>Plots</h2><div class="pictures">{plots or '<p>none</p>'}</div></section>
<section id="table"><h2>Records</h2>
<p class="hint">Click a column heading to sort by it (again to reverse); empty cells stay last.
Opening the page with <code>?sort=score</code> (and <code>&amp;order=asc</code>) sorts it too.</p>
<div class="scroll">{table}</div></section>
<script>{_SCRIPT}</script>
</body>
</html>
'''
    path = work_dir / REPORT_NAME
    atomic_write_text(path, page)
    return path


_STYLE = '''
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.5em; margin: 0 0 .5em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.5em; }
.summary { display: flex; flex-wrap: wrap; gap: .5em 2em; margin: 0; }
.summary dt { color: #666; font-size: .85em; }
.summary dd { margin: 0; font-size: 1.3em; font-weight: 600; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; max-height: 24em; }
.pictures { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #666; font-size: .85em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .9em; }
caption { text-align: left; color: #666; padding: .3em 0; }
th, td { border: 1px solid #ddd; padding: .2em .5em; text-align: right; white-space: nowrap; }
.text, th[data-type="text"] { text-align: left; }
th button { font: inherit; font-weight: 600; border: 0; background: none; cursor: pointer; padding: 0; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
tr.best { background: #e6f4e6; } tr.failed { color: #a33; }
.hint { color: #666; font-size: .85em; }
'''

# Sorting: numbers as numbers, text as text, empty cells last in either
# order; rows that tie keep their current order.
_SCRIPT = '''
(function () {
  'use strict';
  var table = document.getElementById('records');
  if (!table) { return; }
  var body = table.tBodies[0];
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);

  function sortBy(key, descending) {
    var index = heads.findIndex(function (th) { return th.getAttribute('data-key') === key; });
    if (index < 0) { return false; }
    var numeric = heads[index].getAttribute('data-type') === 'number';
    if (descending === undefined) { descending = numeric; }
    var rows = Array.prototype.slice.call(body.rows).map(function (row, position) {
      var raw = row.cells[index].getAttribute('data-value');
      var value = raw === '' ? null : (numeric ? parseFloat(raw) : raw);
      return {row: row, value: value, position: position};
    });
    rows.sort(function (a, b) {
      if (a.value === null || b.value === null) {
        if (a.value === b.value) { return a.position - b.position; }
        return a.value === null ? 1 : -1;
      }
      var order = numeric ? a.value - b.value : a.value.localeCompare(b.value);
      return (descending ? -order : order) || a.position - b.position;
    });
    rows.forEach(function (item) { body.appendChild(item.row); });
    heads.forEach(function (th) { th.removeAttribute('aria-sort'); });
    heads[index].setAttribute('aria-sort', descending ? 'descending' : 'ascending');
    return true;
  }

  heads.forEach(function (th) {
    th.querySelector('button').addEventListener('click', function () {
      var current = th.getAttribute('aria-sort');
      sortBy(th.getAttribute('data-key'), current ? current === 'ascending' : undefined);
    });
  });
  var query = new URLSearchParams(window.location.search);
  if (query.has('sort')) {
    var order = query.get('order');
    sortBy(query.get('sort'), order ? order !== 'asc' : undefined);
  }
})();
'''
