"""Benchmarks: ``vertkp benchmark [speed|learning|data|tta|scale]`` (``python tools/benchmark.py``).

    cli       the command: every subcommand's flags and checks, main (speed when no subcommand
              is given): a plain table of subcommands, whose runners import their module
    speed     inference latency (model alone, end to end), vertkp's inference against
              detectron2's DefaultPredictor, training s/iter, peak memory
    profile   where one prediction's time goes, per stage (speed uses it)
    tta       test-time augmentation and sub-pixel ablation, flag calibration
    scale     predict's peak memory against the number of images
    learning  train the phantom configs from scratch, evaluate: the curve and the target
    data      the converter's and the evaluator's throughput (speed measures them too), and
              the benchmarks' phantom set
    runs      the detectron2 side of speed and learning: the config on the phantom set,
              logs, the trainer timed by detectron2's IterationTimer, FrozenBN calibration
    device    the torch and process side of speed, learning and scale, without detectron2:
              threads, the machine's torch part (threads, GPU, CUDA), peak memory, a fresh process
    report    the tables, the machine without torch, the summary statistics (numpy only)

Each writes OUT/benchmark.json (``vertkp.files.write_json``) and prints its table.
Split by what they import: ``cli``, ``data`` and ``report`` (and this package) load
neither torch nor detectron2, so ``vertkp benchmark data`` runs without them; ``speed``
and ``device`` import torch, ``runs`` and ``learning`` torch and detectron2, at their top
(``speed`` imports ``runs`` where detectron2 is installed: its convert and evaluate
phases run without it).
"""
