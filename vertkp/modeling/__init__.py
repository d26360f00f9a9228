"""Models: what vertkp adds to detectron2's Keypoint R-CNN, and what it makes of its output.

* detectron2: ``hrnet`` (timm's HRNet as a backbone, ``build_timm_fpn_backbone`` in
  detectron2's ``BACKBONE_REGISTRY``), ``keypoint_head`` (``VertebraKeypointHead``: sub-pixel
  peaks, ``MODEL.ROI_KEYPOINT_HEAD.SUBPIXEL``, in ``ROI_KEYPOINT_HEAD_REGISTRY``),
  ``test_time_augmentation`` (``KeypointRCNNWithTTA``, configured by detectron2's
  ``TEST.AUG`` keys), ``batch_norm`` (folding for inference). ``vertkp.config`` imports the two
  registered ones, so any config built with ``add_vertkp_config`` can name them.
* numpy only: ``outputs`` (a model's output as arrays, ``ImagePredictions``: the one
  conversion of detectron2's ``Instances``), ``fusion`` (the arithmetic of test-time
  augmentation).
* torch and timm: ``weights``, the initial weights as one ``MODEL.WEIGHTS`` file (the timm
  checkpoint converter, the weights ``vertkp download`` fetches) and the loading of trained ones.

Importing this package imports nothing else: the numpy modules stay torch-free.
"""
