"""The one resolver (nas_tasks/architectures.py) for each space: DetNAS, NAS-FPN, Auto-DeepLab."""
import json
import random

import pytest

from backbones.auto_deeplab.arch import AUTO_DEEPLAB_SPACE
from backbones.detnas_presets import detnas_space, resolve_detnas_arch
from detection.nas_fpn.space import BuildableNASFPNArchs, NASFPNSpace
from nas_tasks.architectures import (published_archs, register_arch, resolve_arch,
                                     resolve_arch_among)
from nas_tasks.errors import ArchError, NasError
from nas_tasks.space import CategoricalSpace

AUTO_DEEPLAB_ARCH = dict(cell=[[1, 'sep_conv_3x3'], [0, 'skip_connect']], path=[1, 2, 3, 3],
                         filter_multiplier=4)


def detnas_arch():
    return detnas_space('small').sample(random.Random(0))


def nas_fpn_arch():
    return NASFPNSpace().sample(random.Random(0))


# One row per space: the space the resolver checks against, a valid arch, a
# preset of it, the presets it publishes, and one bad key with its value.
SPACES = {
    'detnas': (detnas_space('small'), detnas_arch, 'detnas_300m_coco_fpn',
               ['detnas_300m_coco_fpn', 'detnas_300m_coco_retinanet', 'detnas_300m_voc_fpn',
                'detnas_300m_voc_retinanet'], ('layer07', 'shuffle9x9')),
    'nas_fpn': (BuildableNASFPNArchs(5), nas_fpn_arch, 'nas_fpn', ['nas_fpn'],
                ('cell2.op', 'concat')),
    'auto_deeplab': (AUTO_DEEPLAB_SPACE, lambda: dict(AUTO_DEEPLAB_ARCH), 'autodeeplab_m',
                     ['autodeeplab_s', 'autodeeplab_m', 'autodeeplab_l'], ('path', [0, 3])),
}
params = pytest.mark.parametrize('space, make_arch, preset, presets, bad',
                                 SPACES.values(), ids=SPACES.keys())


def document(space, arch, /, **changes):
    """The document of ``arch`` in ``space``, with some fields changed."""
    return {'space': space.name, 'version': space.version, 'arch': arch, 'metrics': {}, **changes}


def write(path, content):
    path.write_text(json.dumps(content))
    return path


@params
def test_preset_path_dict_and_document_give_the_same_arch(tmp_path, space, make_arch, preset,
                                                          presets, bad):
    arch = make_arch()
    assert resolve_arch(arch, space) == arch
    assert resolve_arch(document(space, arch), space) == arch
    path = tmp_path / 'best_arch.json'
    space.save_arch(path, arch, {'mAP': 0.3})
    assert resolve_arch(path, space) == arch
    assert resolve_arch(str(path), space) == arch
    published = next(entry for entry in published_archs(space.name) if entry.name == preset)
    assert resolve_arch(preset, space) == published.arch


@params
def test_the_resolved_arch_is_a_copy(space, make_arch, preset, presets, bad):
    resolve_arch(preset, space).clear()
    arch = make_arch()
    resolve_arch(arch, space).clear()
    assert resolve_arch(preset, space) and arch


@params
def test_every_published_arch_of_a_space_resolves(space, make_arch, preset, presets, bad):
    assert [entry.name for entry in published_archs(space.name)] == presets
    for name in presets:
        space.validate(resolve_arch(name, space))


@params
def test_unknown_preset_lists_the_presets_of_the_space(space, make_arch, preset, presets, bad):
    with pytest.raises(NasError) as error:
        resolve_arch('no_such_preset', space)
    message = str(error.value)
    assert "'no_such_preset' is neither a preset of" in message and 'JSON file' in message
    assert f'({", ".join(presets)})' in message


@params
def test_preset_of_another_space_is_refused(space, make_arch, preset, presets, bad):
    other = 'autodeeplab_s' if space is not AUTO_DEEPLAB_SPACE else 'nas_fpn'
    with pytest.raises(ArchError, match=rf"preset '{other}' is an architecture of space '[a-z-]+', "
                                        rf"not of '{space.name}'; presets of '{space.name}': "):
        resolve_arch(other, space)


@params
def test_file_of_another_space_or_version_is_refused(tmp_path, space, make_arch, preset, presets,
                                                     bad):
    path = write(tmp_path / 'other.json', document(space, make_arch(), space='other-space'))
    with pytest.raises(ArchError) as error:
        resolve_arch(path, space)
    assert str(error.value) == (f"arch file {path}: architecture is for space 'other-space' "
                                f"version 1, but this search space is '{space.name}' version 1")
    path = write(tmp_path / 'v2.json', document(space, make_arch(), version=2))
    with pytest.raises(ArchError, match=rf"v2\.json: .*version 2, but this search space is "
                                        rf"'{space.name}' version 1"):
        resolve_arch(path, space)
    with pytest.raises(ArchError, match='version 2'):
        resolve_arch(document(space, make_arch(), version=2), space)


@params
def test_bad_value_is_named_in_a_dict_a_document_and_a_file(tmp_path, space, make_arch, preset,
                                                            presets, bad):
    key, value = bad
    arch = make_arch() | {key: value}
    with pytest.raises(ArchError, match=f"'{key}'|{key}:|cell 2"):
        resolve_arch(arch, space)
    path = write(tmp_path / 'bad.json', document(space, arch))
    with pytest.raises(ArchError, match=r'^arch file .*bad\.json: ') as error:
        resolve_arch(path, space)
    assert '\n' not in str(error.value)
    with pytest.raises(ArchError, match=r'^arch document: '):
        resolve_arch(document(space, arch), space)


@params
def test_unknown_key_is_refused(space, make_arch, preset, presets, bad):
    with pytest.raises(ArchError, match="'extra_key'"):
        resolve_arch(make_arch() | {'extra_key': 1}, space)


def test_missing_file_wrong_type_and_incomplete_document_are_one_line_errors(tmp_path):
    space = AUTO_DEEPLAB_SPACE
    with pytest.raises(NasError, match="'missing.json' is neither a preset of 'auto-deeplab'"):
        resolve_arch('missing.json', space)
    with pytest.raises(ArchError, match='got int'):
        resolve_arch(3, space)
    path = write(tmp_path / 'old.json', {'space': 'auto-deeplab', 'arch': AUTO_DEEPLAB_ARCH})
    with pytest.raises(ArchError, match=r"old\.json: .*needs the fields 'space', 'version'"):
        resolve_arch(path, space)
    broken = tmp_path / 'broken.json'
    broken.write_text('{"space": ')
    with pytest.raises(NasError, match='not valid JSON'):
        resolve_arch(broken, space)


def test_a_family_picks_the_space_a_preset_or_document_names(tmp_path):
    family = [detnas_space(variant) for variant in ('small', 'large', 'xlarge')]
    space, arch = resolve_arch_among('detnas_1.3g_coco_fpn', family)
    assert space.name == 'detnas-large' and len(arch) == 40
    large = detnas_space('large').sample(random.Random(1))
    path = write(tmp_path / 'large.json', document(detnas_space('large'), large))
    assert resolve_arch_among(path, family) == (family[1], large)
    with pytest.raises(ArchError, match="'nas-fpn' v1, not one of 'detnas-small', 'detnas-large'"):
        resolve_arch_among(write(tmp_path / 'fpn.json', document(NASFPNSpace(), nas_fpn_arch())),
                           family)
    with pytest.raises(ArchError, match='a bare arch dict does not say which of the spaces'):
        resolve_arch_among(large, family)


def test_detnas_variant_comes_from_the_preset_or_file_and_must_agree():
    assert resolve_detnas_arch('detnas_300m_voc_fpn')[0] == 'small'
    assert resolve_detnas_arch('detnas_1.3g_coco_fpn')[0] == 'large'
    with pytest.raises(ArchError, match="'detnas-large', not of 'detnas-small'"):
        resolve_detnas_arch('detnas_1.3g_coco_fpn', variant='small')
    with pytest.raises(NasError, match='variant is required'):
        resolve_detnas_arch(detnas_arch())
    assert resolve_detnas_arch(document(detnas_space('small'), detnas_arch()))[0] == 'small'


def test_nas_fpn_arch_with_other_cells_and_output_order_resolves():
    space = NASFPNSpace(num_cells=8, output_levels=(7, 6, 5, 4, 3))
    arch = space.sample(random.Random(2))
    assert resolve_arch(space.to_document(arch), BuildableNASFPNArchs(5)) == arch
    with pytest.raises(ArchError, match='version 2'):
        resolve_arch(space.to_document(arch) | {'version': 2}, BuildableNASFPNArchs(5))


def test_registering_a_name_twice_is_refused_unless_it_is_the_same_entry():
    space = CategoricalSpace({'k': ['a', 'b']}, name='test-registry-space')
    register_arch('test_registry_preset', space.name, 1, {'k': 'a'})
    register_arch('test_registry_preset', space.name, 1, {'k': 'a'})
    assert resolve_arch('test_registry_preset', space) == {'k': 'a'}
    with pytest.raises(NasError, match="'test_registry_preset' is already published for space "
                                       "'test-registry-space' v1"):
        register_arch('test_registry_preset', space.name, 1, {'k': 'b'})
    register_arch('test_registry_stale', space.name, 2, {'k': 'a'})
    with pytest.raises(ArchError, match="preset 'test_registry_stale': .*version 2"):
        resolve_arch('test_registry_stale', space)
