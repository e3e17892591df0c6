"""DifferentiableSearchTask, the base of differentiable tasks, on mmdet's toy COCO: halves
of the one parsed training split (so mmdet's AspectRatioBatchSampler loads them),
held-out evaluation by the config's CocoMetric, the record, the export and its refusals."""
import json

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData
from torch import nn

from nas_tasks.builder import apply_data_root
from nas_tasks.differentiable import ArchParameters, DifferentiableTrainer, MixedOp
from nas_tasks.differentiable.task import DifferentiableSearchTask
from nas_tasks.errors import NasError

SCORE = 'coco/bbox_mAP'
NUM_OPS = 3


class ToyDetectionSearchModel(nn.Module):
    """A mixed edge over each image's mean colour, regressing its number of objects; its
    test_step 'detects' the ground-truth boxes, so the evaluator must find mAP 1."""

    def __init__(self):
        super().__init__()
        self.arch_params = ArchParameters({'alpha': (1, NUM_OPS)}, init_scale=0.5, seed=0)
        self.edge = MixedOp([nn.Linear(3, 3), nn.Sequential(nn.Linear(3, 3), nn.Tanh()),
                             nn.Identity()])
        self.head = nn.Linear(3, 1)

    def forward(self, batch):
        colours = torch.stack([image.float().mean((1, 2)) / 255 for image in batch['inputs']])
        counts = torch.tensor([float(len(s.gt_instances)) for s in batch['data_samples']])
        weights, active = self.arch_params.op_weights('alpha')
        features = self.edge(colours, weights[0], None if active is None else int(active[0]))
        return ((self.head(features).squeeze(-1) - counts) ** 2).mean()

    def test_step(self, batch):
        samples = batch['data_samples']
        for sample in samples:
            scale = torch.tensor(sample.scale_factor).repeat(2)
            truth = sample.gt_instances
            sample.pred_instances = InstanceData(bboxes=truth.bboxes.tensor / scale,
                                                 scores=torch.ones(len(truth)), labels=truth.labels)
        return samples


class ToyDetectionSearch(DifferentiableSearchTask):
    score_name = SCORE
    default_scope = 'mmdet'

    def build_search_model(self, train_set):
        self.classes = train_set.metainfo['classes']
        return ToyDetectionSearchModel()

    def decode(self, model):
        return dict(op=int(model.arch_params.softmax('alpha')[0].argmax()))

    def costs(self, arch):
        return dict(params=float(arch['op'] + 10))

    def export(self, record, work):
        (work / 'exported.json').write_text(json.dumps(record['arch']))


TRAINER = dict(epochs=2, arch_start_epoch=1, single_path=True, arch_paths='all', log_interval=1,
               dataloader=dict(batch_size=2, batch_sampler=dict(type='AspectRatioBatchSampler')))


def toy_config(toy_coco) -> Config:
    cfg = Config.fromfile('configs/_base_/datasets/toy_coco_detection.py')
    apply_data_root(cfg, f'{toy_coco}/')
    cfg.val_evaluator = dict(type='CocoMetric', ann_file=f'{toy_coco}/annotations/instances_val.json',
                             metric='bbox')
    return cfg


def image_ids(dataset):
    return [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]


def test_halves_do_not_use_mmengines_process_wide_copy_memo(toy_coco):
    """mmengine's BaseDataset._copy_without_annotation defaults to one memo dict for the
    process: once an object it copied is freed, a new object at its address copies to
    the old copy (the suite once saw a CocoDataset as a half's pipeline). A stale entry
    planted for the pipeline's address stands for that reuse."""
    from mmengine.dataset import BaseDataset
    shared_memo = BaseDataset._copy_without_annotation.__defaults__[0]
    with DefaultScope.overwrite_default_scope('mmdet'):
        task = ToyDetectionSearch(toy_config(toy_coco), TRAINER)
        train_set = task.build_dataset('train')
        shared_memo[id(train_set.pipeline)] = 'the copy of a freed object'
        for half in task.halves(train_set):
            assert callable(half.pipeline) and half.pipeline is not train_set.pipeline
            assert half[0]['inputs'].shape[0] == 3  # its samples go through the pipeline
    assert not shared_memo  # nothing kept alive for the life of the process


def test_halves_are_datasets_of_the_config_split_by_the_seed(toy_coco, tmp_path):
    cfg = toy_config(toy_coco)
    with DefaultScope.overwrite_default_scope('mmdet'):
        task = ToyDetectionSearch(cfg, TRAINER, arch_fraction=0.25)
        train_set = task.build_dataset('train')
        weight, arch = task.halves(train_set)
        assert type(weight) is type(arch) is type(train_set)
        assert (len(weight), len(arch)) == (12, 4)  # a quarter of 16 images
        assert set(image_ids(weight)).isdisjoint(image_ids(arch))
        assert sorted(image_ids(weight) + image_ids(arch)) == sorted(image_ids(train_set))
        again = task.halves(train_set)
        assert [image_ids(h) for h in again] == [image_ids(weight), image_ids(arch)]
        other = ToyDetectionSearch(cfg, TRAINER, arch_fraction=0.25, seed=1)
        assert image_ids(other.halves(train_set)[1]) != image_ids(arch)

        # mmdet's AspectRatioBatchSampler reads get_data_info of a half (a torch Subset has none).
        trainer = DifferentiableTrainer(ToyDetectionSearchModel(), weight, arch,
                                        work_dir=tmp_path, **TRAINER)
        assert type(trainer.weight_loader.loader.batch_sampler).__name__ == 'AspectRatioBatchSampler'
        batches = list(trainer.weight_loader.for_pass(0))
        assert [len(b['inputs']) for b in batches] == [2] * 6
        loaded = [s.img_id for b in batches for s in b['data_samples']]
        assert sorted(loaded) == sorted(image_ids(weight))

        # A config that already picks images: the halves split what it picks.
        picked = cfg.train_dataloader.dataset.copy()
        picked['indices'] = [15, 3, 8, 0, 11, 6]
        picked_set = task._build_dataset(picked)
        halves = ToyDetectionSearch(cfg, TRAINER).halves(picked_set)
        assert sorted(image_ids(halves[0]) + image_ids(halves[1])) == sorted(image_ids(picked_set))


def test_a_toy_detection_search_runs_end_to_end_through_the_base(toy_coco, tmp_path):
    """Trained with AspectRatioBatchSampler batches of 2 (4 iterations an epoch on 8
    images), scored 1.0 by CocoMetric on the val split, exported on rank 0; a resume
    of the finished search only exports again."""
    task = ToyDetectionSearch(toy_config(toy_coco), TRAINER)
    record = task.run(tmp_path)
    assert record['score'] == record['metrics'][SCORE] == 1.0
    assert record['arch'] in [dict(op=k) for k in range(NUM_OPS)]
    assert record['costs'] == dict(params=record['arch']['op'] + 10.0)
    assert json.loads((tmp_path / 'exported.json').read_text()) == record['arch']
    state = torch.load(tmp_path / 'search_state.pth', weights_only=True)
    assert [r['step'] for r in state['history']] == [4, 8]
    assert state['history'][0]['arch_loss'] is None and state['history'][1]['arch_loss'] > 0
    assert state['result'] == record
    assert task.classes == ('square', 'disc')

    (tmp_path / 'exported.json').unlink()
    again = ToyDetectionSearch(toy_config(toy_coco), TRAINER)
    assert again.run(tmp_path, resume=True) == record
    assert json.loads((tmp_path / 'exported.json').read_text()) == record['arch']
    assert 'exporting its result again' in (tmp_path / 'search.log').read_text()


def test_an_evaluator_without_the_score_is_one_line(toy_coco):
    task = ToyDetectionSearch(toy_config(toy_coco), TRAINER)
    assert task.score_of({SCORE: 0.5, 'coco/bbox_mAP_50': 0.7}) == 0.5
    with pytest.raises(NasError, match="the val_evaluator reports no 'coco/bbox_mAP' \\(it gave "
                                       "\\['coco/bbox_mAP_50'\\]\\)") as error:
        task.score_of({'coco/bbox_mAP_50': 0.7})
    assert '\n' not in str(error.value)


@pytest.mark.parametrize('change, message', [
    (dict(drop='val_evaluator'), "the config has no 'val_evaluator'; ToyDetectionSearch needs mmdet"),
    (dict(trainer=dict(batch_size=2)), "trainer has no setting 'batch_size'.*dataloader"),
    (dict(arch_fraction=1.0), 'arch_fraction must be a number between 0 and 1'),
])
def test_bad_task_settings_are_one_line(toy_coco, change, message):
    cfg = toy_config(toy_coco)
    if 'drop' in change:
        cfg.pop(change['drop'])
    with pytest.raises(NasError, match=message) as error:
        ToyDetectionSearch(cfg, change.get('trainer', TRAINER),
                           arch_fraction=change.get('arch_fraction', 0.5))
    assert '\n' not in str(error.value)


def test_a_split_too_small_for_two_halves_is_one_line(toy_coco, tmp_path):
    cfg = toy_config(toy_coco)
    cfg.train_dataloader.dataset['indices'] = 3
    task = ToyDetectionSearch(cfg, TRAINER, arch_fraction=0.1)
    with pytest.raises(NasError, match='the training split has 3 image\\(s\\); arch_fraction 0.1 '
                                       'leaves one half empty') as error:
        task.run(tmp_path / 'w')
    assert '\n' not in str(error.value)


def mirrored_draws(dataset, draws: int = 4) -> list[bool]:
    """For ``draws`` loads of every sample of ``dataset``: whether its input image is the
    image on disk mirrored left-right (it must be the image itself otherwise)."""
    np.random.seed(0)  # mmcv's RandomFlip draws from numpy's global generator
    mirrored = []
    for _ in range(draws):
        for index in range(len(dataset)):
            sample = dataset[index]
            on_disk = torch.from_numpy(mmcv.imread(sample['data_samples'].img_path)).permute(2, 0, 1)
            assert sample['inputs'].shape == on_disk.shape  # the toy images need no resize
            is_mirrored = torch.equal(sample['inputs'], on_disk.flip(-1))
            assert is_mirrored or torch.equal(sample['inputs'], on_disk)
            mirrored.append(is_mirrored)
    return mirrored


def test_a_val_weight_pipeline_never_flips_the_weight_half(toy_coco):
    """weight_pipeline='val': the weight half's samples go through the val pipeline (the
    image as it is), the architecture half keeps the training pipeline's random flip;
    by default ('train') both halves are flipped at random."""
    cfg = toy_config(toy_coco)
    with DefaultScope.overwrite_default_scope('mmdet'):
        train_set = ToyDetectionSearch(cfg, TRAINER).build_dataset('train')
        weight, arch = ToyDetectionSearch(cfg, TRAINER, weight_pipeline='val').halves(train_set)
        assert not any(mirrored_draws(weight))
        assert any(mirrored_draws(arch)) and not all(mirrored_draws(arch))
        default_weight, _ = ToyDetectionSearch(cfg, TRAINER).halves(train_set)
        assert image_ids(default_weight) == image_ids(weight)
        assert any(mirrored_draws(default_weight))
        # The training split itself keeps its pipeline (the halves are copies).
        assert any(mirrored_draws(train_set))


def test_bad_weight_pipelines_are_one_line(toy_coco):
    cfg = toy_config(toy_coco)
    with pytest.raises(NasError, match="weight_pipeline must be 'train' .* got 'test'") as error:
        ToyDetectionSearch(cfg, TRAINER, weight_pipeline='test')
    assert '\n' not in str(error.value)
    cfg.val_dataloader.dataset.pipeline = [step for step in cfg.val_dataloader.dataset.pipeline
                                           if step['type'] != 'LoadAnnotations']
    with pytest.raises(NasError, match="weight_pipeline='val' trains the weights on "
                                       ".*loads no annotations") as error:
        ToyDetectionSearch(cfg, TRAINER, weight_pipeline='val')
    assert '\n' not in str(error.value)
    cfg.val_dataloader.dataset.pipeline = []
    with pytest.raises(NasError, match="weight_pipeline='val' .* but it names none") as error:
        ToyDetectionSearch(cfg, TRAINER, weight_pipeline='val')
    assert '\n' not in str(error.value)
