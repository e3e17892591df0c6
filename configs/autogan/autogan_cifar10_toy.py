# The AutoGAN search on the built-in toy CIFAR-10, small enough for a CPU:
# every stage of the multi-level search, shared training at 8, 16 and 32 px,
# rewards from a small classifier trained on the toy classes (the same
# torch-fidelity IS code path as the Inception network), and dynamic resets.
#   python tools/make_toy_data.py cifar10 data/toy_cifar10
#   python tools/train_toy_classifier.py data/toy_cifar10
#   python tools/search.py configs/autogan/autogan_cifar10_toy.py --work-dir work_dirs/autogan_toy
_base_ = ['./autogan_cifar10.py']

data_root = 'data/toy_cifar10'

# 3, 4 and 6 search iterations of 4 controller steps (the official 15/20/30
# iterations scaled down); 4 candidates at each grow, 2 prefixes kept.
controller_steps = 4
strategy = dict(
    stage_steps=[3 * controller_steps, 4 * controller_steps, 6 * controller_steps],
    num_candidates=4,
    top_k=2,
    controller=dict(baseline_reset_steps=controller_steps))

estimator = dict(
    # Narrow networks and small batches. A short reset window and a looser
    # threshold exercise the dynamic reset (and its marks on the plots) in a
    # short run: here the D loss's variance over 20 steps falls below 1e-2
    # within about 60 D steps, where the official 1e-3 over 500 marks a collapse.
    gan=dict(gf_dim=16, df_dim=16, gen_batch_size=32, dis_batch_size=16, reset_window=20,
             reset_threshold=1e-2),
    rounds_per_iteration=controller_steps,
    shared_d_steps=30,
    # The toy set in CIFAR-10's layout (its MD5 sums are not the real ones'); one's own
    # images: real_data=dict(source='folder', data_root=DIR). No loader workers on 2 cores.
    real_data=dict(source='cifar10_batches', data_root=data_root),
    real_data_workers=0,
    reward=dict(num_images=500, splits=10, batch_size=100,
                extractor=dict(_delete_=True, type='ToyClassifier',
                               weights_path=data_root + '/toy_classifier.pth')),
    device='cpu')

# tools/diagnose.py: K of the search's generators spread over its reward range, and
# with --random N random generators of the space, trained from scratch by the final
# training (autogan_cifar10_train_toy.py: every one for the same iterations) and
# scored as the search rewarded them (IS of 500 images through the toy classifier;
# FID beside it). See docs/diagnostics.md and docs/autogan.md.
diagnose = dict(
    num_candidates=8,
    standalone=dict(type='AutoGANStandaloneTraining',
                    train_config='{{fileDirname}}/autogan_cifar10_train_toy.py'))
