"""Fine-tune a trained checkpoint with waveform augmentation: the trainer, started from given weights.

    python experiments/voices/finetune_aug.py INIT.npz CONFIG [--key=value ...]

``scratchasr train`` always starts from the seed's random weights (or resumes a run with the same
configuration); it has no "initialise from" option. This script runs the same ``trainer.train`` with
``CONFIG`` and the overrides (for instance the augmentation options), after replacing the model
builder by one that loads ``INIT.npz``'s weights into the freshly built model, so everything else
(data, features, optimiser state from zero, schedule, dev scoring, checkpoints, ``--resume``) is the
trainer's. The model options must give the same parameter shapes as ``INIT.npz`` (checked by
``load_state_dict``). A resumed fine-tuning run loads its own checkpoint over these weights, as usual.

Used in experiments/voices/AUGMENT.md ("Fine-tuning the clean model with augmentation").
"""

from __future__ import annotations

import sys

from scratchasr import models
from scratchasr.cli import load_config_file
from scratchasr.io import load_checkpoint
from scratchasr.trainer import TrainConfig, train


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    flags = [a for a in argv if a in ("--resume", "--overwrite")]
    args = [a for a in argv if a not in flags]
    if len(args) < 2:
        raise SystemExit(__doc__.split("\n\n")[1])
    init, config, overrides = args[0], args[1], args[2:]
    params, _, meta = load_checkpoint(init)
    state = {k: v for k, v in params.items() if not k.startswith("frontend.")}
    build = models.build

    def build_from_init(name, **kwargs):
        if name != meta["model"]["name"]:
            raise ValueError(f"model: {name!r} differs from the init checkpoint's {meta['model']['name']!r}")
        model = build(name, **kwargs)
        model.load_state_dict(state)
        print(f"model initialised from {init} (epoch {meta.get('best_epoch', '?')} of its run)")
        return model

    models.build = build_from_init
    cfg = TrainConfig.from_overrides(load_config_file(config), overrides)
    summary = train(cfg, resume="--resume" in flags, overwrite="--overwrite" in flags)
    print(f"best dev {100 * summary['best_dev']:.2f} % after {summary['epochs']} epochs, "
          f"{summary['minutes']:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
