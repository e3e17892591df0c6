"""DetNAS step 1: the supernet pre-trains as a classifier, one sampled path per
iteration, and its weights initialise a detector's supernet."""
import math

import pytest
import torch

from backbones.classification import ImageFolderClassification, TopKAccuracy
from backbones.detnas import CHOICE_NAMES, arch_to_choices
from detection.toy_data import make_imagenet
from nas_tasks.errors import NasError

PRETRAIN_CONFIG = 'configs/detnas/detnas_supernet_imagenet_toy.py'
PRETRAINED_DETECTOR_CONFIG = 'configs/detnas/detnas_retinanet_toy_pretrained.py'
TRAIN_ITERS = 10
IMAGE_SIZE = 32


@pytest.fixture(scope='module')
def toy_imagenet(tmp_path_factory):
    """4 classes x 8 train / 4 val images of 32 px."""
    return make_imagenet(tmp_path_factory.mktemp('toy_imagenet'), num_classes=4, per_class=8,
                         num_val_per_class=4, image_size=IMAGE_SIZE)


@pytest.fixture
def one_torch_thread():
    """On a busy 2-core machine, OpenMP threads waiting for each other made a
    training step of this tiny model up to 100x slower; one thread keeps it fast."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pretrain_options(data_root):
    options = {'data_root': f'{data_root}/',
               'train_cfg.max_iters': TRAIN_ITERS, 'train_cfg.val_interval': TRAIN_ITERS,
               'default_hooks.checkpoint.interval': TRAIN_ITERS}
    for split in ('train', 'val', 'test'):
        options[f'{split}_dataloader.dataset.image_size'] = IMAGE_SIZE
        options[f'{split}_dataloader.batch_size'] = 8
    return options


def trained_choices_per_layer(before, after):
    """For each supernet layer, the indices of the candidate blocks whose weights changed."""
    trained = {}
    for name, value in after.items():
        if not torch.equal(before[name], value):
            parts = name.split('.')  # layers.{layer}.choices.{choice}.<rest>
            if parts[0] == 'layers' and parts[2] == 'choices':
                trained.setdefault(int(parts[1]), set()).add(int(parts[3]))
    return trained


def test_pretraining_trains_sampled_paths_and_initialises_retinanet(toy_imagenet, tmp_path,
                                                                     monkeypatch, one_torch_thread):
    from mmdet.registry import MODELS

    from nas_tasks.builder import load_config
    from nas_tasks.runner import build_runner

    work_dir = tmp_path / 'pretrain'
    runner = build_runner(PRETRAIN_CONFIG, str(work_dir), 'none', pretrain_options(toy_imagenet))
    supernet = runner.model.backbone
    initial = {name: p.detach().clone() for name, p in supernet.named_parameters()}
    sampled = []
    set_arch = supernet.set_arch

    def recording_set_arch(arch):
        sampled.append(dict(arch))
        set_arch(arch)

    monkeypatch.setattr(supernet, 'set_arch', recording_set_arch)
    runner.train()

    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == TRAIN_ITERS and all(math.isfinite(loss) for loss in losses)
    assert 0 <= runner.message_hub.get_scalar('val/accuracy/top1').current() <= 100
    assert runner.message_hub.get_scalar('val/accuracy/top5').current() == 100  # 4 classes

    assert len(sampled) == TRAIN_ITERS, 'UniformPathHook did not set a path every iteration'
    assert len({tuple(arch.values()) for arch in sampled}) > 1
    sampled_choices = {}
    for arch in sampled:
        for layer, choice in enumerate(arch_to_choices(arch, 'small')):
            sampled_choices.setdefault(layer, set()).add(CHOICE_NAMES.index(choice))
    trained = trained_choices_per_layer(initial, dict(supernet.named_parameters()))
    assert trained == sampled_choices, 'the trained blocks are not the sampled paths'
    assert any(len(choices) > 1 for choices in trained.values())

    checkpoint = work_dir / 'classifier_weights.pth'
    cfg = load_config(PRETRAINED_DETECTOR_CONFIG,
                      {'model.backbone.init_cfg.checkpoint': str(checkpoint)})
    detector = MODELS.build(cfg.model)
    pretrained = supernet.state_dict()
    assert not all(torch.equal(value, pretrained[name])
                   for name, value in detector.backbone.state_dict().items())
    detector.init_weights()
    loaded = detector.backbone.state_dict()
    assert loaded.keys() == pretrained.keys()
    mismatched = [name for name, value in loaded.items()
                  if not torch.equal(value, pretrained[name])]
    assert not mismatched, f'not loaded from the classifier: {mismatched[:5]}'


def topk_metric(scores, labels, topk=(1, 5)):
    metric = TopKAccuracy(topk=topk)
    samples = [dict(pred_scores=torch.tensor(row), gt_label=torch.tensor(label))
               for row, label in zip(scores, labels)]
    metric.process(None, samples[:2])
    metric.process(None, samples[2:])
    return metric.evaluate(len(samples))


def test_topk_accuracy_on_known_predictions():
    # 6 classes; the true class ranks 1st, 2nd, 5th and 6th.
    scores = [[0.9, 0.1, 0.0, 0.0, 0.0, 0.0],
              [0.5, 0.3, 0.1, 0.05, 0.03, 0.02],
              [0.3, 0.25, 0.2, 0.15, 0.06, 0.04],
              [0.3, 0.25, 0.2, 0.15, 0.06, 0.04]]
    labels = [0, 1, 4, 5]
    assert topk_metric(scores, labels, topk=(1, 2, 5)) == {
        'accuracy/top1': 25.0, 'accuracy/top2': 50.0, 'accuracy/top5': 75.0}


def test_topk_accuracy_clips_k_to_the_number_of_classes():
    scores = [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3]]
    labels = [2, 2, 0]
    assert topk_metric(scores, labels) == {'accuracy/top1': pytest.approx(100 / 3),
                                           'accuracy/top5': 100.0}


def test_missing_image_folder_is_one_clear_line(tmp_path):
    missing = tmp_path / 'imagenet'
    with pytest.raises(NasError) as error:
        ImageFolderClassification(str(missing), split='val')
    message = str(error.value)
    assert str(missing / 'val') in message and '\n' not in message


def test_dataset_yields_normalised_images_and_class_labels(toy_imagenet):
    dataset = ImageFolderClassification(str(toy_imagenet), split='val', image_size=IMAGE_SIZE,
                                        train=False)
    image, label = dataset[len(dataset) - 1]
    assert len(dataset) == 16 and dataset.metainfo['classes'] == ('cross', 'disc', 'square',
                                                                 'triangle')
    assert image.shape == (3, IMAGE_SIZE, IMAGE_SIZE) and image.min() < 0 and label == 3
