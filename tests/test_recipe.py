"""The default recipe's rules (training/recipe.py): pure functions of the corpus, the budget and
what the user gave; the choice reaches the run, an explicit option wins, a resumed run keeps its own."""

import pytest
from click.testing import CliRunner

from charlstm import cli
from charlstm.training import recipe
from charlstm.training.checkpoint import load_checkpoint

MB = 1_000_000


def test_a_short_time_budget_gets_the_small_model_without_dropout_and_a_lighter_validation():
    choice = recipe.choose(4_700_000, 32, 100, max_time=150)       # the quickstart: the stdlib, 150 s
    assert (choice.model["num_layers"], choice.model["hidden_size"]) == recipe.SMALL
    assert choice.model["dropout"] == 0.0
    assert choice.train == {"lr": recipe.SHORT_LR, "val_symbols": recipe.SHORT_VAL_SYMBOLS,
                            "eval_every": recipe.SHORT_EVAL_EVERY, "eval_interval": 150 / recipe.SHORT_EVALS}
    line = choice.line()
    assert line.startswith("recipe: ") and "\n" not in line and f"{recipe.SMALL[0]} x {recipe.SMALL[1]}" in line


@pytest.mark.parametrize("corpus_bytes, dropout", [(1 * MB, 0.2), (50 * MB, 0.0)])
def test_ten_minutes_keep_the_full_model_and_dropout_follows_the_passes(corpus_bytes, dropout):
    """The README's table: ten minutes pass over 1 MB about 8 times (dropout 0.2) and over 50 MB
    less than once (no dropout); the model stays 3 x 256 and validation as it is."""
    train_symbols = int(corpus_bytes * 0.95)
    choice = recipe.choose(train_symbols, 32, 100, max_time=600)
    assert "num_layers" not in choice.model and "hidden_size" not in choice.model
    assert choice.model["dropout"] == dropout and choice.train == {}
    assert f"dropout {dropout:g}" in choice.line()


def test_the_passes_a_budget_buys():
    assert recipe.budget_passes(1000, 2, 10, max_steps=100) == 2.0
    assert recipe.budget_passes(1000, 2, 10, epochs=0.5, max_steps=100) == 0.5      # the smaller bound
    assert recipe.budget_passes(1000, 2, 10) is None
    assert recipe.budget_passes(recipe.SPEED[recipe.FULL] * 10, 32, 100, max_time=10) == pytest.approx(1.0)
    assert recipe.dropout_for(None) == 0.2 and recipe.dropout_for(0.99) == 0.0 and recipe.dropout_for(1.0) == 0.2


def test_an_explicit_option_always_wins():
    given = {"hidden_size": 64, "dropout": 0.1, "eval_every": 100, "lr": None}     # None: not given
    choice = recipe.choose(4_700_000, 32, 100, max_time=150, settings=given)
    assert choice.model == {} and choice.train == {"val_symbols": recipe.SHORT_VAL_SYMBOLS}
    assert recipe.choose(4_700_000, 32, 100, max_time=150, fixed_model=True).model == {}
    everything = {"num_layers": 2, "hidden_size": 64, "dropout": 0.1, "lr": 1e-3, "eval_every": 100,
                  "eval_interval": 5.0, "val_symbols": 1000}
    assert recipe.choose(4_700_000, 32, 100, max_time=150, settings=everything).line() == ""


def test_settle_fills_every_setting_left_none_in_one_place():
    from charlstm.training.config import TrainConfig
    open_config = TrainConfig(max_time=150, lr=None, eval_every=None, eval_interval=None, val_symbols=None)
    config, model, line = recipe.settle(open_config, {"hidden_size": None, "dropout": 0.1}, 4_700_000)
    assert (config.lr, config.eval_every, config.val_symbols) == (recipe.SHORT_LR, recipe.SHORT_EVAL_EVERY,
                                                                   recipe.SHORT_VAL_SYMBOLS)
    assert config.eval_interval == 150 / recipe.SHORT_EVALS and model == {"num_layers": 2, "hidden_size": 128,
                                                                          "dropout": 0.1}
    assert line.startswith("recipe: ")
    config, model, line = recipe.settle(open_config, {"hidden_size": None, "dropout": 0.1}, 4_700_000,
                                        use_recipe=False)
    assert config == TrainConfig(max_time=150) and model == {"dropout": 0.1} and line == ""


@pytest.mark.parametrize("seconds_per_step", [0.1, 0.01])
def test_a_short_time_budget_evaluates_on_the_clock_so_a_slow_machine_still_draws_a_curve(tmp_path, monkeypatch,
                                                                                          seconds_per_step):
    """10 steps a second or 100: a run of --max-time 20 evaluates SHORT_EVALS times either way (a
    clock that advances by seconds_per_step at every step stands in for the machine's speed)."""
    import charlstm
    from charlstm.training import loop
    clock = [0.0]
    monkeypatch.setattr(loop, "time", type("Clock", (), {"perf_counter": staticmethod(lambda: clock[0])}))

    def one_step_passes():
        clock[0] += seconds_per_step
        return False

    (tmp_path / "c.txt").write_text(LINES)
    model = charlstm.train(tmp_path / "c.txt", tmp_path / "run", max_time=20, batch_size=2, seq_length=8,
                           num_layers=1, hidden_size=8, sample_length=0, progress=False, stop_on_interrupt=False,
                           should_stop=one_step_passes)
    assert model.step == round(20 / seconds_per_step)
    steps = [ev.step for ev in model.history]
    assert len(steps) == recipe.SHORT_EVALS, steps
    assert steps[0] == round(2 / seconds_per_step)             # every 2 s, not every SHORT_EVAL_EVERY steps


def test_a_step_or_epoch_bound_is_not_a_short_time_budget():
    choice = recipe.choose(4_700_000, 32, 100, max_time=150, max_steps=10_000)
    assert "hidden_size" not in choice.model and choice.train == {}


LINES = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(200))


def _train(tmp_path, *args):
    result = CliRunner().invoke(cli.main, ["train", str(tmp_path / "c.txt"), "--out", str(tmp_path / "run"),
                                           "--batch-size", "2", "--seq-length", "8", "--sample-length", "0",
                                           "--quiet", *args])
    return result


def test_the_run_prints_the_choice_and_uses_it_and_options_override_it(tmp_path):
    (tmp_path / "c.txt").write_text(LINES)
    result = _train(tmp_path, "--max-time", "1", "--layers", "1", "--hidden", "8")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("recipe: ")]
    assert len(lines) == 1 and "validation every" in lines[0] and "dropout" in lines[0], result.stderr
    saved = load_checkpoint(tmp_path / "run" / "latest.npz")
    assert (saved.config.num_layers, saved.config.hidden_size) == (1, 8)           # given: kept
    assert saved.train["config"]["val_symbols"] == recipe.SHORT_VAL_SYMBOLS        # open: the recipe's
    assert saved.train["config"]["eval_every"] == recipe.SHORT_EVAL_EVERY
    assert saved.train["config"]["eval_interval"] == 1 / recipe.SHORT_EVALS
    assert saved.config.dropout == 0.0                      # a short time budget: no dropout
    assert saved.train["config"]["lr"] == 3e-3              # the small model's lr is for the small model only


def test_a_resumed_run_keeps_the_settings_it_started_with(tmp_path):
    (tmp_path / "c.txt").write_text(LINES)
    assert _train(tmp_path, "--max-steps", "3", "--layers", "1", "--hidden", "8").exit_code == 0
    first = load_checkpoint(tmp_path / "run" / "latest.npz")
    result = CliRunner().invoke(cli.main, ["train", str(tmp_path / "c.txt"), "--out", str(tmp_path / "run"),
                                           "--resume", str(tmp_path / "run" / "latest.npz"), "--max-time", "1",
                                           "--quiet"])
    assert result.exit_code == 0, result.output
    assert "recipe: " not in result.stderr          # nothing is chosen again ...
    again = load_checkpoint(tmp_path / "run" / "latest.npz")
    assert again.config == first.config            # ... the model is the run's own
    assert again.train["config"]["eval_every"] == first.train["config"]["eval_every"]
    assert again.train["config"]["val_symbols"] == first.train["config"]["val_symbols"]


def test_the_api_without_a_progress_bar_prints_nothing(tmp_path, capsys):
    import charlstm
    (tmp_path / "c.txt").write_text(LINES)
    charlstm.train(tmp_path / "c.txt", tmp_path / "run", max_time=1, batch_size=2, seq_length=8,
                   sample_length=0, progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_the_api_without_the_recipe_keeps_the_library_defaults(tmp_path):
    import charlstm
    (tmp_path / "c.txt").write_text(LINES)
    model = charlstm.train(tmp_path / "c.txt", tmp_path / "run", max_time=1, batch_size=2, seq_length=8,
                           num_layers=1, hidden_size=8, sample_length=0, progress=False, recipe=False)
    assert model.config.dropout == 0.2 and load_checkpoint(tmp_path / "run" / "latest.npz").train["config"][
        "val_symbols"] == 300_000


def test_a_time_budget_with_the_progress_bar_shows_its_evaluations(tmp_path):
    """The bar of a time budget has no length; writing an evaluation's line above it must work
    (it once raised tqdm's TypeError at the first evaluation of the README's quickstart)."""
    (tmp_path / "c.txt").write_text(LINES)
    result = CliRunner().invoke(cli.main, ["train", str(tmp_path / "c.txt"), "--out", str(tmp_path / "run"),
                                           "--batch-size", "2", "--seq-length", "8", "--sample-length", "0",
                                           "--layers", "1", "--hidden", "8", "--max-time", "1", "--eval-every", "5"])
    assert result.exit_code == 0, result.output
    assert "validation" in result.stderr and "Traceback" not in result.output
