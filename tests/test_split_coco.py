"""tools/split_coco.py: a deterministic, disjoint, complete train / held-out split of COCO."""
import json

import pytest

from conftest import run_tool, tool_main
from detection.coco_split import split_paths, write_split
from nas_tasks.errors import NasError

NUM_IMAGES = 12


def coco_document(num_images: int = NUM_IMAGES) -> dict:
    """A small COCO file: every image has two annotations, one image has none."""
    images = [{'id': 100 + i, 'file_name': f'{i:06d}.jpg', 'width': 64, 'height': 48}
              for i in range(num_images)]
    annotations = [{'id': 1000 + 2 * i + j, 'image_id': image['id'], 'category_id': 1 + j,
                    'bbox': [1, 2, 10, 10], 'area': 100, 'iscrowd': 0}
                   for i, image in enumerate(images[1:]) for j in range(2)]
    return {'info': {'description': 'split test'}, 'licenses': [{'id': 1, 'name': 'free'}],
            'images': images, 'annotations': annotations,
            'categories': [{'id': 1, 'name': 'square'}, {'id': 2, 'name': 'disc'}]}


@pytest.fixture
def ann_file(tmp_path):
    path = tmp_path / 'annotations' / 'instances_train.json'
    path.parent.mkdir()
    path.write_text(json.dumps(coco_document()))
    return path


def read(path):
    return json.loads(path.read_text())


def test_parts_are_disjoint_and_complete(ann_file):
    written = write_split(ann_file, 4, seed=0)
    assert (written.train, written.held_out) == split_paths(ann_file)
    assert written.train.name == 'instances_train_search_train.json'
    assert written.held_out.name == 'instances_train_search_heldout.json'
    original, train, held = read(ann_file), read(written.train), read(written.held_out)

    train_ids = {image['id'] for image in train['images']}
    held_ids = {image['id'] for image in held['images']}
    assert len(held_ids) == 4 and (written.num_train, written.num_held_out) == (8, 4)
    assert not train_ids & held_ids
    assert train_ids | held_ids == {image['id'] for image in original['images']}

    for part, ids in ((train, train_ids), (held, held_ids)):
        assert all(ann['image_id'] in ids for ann in part['annotations'])
        for key in ('categories', 'info', 'licenses'):
            assert part[key] == original[key]
    annotation_ids = [ann['id'] for ann in train['annotations'] + held['annotations']]
    assert sorted(annotation_ids) == sorted(ann['id'] for ann in original['annotations'])
    # Each part keeps the file's order.
    assert [image['id'] for image in train['images']] == sorted(train_ids)


def test_same_seed_gives_identical_bytes_another_seed_another_split(ann_file, tmp_path):
    first = write_split(ann_file, 4, seed=3, out_dir=tmp_path / 'a')
    again = write_split(ann_file, 4, seed=3, out_dir=tmp_path / 'b')
    assert first.train.read_bytes() == again.train.read_bytes()
    assert first.held_out.read_bytes() == again.held_out.read_bytes()
    other = write_split(ann_file, 4, seed=4, out_dir=tmp_path / 'c')
    assert read(other.held_out)['images'] != read(first.held_out)['images']


def test_a_larger_held_out_part_contains_a_smaller_one(ann_file, tmp_path):
    small = read(write_split(ann_file, 2, seed=0, out_dir=tmp_path / 's').held_out)
    large = read(write_split(ann_file, 6, seed=0, out_dir=tmp_path / 'l').held_out)
    assert {i['id'] for i in small['images']} < {i['id'] for i in large['images']}


def test_fraction_of_images(ann_file, tmp_path):
    written = write_split(ann_file, 0.25, seed=0, out_dir=tmp_path)
    assert (written.num_train, written.num_held_out) == (9, 3)


@pytest.mark.parametrize('held_out, expected', [
    (NUM_IMAGES, 'cannot hold out 12 of 12 images'),
    (50, 'cannot hold out 50 of 12 images'),
    (0, 'cannot hold out 0 of 12'),
    (1.5, 'fraction must lie in (0, 1), got 1.5'),
    (0.0, 'fraction must lie in (0, 1)'),
])
def test_bad_sizes(ann_file, held_out, expected):
    with pytest.raises(NasError) as error:
        write_split(ann_file, held_out, seed=0)
    assert expected in str(error.value)


def test_annotation_of_an_unknown_image(tmp_path):
    document = coco_document()
    document['annotations'][0]['image_id'] = 7
    path = tmp_path / 'orphan.json'
    path.write_text(json.dumps(document))
    with pytest.raises(NasError) as error:
        write_split(path, 2, seed=0)
    assert 'image_id 7' in str(error.value)
    assert not split_paths(path)[0].exists()


def split_coco(*args: str) -> int:
    """tools/split_coco.py's main in this process."""
    return tool_main('split_coco')(list(args))


def test_cli_writes_the_same_split_as_the_function(ann_file, tmp_path, capsys):
    assert split_coco(str(ann_file), '--held-out', '0.25', '--seed', '5',
                      '--out-dir', str(tmp_path / 'cli')) == 0
    expected = write_split(ann_file, 0.25, seed=5, out_dir=tmp_path / 'direct')
    for name in (expected.train.name, expected.held_out.name):
        assert (tmp_path / 'cli' / name).read_bytes() == (tmp_path / 'direct' / name).read_bytes()
    assert '3 images (held out' in capsys.readouterr().out


def test_cli_bad_input_is_one_line_and_exit_status_2(tmp_path):
    """The one subprocess of the tool."""
    path = tmp_path / 'instances.json'
    result = run_tool(['python', 'tools/split_coco.py', str(path), '--held-out', '2'])
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr, result.stderr[-2000:]
    [line] = result.stderr.strip().splitlines()
    assert line.startswith('error: annotation file not found') and str(path) in line, line


@pytest.mark.parametrize('content, held_out, expected', [
    ('{"images": [', '2', 'cannot read'),
    ('{"images": []}', '2', "is not a COCO annotation file: it has no 'annotations' list"),
    (json.dumps(coco_document()), '13', 'cannot hold out 13 of 12 images'),
    (json.dumps(coco_document()), '1.0', 'fraction must lie in (0, 1), got 1.0'),
])
def test_cli_bad_input_is_one_line(tmp_path, content, held_out, expected):
    path = tmp_path / 'instances.json'
    path.write_text(content)
    with pytest.raises(NasError) as error:
        split_coco(str(path), '--held-out', held_out)
    line = str(error.value)
    assert expected in line and '\n' not in line, line
    assert str(path) in line or 'hold out' in line or 'fraction' in line
    assert not split_paths(path)[1].exists()
