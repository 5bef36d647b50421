"""The paper's experiments, on top of the product core (lf_core): nothing in the core
imports this package.

    data        manifests (path,label[,group]) and the fixed group-disjoint splits
    projectors  face crops -> codes: StyleGAN W+, PCA, VQ-VAE-2 indices, the crops themselves
    extract     manifest -> folder of codes, resumable
    evaluate    detector metrics; training / evaluating detectors on extracted codes
    baselines   the CNN baselines (MesoNet-4, EfficientNet-B0, Xception) on aligned crops
    bench       `lf bench`: Table 1, reconstruction, per-row accuracy, few-shot -> RESULTS.md
    train_gen   training the embedded compact generator + encoder
    vqvae       the compact VQ-VAE-2 of the vqvae projector and its training
"""
