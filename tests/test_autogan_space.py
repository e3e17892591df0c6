"""The AutoGAN generator space: its size, the official 14-integer vectors and the presets."""
import itertools
import json
import random

import pytest

from gan.autogan.space import PRESET_VECTORS, AutoGANSpace, CellArch
from nas_tasks.architectures import published_archs, resolve_arch
from nas_tasks.errors import ArchError
from nas_tasks.registry import SPACES

# Number of options of each position of the official vector.
VECTOR_RANGES = [2, 3, 3, 2, 2, 3, 3, 2, 2, 2, 3, 3, 2, 4]


@pytest.fixture(scope='module')
def space():
    return AutoGANSpace()


def test_size_and_stages_are_the_official_ones(space):
    assert space.size() == 36 * 72 * 144 == 373_248
    assert space.num_stages == 3
    stage_sizes = [len(list(itertools.product(*(space.options(k) for k in space.keys_of_stage(s)))))
                   for s in range(3)]
    assert stage_sizes == [36, 72, 144]
    assert space.keys_of_stage(2) == ['cell3.conv', 'cell3.norm', 'cell3.up', 'cell3.shortcut',
                                      'cell3.skip_from_cell1', 'cell3.skip_from_cell2']
    assert isinstance(SPACES.build(dict(type='AutoGANSpace')), AutoGANSpace)


def test_options_are_readable_in_json(space):
    arch = space.from_vector([1, 2, 2, 0, 0, 1, 0, 1, 1, 1, 0, 1, 0, 2])
    assert json.loads(json.dumps(arch)) == {
        'cell1.conv': 'pre', 'cell1.norm': 'in', 'cell1.up': 'deconv', 'cell1.shortcut': False,
        'cell2.conv': 'post', 'cell2.norm': 'bn', 'cell2.up': 'bilinear', 'cell2.shortcut': True,
        'cell2.skip_from_cell1': True,
        'cell3.conv': 'pre', 'cell3.norm': None, 'cell3.up': 'nearest', 'cell3.shortcut': False,
        'cell3.skip_from_cell1': True, 'cell3.skip_from_cell2': False}


@pytest.mark.parametrize('token, from_cell1, from_cell2', [(0, False, False), (1, False, True),
                                                           (2, True, False), (3, True, True)])
def test_cell3_skip_token_bit_order(space, token, from_cell1, from_cell2):
    arch = space.from_vector([0] * 13 + [token])
    assert (arch['cell3.skip_from_cell1'], arch['cell3.skip_from_cell2']) == (from_cell1, from_cell2)
    assert space.cells(arch)[2].skip_from == tuple(c for c, on in ((1, from_cell1), (2, from_cell2)) if on)


def test_every_stage_code_round_trips(space):
    """Each cell's codes exhaustively (36, 72 and 144) with the other cells drawn at random."""
    rng = random.Random(0)
    bounds = [(0, 4), (4, 9), (9, 14)]
    seen = set()
    for start, stop in bounds:
        for codes in itertools.product(*map(range, VECTOR_RANGES[start:stop])):
            vector = [rng.randrange(n) for n in VECTOR_RANGES]
            vector[start:stop] = codes
            arch = space.from_vector(vector)
            space.validate(arch)
            assert space.to_vector(arch) == vector
            seen.add(space.canonical(arch))
    assert len(seen) > 36 + 72 + 144 - 3  # distinct vectors give distinct archs (bar random repeats)


def test_sampled_archs_round_trip_through_vectors_and_json(space, tmp_path):
    rng = random.Random(1)
    vectors = {tuple(space.to_vector(space.sample(rng))) for _ in range(2000)}
    for vector in vectors:
        arch = space.from_vector(list(vector))
        assert tuple(space.to_vector(arch)) == vector
    arch = space.from_vector(list(vector))
    space.save_arch(tmp_path / 'arch.json', arch)
    assert resolve_arch(str(tmp_path / 'arch.json'), space) == arch


def test_prefix_vectors_give_stage_prefixes(space):
    full = [1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 3]
    for length, stage in ((4, 0), (9, 1)):
        prefix = space.from_vector(full[:length])
        assert space.stage_of(prefix) == stage
        assert prefix == space.prefix(space.from_vector(full), stage)
        assert space.to_vector(prefix) == full[:length]


@pytest.mark.parametrize('vector, fragment', [
    ([1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0], 'list of 14 integers'),
    ('10111001110103', 'list of 14 integers'),
    ([1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 4], 'position 13 (skip of cell 3) must be an integer 0..3'),
    ([1, 0, 1, 1, 1, 0, 0, 1, 2, 1, 0, 1, 0, 3], 'position 8 (skip of cell 2) must be an integer 0..1'),
    ([2, 0, 1, 1], 'position 0 (conv) must be an integer 0..1'),
    ([1, 3, 1, 1], 'position 1 (norm)'),
    ([1, 0, -1, 1], 'position 2 (up)'),
    ([1, 0, 1, True], 'position 3 (shortcut)'),
    ([1, 0, 1.0, 1], 'position 2 (up)'),
])
def test_bad_vectors_are_one_line_errors(space, vector, fragment):
    with pytest.raises(ArchError) as error:
        space.from_vector(vector)
    assert fragment in str(error.value) and '\n' not in str(error.value)


def test_presets_resolve_and_match_the_sheet(space):
    assert [entry.name for entry in published_archs('autogan')] == list(PRESET_VECTORS)
    a, b, c = (space.cells(resolve_arch(f'autogan_cifar10_{x}', space)) for x in 'abc')
    skips = [(), (1,), (1, 2)]
    # a: cell1 nearest + SC; cell2 bilinear + SC + skip from cell1; cell3 nearest,
    # no SC, skips from cells 1 and 2; no norm; pre-activation throughout.
    assert a == [CellArch('pre', None, 'nearest', True, skips[0]),
                 CellArch('pre', None, 'bilinear', True, skips[1]),
                 CellArch('pre', None, 'nearest', False, skips[2])]
    # b: every cell nearest + SC, same skips, no norm.
    assert b == [CellArch('pre', None, 'nearest', True, skip) for skip in skips]
    # c: like a, but cell1 uses BN.
    assert c == [a[0]._replace(norm='bn'), a[1], a[2]]
    for name, (vector, _) in PRESET_VECTORS.items():
        assert space.to_vector(resolve_arch(name, space)) == vector
