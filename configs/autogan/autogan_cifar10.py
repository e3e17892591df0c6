# AutoGAN search on CIFAR-10 with the official search script's settings
# (exps/autogan_search.sh; see docs/autogan.md). An LSTM controller searches
# the generator's three cells one stage at a time (multi-level search); the
# shared generator and the fixed SNGAN discriminator keep training between
# controller steps, and each architecture is rewarded with its Inception score.
#
# Local files (nothing is downloaded):
#   data/cifar10/cifar-10-batches-py/   CIFAR-10, python version
#   data/weights/weights-inception-2015-12-05-6726825d.pth
#       torch-fidelity's TF-compatible Inception weights
#   python tools/search.py configs/autogan/autogan_cifar10.py --work-dir work_dirs/autogan_cifar10
data_root = 'data/cifar10'
inception_weights_path = 'data/weights/weights-inception-2015-12-05-6726825d.pth'

search_space = dict(type='AutoGANSpace')

# 65 search iterations of 30 controller steps; the stages grow at iterations
# 15 and 35, so stages 0, 1 and 2 (8, 16, 32 px) run 15, 20 and 30 of them.
# At each grow 10 candidates are scored and the best 5 prefixes kept.
controller_steps = 30
strategy = dict(
    type='MultiLevelSearch',
    stage_steps=[15 * controller_steps, 20 * controller_steps, 30 * controller_steps],
    num_candidates=10,
    top_k=5,
    controller=dict(
        batch_size=1,  # one architecture per controller step
        hidden_size=100,
        lr=3.5e-4,
        betas=(0.0, 0.9),
        grad_clip=None,
        baseline_decay=0.9,
        entropy_weight=1e-3,
        entropy_in_reward=True,  # reward = IS + 1e-3 * entropy, as the official update
        detach_entropy=True,  # the official code keeps its gradient, which lowers the entropy
        baseline_reset_steps=controller_steps,  # a fresh baseline every search iteration
        # The official controller: a zero first input, PyTorch's default initialisations.
        first_input='zeros',
        init_range=None,
        allow_repeats=True))

estimator = dict(
    type='AutoGANEstimator',
    # Search widths; Adam 2e-4 (0, 0.9), n_critic 5, batches 128 (G) and 64 (D),
    # dynamic reset on a 500-step loss window with variance below 1e-3.
    gan=dict(gf_dim=128, df_dim=64, latent_dim=128, bottom_width=4, lr=2e-4, betas=(0.0, 0.9),
             n_critic=5, gen_batch_size=128, dis_batch_size=64, reset_window=500,
             reset_threshold=1e-3),
    rounds_per_iteration=controller_steps,
    shared_d_steps=15 * 782,  # 15 epochs of the 50,000 training images at batch 64
    # The final training's dataset config; each rank loads its slice of every batch
    # through a DataLoader with these workers, resized to the stage's 8, 16 or 32 px.
    real_data=dict(type='GANImages', source='cifar10', data_root=data_root, split='train',
                   img_size=32),
    real_data_workers=4,
    # noise='fresh': new latent vectors for every reward, as the official get_is;
    # 'fixed' scores every architecture on one set (docs/autogan.md).
    reward=dict(num_images=5000, splits=10, batch_size=100, noise='fresh',
                extractor=dict(type='InceptionV3Compat', weights_path=inception_weights_path)))

search = dict(seed=0, score_name='IS')

# tools/diagnose.py: K of the search's generators spread over its reward range, and with
# --random N random generators of the space, each trained from scratch by the final
# training (autogan_cifar10_train.py: the official 50,000 G iterations, every one for
# the same number) and scored as the search rewarded them (IS of 5,000 images through
# Inception; FID beside it): N + K trainings as long as the paper's own final one.
diagnose = dict(
    num_candidates=8,
    standalone=dict(type='AutoGANStandaloneTraining',
                    train_config='{{fileDirname}}/autogan_cifar10_train.py'))
