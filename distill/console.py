"""The trainer's console: its progress bar always, its per-step log lines only when asked.

Every logged step still lands in `log_history.json` and the loss/reward plots; a pipeline that runs
several trainings (the demo) keeps one bar per stage instead of a screen of dictionaries."""


def keep_bar_only(trainer) -> None:
    from transformers.trainer_callback import ProgressCallback

    class BarOnly(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(BarOnly)
