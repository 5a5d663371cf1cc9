"""The default recipe: the settings a user leaves open follow the corpus and the budget.

A run's budget is a number of optimiser steps (--max-steps), passes over the training split
(--epochs) or seconds (--max-time). Two things about it decide the settings below:

  - its length in seconds, when it is a time budget: a short one (the README's quickstart is
    150 s) buys few steps of the 3 x 256 model, too few to learn words, so it gets a smaller,
    faster model that takes several times as many steps in the same time;
  - how many times it passes over the training split (`passes`: steps x batch x chunk over the
    symbols, or seconds x the size's speed): dropout only pays once the data repeats. Under one
    pass every chunk is new text, so dropout would only slow learning down; a short time budget
    goes without it too.

Evaluation is part of a time budget, so a short one evaluates less of the held-out split and less
often: the periodic estimate stops taking a noticeable share of the time.

Every rule is a pure function of (symbols, budget, what was given), unit-tested, and `choose`
reports in one line what it chose and why. A setting not given is None (in TrainConfig and in the
model's options); `settle` is the one place that gives each its value, the recipe's or the
library default. An option the user gives is never changed, and a resumed run keeps the settings
it started with (they are in its checkpoint, so nothing here is asked again).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The sizes the recipe picks between, with their speed in training symbols per second on the
# 2-core machine the figures of the README come from (metrics.jsonl's chars_per_s, which counts
# evaluations): used only to estimate how many passes a time budget buys, so a machine twice as
# fast or slow moves the dropout rule by one step at most.
FULL = (3, 256)                  # layers, hidden units: the model of every budget but a short time
SMALL = (2, 128)                 # a short time budget's
SPEED = {FULL: 13_000, SMALL: 55_000}   # 2 x 128 ran 4.5x 3 x 256's speed side by side (32,000 against 7,100)
SHORT_TIME_S = 300               # a --max-time below this is a short budget

# Dropout by the passes the budget buys (the largest threshold not above it wins): none while
# every chunk is new text, the 0.2 measured on tinyshakespeare's many passes once it repeats.
DROPOUT_BY_PASSES = ((0.0, 0.0), (1.0, 0.2))

# A short time budget's learning rate: on the quickstart 2 x 128 reached 2.46 bits at 3e-3 and
# 2.25 at 6e-3 (a smaller model takes a larger step; the cosine decay still ends at a tenth).
SHORT_LR = 6e-3

# Evaluation in a short time budget: a smaller estimate, less often, and on the clock too
# (SHORT_EVALS times in the budget, or every SHORT_EVAL_EVERY steps, whichever comes first), so a
# slow machine's run has a curve of as many points as a fast one's.
SHORT_VAL_SYMBOLS = 50_000
SHORT_EVAL_EVERY = 500
SHORT_EVALS = 10

MODEL_FIELDS = ("num_layers", "hidden_size", "dropout")
TRAIN_FIELDS = ("lr", "eval_every", "eval_interval", "val_symbols")


@dataclass(frozen=True)
class Choice:
    """What the recipe chose (only fields left open), and why, in words."""

    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    reasons: tuple = ()

    def line(self) -> str:
        """One line for the start of a run ('' when nothing was left open)."""
        return "recipe: " + "; ".join(self.reasons) if self.reasons else ""


def budget_passes(train_symbols: int, batch_size: int, seq_length: int, max_steps=None, max_time=None,
                  epochs=None, size=FULL) -> float | None:
    """How many times the budget passes over the training split (the smallest bound wins;
    None when there is no bound, which means charlstm's 10 epochs). A size the recipe does not
    pick between is taken at 3 x 256's speed: the estimate only decides a threshold."""
    symbols = max(1, train_symbols)
    candidates = []
    if epochs is not None:
        candidates.append(float(epochs))
    if max_steps is not None:
        candidates.append(max_steps * batch_size * seq_length / symbols)
    if max_time is not None:
        candidates.append(max_time * SPEED.get(size, SPEED[FULL]) / symbols)
    return min(candidates) if candidates else None


def dropout_for(passes: float | None) -> float:
    if passes is None:
        passes = 10.0                    # no bound: ten epochs
    chosen = DROPOUT_BY_PASSES[0][1]
    for threshold, rate in DROPOUT_BY_PASSES:
        if passes >= threshold:
            chosen = rate
    return chosen


def choose(train_symbols: int, batch_size: int, seq_length: int, max_steps=None, max_time=None, epochs=None,
           settings: dict | None = None, fixed_model: bool = False) -> Choice:
    """Values for the settings of MODEL_FIELDS and TRAIN_FIELDS that are None in `settings` (or
    absent from it): those are open, the others were given. fixed_model: the model's shape and
    dropout come from elsewhere (--init-from)."""
    settings = settings or {}
    given = {name for name in (*MODEL_FIELDS, *TRAIN_FIELDS) if settings.get(name) is not None}
    model, train, reasons = {}, {}, []
    short = max_time is not None and max_time < SHORT_TIME_S and (max_steps is None and epochs is None)
    size = FULL
    if not fixed_model:
        open_size = "num_layers" not in given and "hidden_size" not in given
        if short and open_size:
            size = SMALL
            model["num_layers"], model["hidden_size"] = SMALL
            reasons.append(f"{SMALL[0]} x {SMALL[1]} (a time budget under {SHORT_TIME_S} s buys few steps of "
                           f"{FULL[0]} x {FULL[1]})")
        passes = budget_passes(train_symbols, batch_size, seq_length, max_steps, max_time, epochs, size)
        if "dropout" not in given:
            if short:
                # The quickstart's best measured configuration has none (README, "Default recipe"): a
                # budget this short is over before the model can learn its data by heart, and at
                # 150 s dropout's effect was no larger than the machine's minute-to-minute speed.
                model["dropout"] = 0.0
                reasons.append("dropout 0 (a short time budget ends before the model could learn the data "
                               "by heart)")
            else:
                model["dropout"] = dropout_for(passes)
                shown = ("no bound: 10 epochs" if passes is None else
                         f"the budget passes over the data about {_times(passes)} times")
                reasons.append(f"dropout {model['dropout']:g} ({shown})")
    if short:
        if "lr" not in given and size == SMALL:
            train["lr"] = SHORT_LR
            reasons.append(f"lr {SHORT_LR:g} (the small model takes larger steps)")
        if "val_symbols" not in given:
            train["val_symbols"] = SHORT_VAL_SYMBOLS
        if "eval_every" not in given:
            train["eval_every"] = SHORT_EVAL_EVERY
        if "eval_interval" not in given and "eval_every" not in given:
            train["eval_interval"] = max_time / SHORT_EVALS
        if "val_symbols" not in given or "eval_every" not in given:
            every = train.get("eval_every", "the given")
            when = (f"every {train['eval_interval']:g} s or {every} steps" if "eval_interval" in train
                    else f"every {every} steps")
            symbols = train.get("val_symbols")
            reasons.append(f"validation {when} on {'the given' if symbols is None else f'{symbols:,}'} "
                           "held-out symbols (evaluation is part of a time budget)")
    return Choice(model=model, train=train, reasons=tuple(reasons))


def settle(config, model_options: dict, train_symbols: int, fixed_model: bool = False, use_recipe: bool = True):
    """(config, model options, the recipe's line): every setting left None in `config` (a
    TrainConfig) and in `model_options` (ModelConfig's fields) gets its value, the recipe's when
    use_recipe, else the library default (TrainConfig's; ModelConfig's, by leaving it out of the
    model options returned)."""
    given_model = {k: v for k, v in model_options.items() if v is not None}
    if not use_recipe:
        return config.filled(), given_model, ""
    settings = {**model_options, **{name: getattr(config, name) for name in TRAIN_FIELDS}}
    choice = choose(train_symbols, config.batch_size, config.seq_length, config.max_steps, config.max_time,
                    config.epochs, settings=settings, fixed_model=fixed_model)
    return config.filled(choice.train), {**choice.model, **given_model}, choice.line()


def _times(passes: float) -> str:
    return f"{passes:,.0f}" if passes >= 10 else f"{passes:.2g}"


__all__ = ["Choice", "choose", "settle", "budget_passes", "dropout_for", "FULL", "SMALL", "SPEED", "SHORT_TIME_S"]
