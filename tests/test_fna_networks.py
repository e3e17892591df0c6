"""FNA's networks: every supported seed maps into the super network, unsupported
seeds get one line, the derived network is a timm model that loads the remapped
weights, and the super network trains a step inside mmdet and mmseg models."""
import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.structures import PixelData

from backbones.fna.adapted import PUBLISHED, build_adapted, remap_into_adapted
from backbones.fna.layout import SearchLayout
from backbones.fna.seed import create_seed, seed_definition
from backbones.fna.super_net import FNASuperNet
from conftest import one_torch_thread
from nas_tasks.errors import NasError
from segmentation.fna import SeparableASPPHead  # noqa: F401  (registers the DeepLabv3 head)

SEED_DEPTHS = {'mobilenetv2_100': (4, 4, 4, 4, 4, 1), 'mnasnet_100': (4, 4, 4, 4, 4, 1),
               'efficientnet_b0': (4, 4, 6, 6, 4, 1), 'mobilenetv3_large_100': (4, 4, 4, 4, 4)}


@pytest.fixture(scope='module')
def seed_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp('seeds')
    files = {}
    for name in SEED_DEPTHS:
        path = directory / f'{name}.pth'
        torch.save(create_seed(name).state_dict(), path)
        files[name] = str(path)
    return files


@pytest.mark.parametrize('name', sorted(SEED_DEPTHS))
def test_each_seed_maps_into_the_super_network(name, seed_files):
    supernet = FNASuperNet(dict(name=name, weights=seed_files[name]), depths=SEED_DEPTHS[name])
    supernet.init_weights()
    report = supernet.remap_report
    assert report.remapped and not report.kept_init
    # A candidate of a layer deeper than the seed's stage comes from the stage's last layer.
    last_stage = len(SEED_DEPTHS[name]) - 1
    seed_last = supernet.layout.seed_depths[0] - 1
    source = report.remapped['stages.0.3.candidates.1.conv_pw.weight']['from']
    assert source == f'blocks.1.{seed_last}.conv_pw.weight'
    features = supernet(torch.randn(2, 3, 64, 64))
    timm_features = timm.create_model(name, features_only=True, out_indices=(1, 2, 3, 4))
    assert [f.shape[1] for f in features] == timm_features.feature_info.channels()
    assert supernet.strides == timm_features.feature_info.reduction()
    assert last_stage >= 4


def test_seeds_that_cannot_be_mapped_get_one_line():
    with pytest.raises(NasError, match=r'block blocks\.2\.0 \(ir_r1_k3\.5\.7.*mixed kernels k3\.5\.7'):
        SearchLayout(seed_definition('mixnet_s'), depths=(4,) * 6)
    with pytest.raises(NasError, match='unknown timm model'):
        seed_definition('mobilenetv2_1000')
    with pytest.raises(NasError, match='5 searchable stages'):
        SearchLayout(seed_definition('mobilenetv3_large_100'), depths=(4,) * 6)


def test_published_presets_are_the_official_searches_and_build_in_timm():
    layout = SearchLayout(seed_definition('mobilenetv2_100'))
    official_retinanet = [['k3_e6', 'k3_e6', 'skip', 'skip'], ['k7_e6', 'k5_e6', 'skip', 'skip'],
                          ['k3_e6', 'k5_e6', 'k7_e6', 'k3_e6'], ['k5_e6', 'k7_e6', 'skip', 'skip'],
                          ['k7_e6', 'k7_e6', 'k7_e3', 'k7_e6'], ['k7_e6']]
    assert layout.arch_def(official_retinanet)[1:] == PUBLISHED['fna_retinanet_mobilenetv2'][2]
    for name in PUBLISHED:
        model = timm.create_model(name, features_only=True, out_indices=(1, 2, 3, 4))
        assert model.feature_info.channels() == [24, 32, 96, 320]


def test_derived_network_is_a_timm_model_that_loads_the_remapped_weights(seed_files):
    supernet = FNASuperNet(dict(name='mobilenetv2_100'), arch_seed=3)
    with torch.no_grad():
        for logits in supernet.arch_params.logits.values():
            logits.normal_(generator=torch.Generator().manual_seed(1))
    ops = supernet.derived_ops()
    assert any('skip' in stage for stage in ops), 'the drawn logits should remove a layer'
    arch = supernet.derived_arch()
    kept = [sum(op != 'skip' for op in stage) for stage in ops]
    assert [len(stage) for stage in arch['arch_def'][1:]] == kept
    model = timm.create_model('fna_adapted', arch=arch, num_classes=0)
    state, report = remap_into_adapted(arch, dict(name='mobilenetv2_100',
                                                  weights=seed_files['mobilenetv2_100']))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= set(report.kept_init)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1280)


def test_adapted_network_with_the_supernet_weights_computes_the_derived_path():
    """adapted_init='supernet': the chosen ops' weights move into the timm network,
    which then computes exactly what the super network's derived path computes."""
    from backbones.fna.search_task import inherit_from_supernet
    from conftest import randomize_batch_norms
    supernet = FNASuperNet(dict(name='mobilenetv2_100'), depths=(2, 2, 2, 2, 2, 1),
                           searchable_norm='seed').eval()
    randomize_batch_norms(supernet, seed=0)
    with torch.no_grad():
        for logits in supernet.arch_params.logits.values():
            logits.normal_(generator=torch.Generator().manual_seed(2))
    arch = supernet.derived_arch()
    fresh = build_adapted(arch, num_classes=0).state_dict()
    state, report = inherit_from_supernet(supernet, arch, fresh)
    assert report.remapped and all(key.startswith(('conv_head', 'bn2')) for key in report.kept_init)
    network = build_adapted(arch, features_only=True, out_indices=(1, 2, 3, 4)).eval()
    network.load_state_dict({key: state[key] for key in network.state_dict()})
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), supernet.derived_path():
        ours = supernet(images)
        theirs = network(images)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))


def _detection_batch():
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(batch_size=2, image_shapes=(3, 64, 64), num_items=[2, 3], num_classes=2)


def _segmentation_batch():
    from mmseg.structures import SegDataSample
    generator = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                             pad_shape=(64, 64)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 64, 64), generator=generator))
        samples.append(sample)
    inputs = [torch.randint(0, 255, (3, 64, 64), generator=generator, dtype=torch.uint8)
              for _ in samples]
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('scope, config, batch', [
    ('mmdet', 'configs/_base_/models/retinanet_fna_supernet.py', _detection_batch),
    ('mmseg', 'configs/_base_/models/deeplabv3_fna_supernet.py', _segmentation_batch)])
def test_super_network_trains_a_step_in_mmdet_and_mmseg(scope, config, batch, seed_files):
    from mmengine.registry import DefaultScope
    from mmengine.registry import MODELS as ROOT_MODELS
    cfg = Config.fromfile(config)
    cfg.model.backbone.seed.weights = seed_files['mobilenetv2_100']
    cfg.model.backbone.depths = (2, 2, 2, 2, 2, 1) if scope == 'mmdet' else (2, 2, 3, 3, 2, 1)
    if scope == 'mmdet':
        cfg.model.bbox_head.num_classes = 2
    else:
        cfg.model.decode_head.num_classes = 3
        cfg.model.data_preprocessor.size = (64, 64)
    with DefaultScope.overwrite_default_scope(scope):
        model = ROOT_MODELS.build(cfg.model)
        model.init_weights()
        before = model.backbone.stages[0][0].candidates[0].conv_pw.weight.detach().clone()
        optimizer = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
        model.backbone.arch_params.uniform = True
        model.backbone.arch_params.resample(0)
        losses = model.train_step(batch(), optimizer)
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    weights = model.backbone.arch_params.sampled_indices('first')
    changed = not torch.equal(before, model.backbone.stages[0][0].candidates[0].conv_pw.weight)
    assert changed == (int(weights[0]) == 0)  # only the sampled candidate trains


def test_expected_cost_is_the_softmax_weighted_table_and_reaches_alpha():
    from backbones.fna.costs import cost_table, expected_cost
    supernet = FNASuperNet(dict(name='mobilenetv2_100'), depths=(2, 1, 1, 1, 1, 1))
    table = cost_table(supernet, (64, 64))['table']
    assert len(table) == 7 and table[1][-1] == 0.0  # a skip costs nothing
    assert all(value > 0 for row in table for value in row[:6])
    assert table[0][1] > table[0][0]  # e6 costs more than e3 at the same kernel
    # Uniform alpha (zero logits): the mean candidate cost of every layer, summed.
    with torch.no_grad():
        for logits in supernet.arch_params.logits.values():
            logits.zero_()
    cost = expected_cost(supernet, table)
    assert cost.item() == pytest.approx(sum(sum(row) / len(row) for row in table), rel=1e-6)
    cost.backward()
    assert supernet.arch_params.logits['first'].grad.abs().sum() > 0



def test_latency_table_is_timed_interleaved_and_checked_against_whole_adapted_networks():
    """By CPU time on one thread (the machine's other jobs do not count), the sums of a
    latency table's parts stay within 50% of sampled adapted networks timed whole."""
    from backbones.fna.costs import cost_table
    supernet = FNASuperNet(dict(name='mobilenetv2_100'), depths=(2, 1, 1, 1, 1, 1))
    with one_torch_thread():
        document = cost_table(supernet, (64, 64), metric='latency', clock='thread', repeats=3,
                              warmup=1, check_networks=3)
    assert all(value > 0 for row in document['table'] for value in row[:6])
    assert document['table'][1][-1] == 0.0  # a skip costs nothing
    provenance = document['provenance']
    assert provenance['unit'] == 'ms' and provenance['threads'] == 1
    assert provenance['clock'] == 'thread' and provenance['repeats'] == 3
    assert provenance['device'].startswith('cpu') and provenance['torch'] == torch.__version__
    # The stem and the fixed stages every network runs, timed with the candidates.
    assert set(document['fixed_ms']) == {'stem', 'fixed.0'} and all(
        value > 0 for value in document['fixed_ms'].values())
    error = document['estimate_error']
    assert len(error['networks']) == 3
    for check in error['networks']:
        assert check['arch']['seed'] == 'mobilenetv2_100'
        assert check['estimated_ms'] > sum(document['fixed_ms'].values()) and check['measured_ms'] > 0
    assert error['mean_pct'] <= error['worst_pct'] < 50, error

    with pytest.raises(NasError, match="clock='thread' times one CPU thread"):
        with one_torch_thread():
            torch.set_num_threads(2)
            cost_table(supernet, (64, 64), metric='latency', clock='thread')
    with pytest.raises(NasError, match='a madds table takes no timing settings'):
        cost_table(supernet, (64, 64), clock='thread')
