import json
import os
import random

import pytest

from nas_tasks.errors import ArchError, NasError
from nas_tasks.io import append_jsonl, atomic_write_json, atomic_write_text
from nas_tasks.registry import SPACES
from nas_tasks.space import CategoricalSpace, load_arch

OPS = ['shuffle3x3', 'shuffle5x5', 'shuffle7x7', 'xception3x3']


def make_space(num_layers=6, name='shufflenet', version=1):
    return CategoricalSpace({f'layer{i:02d}': list(OPS) for i in range(num_layers)},
                            name=name, version=version)


def test_rejects_bad_choices():
    with pytest.raises(NasError, match="key 'b' needs a non-empty list"):
        CategoricalSpace({'a': [1, 2], 'b': []}, name='s')
    with pytest.raises(NasError, match='twice'):
        CategoricalSpace({'a': [1, 1]}, name='s')
    with pytest.raises(NasError, match='non-empty dict'):
        CategoricalSpace({}, name='s')


def test_properties_and_registry():
    space = SPACES.build(dict(type='CategoricalSpace', choices={'b': [1, 2, 3], 'a': ['x']},
                              name='s', version=3))
    assert isinstance(space, CategoricalSpace)
    assert (space.name, space.version, space.keys) == ('s', 3, ['b', 'a'])
    assert space.options('b') == [1, 2, 3]
    with pytest.raises(ArchError, match="no key 'c'"):
        space.options('c')


def test_sample_is_valid_uniform_and_seeded():
    space = make_space()
    archs = [space.sample(random.Random(7)) for _ in range(3)]
    assert archs[0] == archs[1] == archs[2]
    rng = random.Random(0)
    samples = [space.sample(rng) for _ in range(2000)]
    for arch in samples:
        space.validate(arch)
        assert list(arch) == space.keys
    counts = {op: sum(a['layer03'] == op for a in samples) for op in OPS}
    assert all(400 < c < 600 for c in counts.values()), counts


def test_validate_names_key_and_allowed_values():
    space = make_space()
    arch = space.sample(random.Random(0))
    arch['layer03'] = 'foo'
    with pytest.raises(ArchError) as info:
        space.validate(arch)
    assert str(info.value) == ("architecture key 'layer03' has value 'foo'; allowed values: "
                               'shuffle3x3, shuffle5x5, shuffle7x7, xception3x3')


def test_validate_missing_and_extra_keys():
    space = make_space()
    arch = space.sample(random.Random(0))
    missing = dict(arch)
    del missing['layer02'], missing['layer05']
    with pytest.raises(ArchError, match="missing key\\(s\\) 'layer02', 'layer05'"):
        space.validate(missing)
    extra = dict(arch, layer99='shuffle3x3')
    with pytest.raises(ArchError, match="unknown key\\(s\\) 'layer99'"):
        space.validate(extra)
    with pytest.raises(ArchError, match='must be a dict'):
        space.validate(['shuffle3x3'] * 6)


def test_validate_is_strict_on_option_type():
    space = CategoricalSpace({'width': [1, 2]}, name='s')
    space.validate({'width': 2})
    for bad in (2.0, '2', True):
        with pytest.raises(ArchError, match="key 'width'"):
            space.validate({'width': bad})


def test_mutate_probability_extremes():
    space = make_space(num_layers=8)
    rng = random.Random(1)
    parent = space.sample(rng)
    frozen = dict(parent)
    for _ in range(50):
        assert space.mutate(parent, 0.0, rng) == parent
    changed = [sum(child[k] != parent[k] for k in space.keys)
               for child in (space.mutate(parent, 1.0, rng) for _ in range(200))]
    assert parent == frozen  # the parent is never modified in place
    # Redrawing all 8 keys keeps each with chance 1/4, so about 6 change.
    assert 5.5 < sum(changed) / len(changed) < 6.5
    with pytest.raises(NasError):
        space.mutate(parent, 1.5, rng)


def test_mutate_one_changes_exactly_one_key():
    space = CategoricalSpace({'a': OPS, 'fixed': ['only'], 'b': [16, 32]}, name='s')
    rng = random.Random(0)
    parent = {'a': 'shuffle3x3', 'fixed': 'only', 'b': 16}
    changed_keys = set()
    for _ in range(100):
        child = space.mutate_one(parent, rng)
        space.validate(child)
        diff = [k for k in space.keys if child[k] != parent[k]]
        assert len(diff) == 1
        changed_keys.update(diff)
    assert changed_keys == {'a', 'b'}


def test_crossover_takes_each_key_from_a_parent():
    space = make_space(num_layers=8)
    a = {k: 'shuffle3x3' for k in space.keys}
    b = {k: 'xception3x3' for k in space.keys}
    rng = random.Random(0)
    from_a = 0
    for _ in range(200):
        child = space.crossover(a, b, rng)
        assert list(child) == space.keys
        assert all(child[k] in (a[k], b[k]) for k in space.keys)
        from_a += sum(child[k] == a[k] for k in space.keys)
    assert 0.45 < from_a / (200 * 8) < 0.55


def test_size_is_exact_python_int():
    assert make_space(num_layers=6).size() == 4 ** 6
    huge = make_space(num_layers=40)
    assert huge.size() == 4 ** 40 and isinstance(huge.size(), int)
    assert CategoricalSpace({'a': [1, 2, 3], 'b': ['x', 'y']}, name='s').size() == 6


def test_canonical_ignores_key_order():
    space = CategoricalSpace({'a': [1, 2], 'b': ['x', 'y']}, name='s')
    assert space.canonical({'a': 1, 'b': 'y'}) == space.canonical({'b': 'y', 'a': 1}) == '{"a":1,"b":"y"}'
    assert space.canonical({'a': 1, 'b': 'y'}) != space.canonical({'a': 2, 'b': 'y'})


def test_document_round_trip(tmp_path):
    space = make_space()
    arch = space.sample(random.Random(3))
    path = tmp_path / 'best' / 'arch.json'
    space.save_arch(path, arch, {'mAP': 0.375})
    text = path.read_text()
    assert text.startswith('{\n  "space": "shufflenet"')  # pretty, readable JSON
    doc = load_arch(path)
    assert doc == {'space': 'shufflenet', 'version': 1, 'arch': arch, 'metrics': {'mAP': 0.375}}
    assert space.from_document(doc) == arch
    assert space.to_document(arch)['metrics'] == {}


def test_to_document_validates():
    space = make_space()
    with pytest.raises(ArchError, match="key 'layer00'"):
        space.to_document({k: 'bad' for k in space.keys})


def test_from_document_rejects_other_space_or_version():
    arch = make_space().sample(random.Random(0))
    doc = make_space(name='other').to_document(arch)
    with pytest.raises(ArchError) as info:
        make_space().from_document(doc)
    assert str(info.value) == ("architecture is for space 'other' version 1, "
                               "but this search space is 'shufflenet' version 1")
    with pytest.raises(ArchError, match="space 'shufflenet' version 2, "
                                        "but this search space is 'shufflenet' version 1"):
        make_space().from_document(make_space(version=2).to_document(arch))
    doc = make_space().to_document(arch)
    doc['arch']['layer01'] = 'conv9x9'
    with pytest.raises(ArchError, match="key 'layer01' has value 'conv9x9'"):
        make_space().from_document(doc)


def test_load_arch_errors_are_one_line(tmp_path):
    with pytest.raises(NasError) as info:
        load_arch(tmp_path / 'missing.json')
    assert str(info.value) == f"architecture file not found: {tmp_path / 'missing.json'}"
    broken = tmp_path / 'broken.json'
    broken.write_text('{"space": "shufflenet",\n')
    with pytest.raises(NasError) as info:
        load_arch(broken)
    assert 'is not valid JSON' in str(info.value) and 'line 2' in str(info.value)
    assert '\n' not in str(info.value)
    listing = tmp_path / 'list.json'
    listing.write_text('[1, 2]')
    with pytest.raises(NasError, match='must hold a JSON object'):
        load_arch(listing)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    path = tmp_path / 'state.json'
    atomic_write_json(path, {'a': 1})
    atomic_write_json(path, {'a': 2})
    atomic_write_text(tmp_path / 'notes.txt', 'hello\n')
    assert json.loads(path.read_text()) == {'a': 2}
    assert sorted(os.listdir(tmp_path)) == ['notes.txt', 'state.json']


def test_atomic_write_failure_keeps_old_content(tmp_path):
    path = tmp_path / 'state.json'
    atomic_write_json(path, {'generation': 3})
    before = path.read_text()
    with pytest.raises(TypeError):
        atomic_write_json(path, {'generation': 4, 'bad': object()})
    assert path.read_text() == before
    assert os.listdir(tmp_path) == ['state.json']


def test_atomic_write_text_failure_mid_write_removes_temp(tmp_path, monkeypatch):
    path = tmp_path / 'state.json'
    path.write_text('old')

    def fail(*args):
        raise OSError('disk full')
    monkeypatch.setattr(os, 'replace', fail)
    with pytest.raises(OSError, match='disk full'):
        atomic_write_text(path, 'new')
    assert path.read_text() == 'old'
    assert os.listdir(tmp_path) == ['state.json']


def test_append_jsonl(tmp_path):
    path = tmp_path / 'logs' / 'results.jsonl'
    append_jsonl(path, {'i': 0, 'score': 1.5})
    append_jsonl(path, {'i': 1, 'arch': {'a': 'x'}})
    with pytest.raises(TypeError):
        append_jsonl(path, {'i': 2, 'bad': object()})
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{'i': 0, 'score': 1.5}, {'i': 1, 'arch': {'a': 'x'}}]
