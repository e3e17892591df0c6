"""WORK_DIR/report.html in headless Chromium: it renders, shows the best score and
the candidate count, embeds its pictures, and its table sorts by clicks and by ?sort=."""
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import read_candidates
from nas_tasks.loop import SearchLoop
from nas_tasks.strategies import Evolution
from stand_in_estimators import SEED, STRATEGY, FlakyEstimator, make_space

CHROMIUM = '/usr/bin/chromium'
# As the environment's notes say to run it: no sandbox, GPU, network or first-run work.
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update',
                  '--disable-sync']


def needs_chromium(test):
    """A headless-browser test: in the slow tier, and skipped without Chromium."""
    available = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                   reason='no /usr/bin/chromium (setup.sh installs it)')
    return pytest.mark.slow(available(test))

# A page beside the report that loads it in a frame, clicks column headings
# as a person would, and writes what the report's table then shows into its own DOM.
HARNESS = '''<!DOCTYPE html><html><body><pre id="out">not run</pre>
<script>
function run(frame) {
  var doc = frame.contentDocument;
  function table() {
    var heads = Array.from(doc.querySelectorAll('#records thead th'));
    var columns = {};
    heads.forEach(function (th, index) {
      columns[th.getAttribute('data-key')] = Array.from(doc.querySelectorAll('#records tbody tr'))
        .map(function (row) { return row.cells[index].getAttribute('data-value'); });
    });
    return columns;
  }
  function click(key) {
    var th = doc.querySelector('#records th[data-key="' + key + '"]');
    th.querySelector('button').click();
    return {sort: th.getAttribute('aria-sort'), columns: table()};
  }
  var out = {clicks: CLICKS.map(click), images: Array.from(doc.images).map(function (image) {
    return [image.alt, image.naturalWidth, image.naturalHeight]; })};
  document.getElementById('out').textContent = JSON.stringify(out);
}
</script>
<iframe src="REPORT" onload="run(this)"></iframe></body></html>'''


def chromium(tmp_path, *args) -> str:
    profile = tmp_path / 'chromium-profile'
    result = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f'--user-data-dir={profile}', *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def dump_dom(tmp_path, page: Path, query: str = '') -> str:
    """The DOM of ``page`` after its scripts ran."""
    return chromium(tmp_path, '--dump-dom', page.resolve().as_uri() + query)


def click_through(tmp_path, report: Path, clicks: list[str]) -> dict:
    """Click the headings ``clicks`` of the report's table in turn, in Chromium; per click the
    heading's aria-sort and the table's columns (cells' data-values), and the images' sizes."""
    harness = report.parent / 'harness.html'
    harness.write_text(HARNESS.replace('CLICKS', json.dumps(clicks)).replace('REPORT', report.name))
    try:
        dom = chromium(tmp_path, '--allow-file-access-from-files', '--dump-dom', harness.as_uri())
    finally:
        harness.unlink()
    return json.loads(_unescape(re.search(r'<pre id="out">(.*?)</pre>', dom, re.S).group(1)))


def _unescape(text: str) -> str:
    return text.replace('&quot;', '"').replace('&lt;', '<').replace('&gt;', '>').replace('&amp;', '&')


class PageText(HTMLParser):
    """The text of elements by id, and the rows of the records table (each cell's data-value)."""

    def __init__(self, html: str):
        super().__init__()
        self.by_id, self.rows, self.heads = {}, [], []
        self._open = []  # ids of the elements whose text is being read
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get('id'):
            self.by_id[attrs['id']] = ''
            self._open.append((tag, attrs['id']))
        if tag == 'tr' and self._open_in('records'):
            self.rows.append([])
        if tag == 'td' and self._open_in('records'):
            self.rows[-1].append(attrs.get('data-value'))
        if tag == 'th' and self._open_in('records'):
            self.heads.append(attrs.get('data-key'))

    def handle_endtag(self, tag):
        if self._open and self._open[-1][0] == tag:
            self._open.pop()

    def handle_data(self, data):
        for _, element_id in self._open:
            self.by_id[element_id] += data

    def _open_in(self, element_id):
        return any(open_id == element_id for _, open_id in self._open)

    def column(self, key):
        index = self.heads.index(key)
        return [row[index] for row in self.rows if row]


@pytest.fixture(scope='module')
def search_dir(tmp_path_factory):
    """A stand-in evolution search of 4 rounds of 8 whose first round has 2 failures."""
    work_dir = tmp_path_factory.mktemp('report') / 'evolution_run'
    space = make_space()
    loop = SearchLoop(space, Evolution(space, seed=SEED, **STRATEGY), FlakyEstimator(), work_dir,
                      candidates_per_round=8, score_name='hits')
    loop.run()
    return work_dir


def test_the_report_is_one_static_file_that_loads_nothing(search_dir):
    html = (search_dir / 'report.html').read_text()
    sources = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html)
    assert sources and all(source.startswith('data:image/png;base64,') for source in sources)
    assert '://' not in html.replace('data:image/png;base64,', '')
    assert not list(search_dir.glob('.*.tmp'))
    page = PageText(html)
    records = read_candidates(search_dir)
    assert len(page.rows) == len(records) + 1  # the heading row, then one per candidate
    assert page.column('score') == [('' if r['score'] is None else repr(r['score'])) for r in records]
    assert json.loads(page.by_id['best-arch']) == json.loads((search_dir / 'best_arch.json').read_text())


@needs_chromium
def test_report_renders_the_best_score_and_the_candidate_count(search_dir, tmp_path):
    records = read_candidates(search_dir)
    best = json.loads((search_dir / 'best_arch.json').read_text())['metrics']['hits']
    page = PageText(dump_dom(tmp_path, search_dir / 'report.html'))
    assert page.by_id['best-score'] == f'{best:.6g}' == '5'
    assert page.by_id['candidate-count'] == str(len(records)) == '32'
    assert page.by_id['failed-count'] == '2'

    shot = tmp_path / 'report.png'
    chromium(tmp_path, '--window-size=1200,1600', f'--screenshot={shot}',
             (search_dir / 'report.html').as_uri())
    pixels = np.asarray(Image.open(shot).convert('L'))
    assert pixels.shape == (1600, 1200)
    # Rendered text and plots, not a blank page: many dark pixels, many grey levels.
    assert (pixels < 128).mean() > 0.01 and len(np.unique(pixels)) > 50


@needs_chromium
@pytest.mark.parametrize('query, descending', [('?sort=score', True),
                                               ('?sort=score&order=asc', False)])
def test_the_table_sorts_by_the_query(search_dir, tmp_path, query, descending):
    page = PageText(dump_dom(tmp_path, search_dir / 'report.html', query))
    scores = page.column('score')
    finite = [float(value) for value in scores if value]
    assert len(set(finite)) >= 4 and scores[-2:] == ['', '']  # failures last, either way
    assert finite == sorted(finite, reverse=descending)
    assert page.column('index') != sorted(page.column('index'), key=int)


@needs_chromium
def test_clicking_a_heading_sorts_the_table(search_dir, tmp_path):
    clicks = click_through(tmp_path, search_dir / 'report.html', ['score', 'score', 'round', 'index'])
    by_score, reversed_score, by_round, by_index = clicks['clicks']

    def numbers(values):
        return [float(v) for v in values if v]
    assert by_score['sort'] == 'descending' and reversed_score['sort'] == 'ascending'
    scores = by_score['columns']['score']
    assert len(set(numbers(scores))) >= 4 and scores[-2:] == ['', '']  # failures last
    assert numbers(scores) == sorted(numbers(scores), reverse=True)
    scores = reversed_score['columns']['score']
    assert numbers(scores) == sorted(numbers(scores)) and scores[-2:] == ['', '']
    # Rows that tie keep the order they had: the last round first, within it by score ascending.
    assert by_round['sort'] == 'descending'
    rounds, scores = by_round['columns']['round'], by_round['columns']['score']
    assert numbers(rounds) == sorted(numbers(rounds), reverse=True)
    last_round = [s for r, s in zip(rounds, scores) if r == '3']
    assert len(set(last_round)) > 1 and numbers(last_round) == sorted(numbers(last_round))
    assert by_index['columns']['index'] == [str(i) for i in range(32)][::-1]
    assert [(name, width > 100) for name, width, _ in clicks['images']] == [
        ('score_per_round.png', True), ('score_vs_flops.png', True)]


def test_resume_of_a_finished_search_writes_the_report_again(search_dir, tmp_path):
    work_dir = tmp_path / 'resumed_run'
    shutil.copytree(search_dir, work_dir)
    first = (work_dir / 'report.html').read_text()
    (work_dir / 'report.html').unlink()
    space = make_space()
    SearchLoop(space, Evolution(space, seed=SEED, **STRATEGY), FlakyEstimator(), work_dir,
               candidates_per_round=8, score_name='hits').run(resume=True)
    assert (work_dir / 'report.html').read_text() == first.replace(search_dir.name, work_dir.name)
