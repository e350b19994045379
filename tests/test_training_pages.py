"""The training pages on PostgreSQL and Redis: the rounds list and the form that starts one (who
may, bad settings, one round at a time), a round's live page (progress, loss chart, before and
after, hostile text escaped, cancel and resume) and the model versions (scores chart, promote,
roll back). Rounds are created without a worker (`enqueue=False`, or the view's on-commit enqueue
that a test transaction never commits); the end-to-end round runs in test_training_browser.py."""
import re

import pytest
from django.test import Client
from django.utils import timezone

from tests.support import signed_in_client as _client
from tests.support import user_with_roles as _user
from webapp.core.charts import line_chart, nice_ticks
from webapp.serving import versions
from webapp.serving.models import ModelVersion
from webapp.training.models import TrainingRun
from webapp.training.rounds import start_round

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)>"
# The form as a person fills it in for a tiny round.
SMALL = {"sources": ["selfplay", "chat"], "method": "full", "epochs": "1", "max_steps": "4",
         "learning_rate": "0.0001", "batch_size": "2", "gradient_accumulation": "1", "block_size": "64",
         "samples": "2", "temperature": "0.8", "subset": "3", "code_problems": "2", "metric_k": "1",
         "margin": "1"}
SETTINGS = {"sources": ["selfplay"], "sft": {"max_steps": 4, "block_size": 64, "batch_size": 2},
            "p3_eval": {"samples": 10, "temperature": 0.8, "subset": 3}, "humaneval_problems": 2, "metric_k": 10}


# --- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def fresh_active_version():
    """The active version is remembered per process for a moment: another test's must not leak in."""
    versions.forget_active()
    yield
    versions.forget_active()


@pytest.fixture
def trainer_user():
    return _user("tom", "trainer")


@pytest.fixture
def trainer(trainer_user):
    return _client(trainer_user)


@pytest.fixture
def reviewer():
    return _client(_user("rita", "reviewer"))


@pytest.fixture
def admin_user():
    return _user("ada", staff=True)


@pytest.fixture
def admin(admin_user):
    return _client(admin_user)


def p3_result(pass_at_1: float, pass_at_10: float, solved: int, puzzles: int = 3) -> dict:
    return {"dataset": f"p3-test-{puzzles}-seed0", "pass_at_k": {"1": pass_at_1, "10": pass_at_10},
            "config": {"samples": 10, "temperature": 0.8, "max_tokens": 150, "style": "completion",
                       "subset": puzzles, "seed": 0, "timeout_s": 1.0, "ks": [1, 10, 100], "max_batch_rows": 64},
            "solved": solved, "puzzles": puzzles, "tokens": 900, "seconds": 3.0, "tokens_per_s": 300.0,
            "per_puzzle": [{"name": f"P{i}", "n": 10, "c": 2 if i < solved else 0} for i in range(puzzles)]}


def evaluation(model: str, pass_at_1: float, pass_at_10: float, solved: int, humaneval: float) -> dict:
    return {"model": model, "p3": p3_result(pass_at_1, pass_at_10, solved),
            "humaneval": {"pass_at_1": humaneval, "passed": round(humaneval * 2), "problems": 2, "tokens": 50,
                          "seconds": 1.0, "tokens_per_s": 50.0},
            "code_chat": {"pass_at_1": 1 - humaneval, "passed": round((1 - humaneval) * 2), "problems": 2,
                          "prompt": "instruct", "tokens": 40, "seconds": 1.0}, "seconds": 65.4}


def queued_run(user) -> TrainingRun:
    return start_round(user, SETTINGS, enqueue=False)


def fail(run: TrainingRun, error: str = "the worker stopped during the round; resume it to continue") -> None:
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingRun.Status.FAILED, lock_slot=None, error=error,
                                                 finished_at=timezone.now())
    run.refresh_from_db()


# --- the charts --------------------------------------------------------------------------------------
def test_line_chart_draws_series_escapes_labels_and_says_when_empty():
    svg = line_chart([{"name": "<b>loss</b>", "points": [(1, 2.5), (2, 2.0), (3, float("nan")), (4, 1.5)]},
                      {"name": "other", "points": []}], "step & <i>x</i>", 'loss "y"')
    assert svg.startswith("<svg") and svg.endswith("</svg>") and 'role="img"' in svg
    assert svg.count("<polyline") == 1 and "&lt;b&gt;loss&lt;/b&gt;" in svg and "<b>" not in svg
    assert "step &amp; &lt;i&gt;x&lt;/i&gt;" in svg and "loss &quot;y&quot;" in svg
    assert "other (no data)" in svg  # a series without points still has its legend entry
    points = re.search(r'<polyline[^>]*points="([^"]+)"', svg).group(1).split()
    assert len(points) == 3  # the NaN is skipped
    assert "no data yet" in line_chart([], "x", "y") and "<polyline" not in line_chart([], "x", "y")
    # pass@k: a fixed 0..1 axis with percent ticks and named x positions
    svg = line_chart([{"name": "pass@1", "points": [(0, 0.1), (1, 0.2)]}], "version", "pass@k", y_range=(0, 1),
                     percent=True, x_ticks={0: "v0", 1: "<v1>"})
    assert ">0%<" in svg and ">100%<" in svg and ">v0<" in svg and "&lt;v1&gt;" in svg
    # a long loss curve is thinned to a drawable line, without a dot per point; close ticks stay apart
    curve = [(i, 10.79 + (i % 7) * 0.003) for i in range(1, 2001)]
    svg = line_chart([{"name": "loss", "points": curve}], "step", "loss")
    points = re.search(r'<polyline[^>]*points="([^"]+)"', svg).group(1).split()
    assert 500 <= len(points) <= 601 and "<circle" not in svg
    ticks = re.findall(r'class="chart-tick"[^>]*>([^<]+)<', svg)
    assert len(set(ticks)) == len(ticks) and "10.790" in ticks
    assert nice_ticks(0, 1, 5) == [0, 0.25, 0.5, 0.75, 1.0] and nice_ticks(3, 3)[0] < 3 < nice_ticks(3, 3)[-1]


# --- the list and the form -------------------------------------------------------------------------
def test_the_list_and_the_form_for_a_trainer(trainer):
    response = trainer.get("/training/")
    page = response.content.decode()
    assert response.status_code == 200 and "<html" in page
    assert '<a href="/training/" aria-current="page">Training</a>' in page  # the nav link
    assert "Start training round" in page and 'data-testid="no-runs"' in page
    # the defaults: self-play pairs and chat repairs (MBPP rehearsal offered, not ticked), full fine-tuning for
    # one epoch, the gate on P3 validation pass@10 and on greedy pass@1 over all 90 MBPP validation tasks
    assert page.count('name="sources"') == 4 and page.count(" checked>") == 2
    assert '<input type="checkbox" name="sources" value="mbpp">' in page
    assert '<input type="checkbox" name="sources" value="mbpp-chat">' in page
    assert '<option value="full" selected>' in page and '<option value="lora">' in page
    assert '<option value="auto" selected>' in page and '<option value="bf16">' in page  # precision
    assert '<option value="all" selected>' in page and '<option value="unverified">' in page  # the paper's controls
    assert '<option value="better" selected>' in page and '<option value="not-worse">' in page  # the gate's rule
    assert '<option value="on" selected>' in page and '<option value="off">' in page  # the chat-form code check
    for name, value in (("epochs", "1.0"), ("max_steps", "0"), ("learning_rate", "5e-05"), ("batch_size", "4"),
                        ("block_size", "512"), ("samples", "10"), ("subset", "0"), ("code_problems", "90"),
                        ("metric_k", "10"), ("margin", "0"), ("sft_validate_every", "0"), ("sft_patience", "2"),
                        ("interpolation", "1")):
        assert f'name="{name}" value="{value}"' in page, name
    assert 'href="/training/models/"' in page


def test_only_trainers_start_rounds(reviewer, trainer):
    page = reviewer.get("/training/").content.decode()
    assert 'data-testid="trainers-only"' in page and 'name="max_steps"' not in page
    response = reviewer.post("/training/", SMALL)
    assert response.status_code == 403 and "Only trainers can start training rounds" in response.content.decode()
    assert '<a href="/training/">Back to training</a>' in response.content.decode()
    response = reviewer.post("/training/", SMALL, **HTMX)
    assert response.status_code == 403 and response["Content-Type"].startswith("text/plain")
    anonymous = Client()
    response = anonymous.post("/training/", SMALL)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert anonymous.get("/training/").status_code == 302
    assert not TrainingRun.objects.exists()


def test_bad_settings_are_refused_with_the_form_again(trainer):
    for change, message in (({"metric_k": "10"}, "Pass@10 needs at least 10 samples per puzzle"),
                            ({"batch_size": "0"}, "Batch size must be at least 1"),
                            ({"sft_patience": "0"}, "Patience must be at least 1"),
                            ({"interpolation": "1.5"}, "Interpolation (α) must be above 0 and at most 1"),
                            ({"interpolation_fallbacks": "0.5, 0.7"},
                             "Fallback α must each be above 0 and below the one before (the published model is at α 1)"),
                            ({"interpolation_fallbacks": "half"}, "Fallback α must be numbers separated by commas, e.g. 0.5, 0.25"),
                            ({"report_limit": "-1"}, "Report tasks must be at least 0"),
                            ({"learning_rate": "fast"}, "Learning rate must be a number"),
                            ({"learning_rate": "2"}, "Learning rate must be between 0 and 1"),
                            ({"block_size": "4"}, "Block size must be between 8 and 32768 tokens"),
                            ({"method": "magic"}, "Method must be one of full, lora"),
                            ({"precision": "fp8"}, "Precision must be one of auto, fp32, bf16"),
                            ({"data": "web"}, "Puzzle pairs must be one of all, own, unverified, references"),
                            ({"epochs": "0", "max_steps": "0"}, "Train for some epochs or some steps"),
                            ({"margin": "-1"}, "Margin (points) must be at least 0"),
                            ({"temperature": "5"}, "Temperature must be at most 2"),
                            ({"samples": ""}, "Samples per puzzle (n) is empty"),
                            ({"sources": []}, "Choose at least one data source"),
                            ({"sources": ["selfplay", "web"]}, "Data sources must be among selfplay, chat")):
        response = trainer.post("/training/", {**SMALL, **change})
        page = response.content.decode()
        assert response.status_code == 400 and message in page, (change, page[:300])
        assert 'data-testid="round-error"' in page
    page = trainer.post("/training/", {**SMALL, "batch_size": "0", "sources": ["chat"]}).content.decode()
    assert 'name="batch_size" value="0"' in page and 'name="max_steps" value="4"' in page  # what was typed
    assert re.search(r'value="chat" checked', page) and not re.search(r'value="selfplay" checked', page)
    assert not TrainingRun.objects.exists()


def test_a_round_starts_from_the_form_and_a_second_is_refused(trainer, trainer_user):
    response = trainer.post("/training/", {**SMALL, "precision": "bf16", "data": "references", "promote_if": "not-worse",
                                           "train_from": "origin", "chat_check": "off", "sft_validate_every": "5",
                                           "interpolation": "0.5", "interpolation_fallbacks": "0.25",
                                           "report_limit": "20"})
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/training/runs/{run.pk}/"
    assert run.status == "queued" and run.trigger == "form" and run.created_by == trainer_user
    assert run.config["sources"] == ["selfplay", "chat"]
    assert run.config["sft"] == {"method": "full", "epochs": 1.0, "max_steps": 4, "learning_rate": 0.0001,
                                 "batch_size": 2, "gradient_accumulation": 1, "block_size": 64,
                                 "precision": "bf16", "validate_every": 5, "interpolation": 0.5}
    assert run.config["p3_eval"] == {"samples": 2, "temperature": 0.8, "subset": 3}
    assert run.config["code_problems"] == 2 and run.config["metric_k"] == 1 and run.config["margin"] == 0.01
    assert run.config["promote_if"] == "not-worse" and run.config["train_from"] == "origin"
    assert run.config["chat_check"] is False and run.config["interpolation_fallbacks"] == "0.25"
    assert run.config["report_limit"] == 20  # the report benchmarks' first 20 tasks
    assert run.base_version == versions.active_version() and run.config["data"] == "references"

    response = trainer.post("/training/", SMALL)
    page = response.content.decode()
    assert response.status_code == 409 and f"Round {run.pk} is queued; only one training round runs at a time" in page
    assert f'<a href="/training/runs/{run.pk}/" data-testid="busy-round">Open round {run.pk}</a>' in page
    assert 'name="max_steps" value="4"' in page and TrainingRun.objects.count() == 1
    # the list shows it, with the banner for the active round
    page = trainer.get("/training/").content.decode()
    assert page.count('data-testid="run-row"') == 1 and 'data-testid="active-round"' in page
    assert f'href="/training/runs/{run.pk}/">Round {run.pk}</a>' in page and ">form<" in page and ">tom<" in page


# --- a round's page --------------------------------------------------------------------------------
def test_the_run_page_shows_progress_the_loss_chart_and_before_after(trainer, reviewer, trainer_user):
    run = queued_run(trainer_user)
    page = trainer.get(f"/training/runs/{run.pk}/").content.decode()
    assert 'hx-trigger="every 2s"' in page and "waiting for a worker" in page and "no data yet" in page
    assert 'data-testid="compare-empty"' in page and ">Cancel<" in page and ">Resume<" not in page

    TrainingRun.objects.filter(pk=run.pk).update(
        status="running", stage="train", started_at=timezone.now(), heartbeat_at=timezone.now(),
        progress={"step": 3, "max_steps": 4, "epoch": 0.75, "loss": 9.8765, "tokens_per_s": 432.1, "eta_s": 65},
        loss_curve=[[1, 11.5], [2, 10.25], [3, 9.8765]], examples=52, dataset_hash="ab" * 32,
        dataset={"attempts": list(range(50)), "messages": [7, 9]},
        eval_before=evaluation("tiny-before", 0.25, 0.5, 2, 0.5), log="12:00:00 data: 52 examples\n")
    page = trainer.get(f"/training/runs/{run.pk}/").content.decode()
    assert 'data-status="running"' in page and "<strong>Fine-tune</strong>" in page
    # 20% (the first evaluation) + 60% × 3/4 of the training
    assert 'value="65"' in page and 'data-testid="run-percent">65%<' in page
    for key, value in (("step", "3/4"), ("epoch", "0.75"), ("loss", "9.8765"), ("tokens-per-s", "432.1"),
                       ("eta", "1 min 05 s")):
        assert re.search(rf'data-testid="figure-{key}"><dt>[^<]+</dt><dd>{re.escape(value)}</dd>', page), key
    chart = re.search(r'data-testid="loss-chart">(.*?)</svg>', page, re.S).group(1)
    assert "<svg" in chart and chart.count("<polyline") == 1 and "training loss" in chart
    assert re.search(r'data-testid="compare-pass-1">\s*<th scope="row">P3 pass@1</th>\s*<td class="num">25.0%</td>\s*'
                     r'<td class="num">—</td>', page)
    assert "52" in page and "ab" * 32 in page and "<dt>Solved chat repairs</dt><dd>2</dd>" in page
    assert "<dt>Verified puzzle pairs</dt><dd>50</dd>" in page and "dataset-failed" not in page
    # the unverified control says what it trained on
    TrainingRun.objects.filter(pk=run.pk).update(dataset={"attempts": list(range(50)), "examples": [],
                                                          "failed": [3, 8], "mbpp": [601, 602]})
    page = trainer.get(f"/training/runs/{run.pk}/").content.decode()
    assert 'data-testid="dataset-failed">50, of which 2 failed<' in page and "Verified puzzle pairs" not in page
    assert "<dt>MBPP train tasks rehearsed</dt><dd>2</dd>" in page and "mbpp-chat-count" not in page
    TrainingRun.objects.filter(pk=run.pk).update(dataset={"attempts": [], "mbpp": [601, 602], "mbpp_chat": [601]})
    page = trainer.get(f"/training/runs/{run.pk}/").content.decode()
    assert 'in the chat form</dt><dd data-testid="mbpp-chat-count">1</dd>' in page
    # a reviewer may watch, not cancel
    page = reviewer.get(f"/training/runs/{run.pk}/").content.decode()
    assert 'data-testid="figure-step"' in page and ">Cancel<" not in page

    # evaluating after the training: done/total
    TrainingRun.objects.filter(pk=run.pk).update(status="evaluating", stage="eval-after",
                                                 progress={"done": 2, "total": 5})
    page = trainer.get(f"/training/runs/{run.pk}/progress/").content.decode()
    assert "<html" not in page and 'data-testid="run-panel"' in page and 'data-status="evaluating"' in page
    assert "2/5 problems" in page and 'value="88"' in page  # 80% + 20% × 2/5

    # finished: the table, the decision, the version, no more polling
    version = ModelVersion.objects.create(name=f"v1 · round {run.pk}", parent=run.base_version, status="active")
    TrainingRun.objects.filter(pk=run.pk).update(
        produced_version=version,
        status="succeeded", stage="decide", lock_slot=None, finished_at=timezone.now(),
        eval_before={**evaluation("tiny-before", 0.25, 0.5, 2, 0.5), "reused": True},
        eval_after=evaluation("tiny-after", 0.5, 0.75, 3, 0.0),
        decision="promoted: pass@10 50.0% → 75.0% on p3-test-3-seed0 (allowed drop 0.0%)")
    response = trainer.get(f"/training/runs/{run.pk}/progress/")
    page = response.content.decode()
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    assert "hx-trigger" not in page and 'data-status="succeeded"' in page and 'value="100"' in page
    assert ">Cancel<" not in page and ">Resume<" not in page
    assert re.search(r'data-testid="compare-pass-10" class="gate-row">\s*<th scope="row">P3 pass@10 '
                     r'<span class="pill pill-info">gate</span></th>\s*<td class="num">50.0%</td>\s*'
                     r'<td class="num better">75.0%</td>', page)
    assert re.search(r'data-testid="compare-humaneval">.*?50.0%</td>\s*<td class="num worse">0.0%</td>', page, re.S)
    assert re.search(r'data-testid="compare-code-chat">\s*<th scope="row">[^<]*pass@1 \(chat form: instruct prompt\)'
                     r'</th>\s*<td class="num">50.0%</td>\s*<td class="num better">100.0%</td>', page)
    assert "<td class=\"num\">2/3</td>" in page and "<td class=\"num\">3/3</td>" in page  # solved/puzzles
    # the evaluation wall times: "before" was measured in an earlier round and reused here
    assert re.search(r'data-testid="compare-seconds">.*?<td class="num">reused \(took 1 min 05 s when measured\)</td>'
                     r'\s*<td class="num">1 min 05 s</td>', page, re.S)
    # puzzle by puzzle: P2 gained, P0 and P1 kept
    assert re.search(r'data-testid="compare-paired"[^>]*>Paired: pass@10 \+33\.3 pts \(95% CI [^)]+\); '
                     r'puzzles gained 1, lost 0, kept 2; sign test p = 1<', page)
    assert "promoted: pass@10 50.0% → 75.0%" in page
    assert f'href="/training/models/#version-{version.pk}">v1 · round {run.pk}</a>' in page


def test_hostile_error_and_log_are_escaped(trainer, trainer_user):
    run = queued_run(trainer_user)
    TrainingRun.objects.filter(pk=run.pk).update(log=f"12:00:01 model said {HOSTILE}\n",
                                                 decision=f"rejected {HOSTILE}")
    fail(run, f"ValueError: {HOSTILE}; resume it to continue from its last checkpoint")
    for url in (f"/training/runs/{run.pk}/", f"/training/runs/{run.pk}/progress/", "/training/"):
        page = trainer.get(url).content.decode()
        assert "<script>alert" not in page and "<img src=x" not in page, url
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page, url
    page = trainer.get(f"/training/runs/{run.pk}/").content.decode()
    assert re.search(r'<div class="alert alert-error" role="alert" data-testid="run-error"><strong>The round failed:'
                     r'</strong>\s*<pre class="verdict-text run-error">ValueError: &lt;script&gt;', page)
    assert "resume it to continue from its last checkpoint" in page
    assert ">Resume<" in page and ">Cancel<" not in page and "hx-trigger" not in page


def test_cancel_stops_a_queued_round(trainer, reviewer, trainer_user):
    run = queued_run(trainer_user)
    assert reviewer.post(f"/training/runs/{run.pk}/cancel/").status_code == 403
    assert reviewer.post(f"/training/runs/{run.pk}/resume/").status_code == 403
    run.refresh_from_db()
    assert run.status == "queued"
    response = trainer.post(f"/training/runs/{run.pk}/cancel/", **HTMX)
    run.refresh_from_db()
    panel = response.content.decode()
    assert response.status_code == 200 and run.status == "cancelled" and run.lock_slot is None
    assert 'data-status="cancelled"' in panel and "every 2s" not in panel and ">Resume<" in panel
    assert "cancelled before it started" in panel
    response = trainer.post(f"/training/runs/{run.pk}/cancel/")
    assert response.status_code == 409 and f"Round {run.pk} is already cancelled" in response.content.decode()
    response = trainer.post(f"/training/runs/{run.pk}/cancel/", **HTMX)
    assert response.status_code == 409 and response.content.decode() == f"Round {run.pk} is already cancelled"


def test_cancel_asks_a_running_round_to_stop(trainer, trainer_user):
    run = queued_run(trainer_user)
    TrainingRun.objects.filter(pk=run.pk).update(status="running", stage="train", heartbeat_at=timezone.now())
    response = trainer.post(f"/training/runs/{run.pk}/cancel/")
    run.refresh_from_db()
    assert response.status_code == 302 and run.status == "running" and run.cancel_requested
    page = trainer.get(f"/training/runs/{run.pk}/").content.decode()
    assert 'data-testid="cancelling"' in page and ">Cancel<" not in page and 'hx-trigger="every 2s"' in page


def test_resume_requeues_a_failed_round(trainer, trainer_user):
    run = queued_run(trainer_user)
    fail(run)
    response = trainer.post(f"/training/runs/{run.pk}/resume/")
    run.refresh_from_db()
    assert response.status_code == 302 and response["Location"] == f"/training/runs/{run.pk}/"
    assert run.status == "queued" and run.lock_slot is True and run.error == "" and run.finished_at is None
    response = trainer.post(f"/training/runs/{run.pk}/resume/")
    page = response.content.decode()
    assert response.status_code == 409 and "only failed or cancelled rounds can be resumed" in page
    # a failed round cannot resume while another one holds the slot; htmx gets the reason as text
    other = TrainingRun.objects.create(status="failed", lock_slot=None, config=run.config)
    response = trainer.post(f"/training/runs/{other.pk}/resume/", **HTMX)
    assert response.status_code == 409 and f"Round {run.pk} is queued" in response.content.decode()
    other.refresh_from_db()
    assert other.status == "failed"
    # the htmx resume answers with the panel, polling again
    trainer.post(f"/training/runs/{run.pk}/cancel/")
    response = trainer.post(f"/training/runs/{other.pk}/resume/", **HTMX)
    assert response.status_code == 200 and 'hx-trigger="every 2s"' in response.content.decode()


# --- model versions --------------------------------------------------------------------------------
def versions_with_a_round(trainer_user) -> tuple[ModelVersion, ModelVersion, TrainingRun]:
    base = versions.active_version()
    run = queued_run(trainer_user)
    before, after = evaluation("base", 0.1, 0.3, 1, 0.5), evaluation("v1", 0.2, 0.4, 2, 0.5)
    after["code_chat"]["pass_at_1"] = 0.25  # the chat form lost what the 3-shot form kept
    base.metrics = {"round:settings": before}
    base.save()
    candidate = ModelVersion.objects.create(name=f"v1 · round {run.pk}", parent=base,
                                            status="rejected", metrics={"round:settings": after},
                                            reason=f"rejected {HOSTILE}")
    TrainingRun.objects.filter(pk=run.pk).update(produced_version=candidate, status="succeeded", lock_slot=None,
                                                 eval_before=before,
                                                 eval_after=after)
    return base, candidate, run


def test_the_models_page_shows_versions_and_the_chart(trainer, trainer_user):
    base, candidate, run = versions_with_a_round(trainer_user)
    page = trainer.get("/training/models/").content.decode()
    assert page.count('data-testid="version-row"') == 2
    assert f'<span data-testid="active-version">{base.name}</span>' in page
    row = re.search(rf'id="version-{candidate.pk}".*?</tr>', page, re.S).group()
    assert 'data-testid="version-status">rejected<' in row and f'href="/training/runs/{run.pk}/">Round {run.pk}<' in row
    assert f'href="#version-{base.pk}">{base.name}</a>' in row
    assert ">20.0%<" in row and ">40.0%<" in row and ">50.0%<" in row
    assert '<td class="num" data-testid="version-code-chat">25.0%</td>' in row
    assert "&lt;script&gt;" in row and "<script>alert" not in page
    chart = re.search(r'data-testid="versions-chart">(.*?)</svg>', page, re.S).group(1)
    assert chart.count("<polyline") == 4 and "P3 pass@1" in chart and "P3 pass@10" in chart
    assert "chat-form code pass@1" in chart and "code pass@1" in chart and ">v1<" in chart and ">v0<" in chart and ">100%<" in chart
    assert "p3-test-3-seed0" in page
    # only admins get the buttons
    assert 'data-testid="promote"' not in page and 'data-testid="rollback"' not in page


def test_promote_by_an_admin_and_not_by_a_trainer(admin, trainer, trainer_user):
    base, candidate, _ = versions_with_a_round(trainer_user)
    page = admin.get("/training/models/").content.decode()
    assert page.count('data-testid="promote"') == 1 and f'action="/training/models/{candidate.pk}/promote/"' in page
    response = trainer.post(f"/training/models/{candidate.pk}/promote/")
    assert response.status_code == 403 and "Only admins can promote a model version" in response.content.decode()
    assert versions.active_version() == base

    response = admin.post(f"/training/models/{candidate.pk}/promote/")
    assert response.status_code == 302 and response["Location"] == "/training/models/"
    candidate.refresh_from_db()
    base.refresh_from_db()
    assert candidate.is_active and candidate.status == "active" and candidate.reason == "promoted by hand by ada"
    assert base.status == "retired" and versions.active_serving()["id"] == candidate.pk
    page = admin.get("/training/models/").content.decode()
    assert "is now the active model" in page and 'data-testid="rollback"' in page
    assert page.count('data-testid="promote"') == 1  # the retired base may come back

    # a version whose checkpoint is missing is refused, and says why
    broken = ModelVersion.objects.create(name="v2 broken", parent=candidate, checkpoint="/nonexistent/model")
    response = admin.post(f"/training/models/{broken.pk}/promote/")
    assert response.status_code == 400
    assert "v2 broken: its checkpoint /nonexistent/model is missing or incomplete" in response.content.decode()
    response = admin.post(f"/training/models/{candidate.pk}/promote/")
    assert response.status_code == 400 and "is already the active model" in response.content.decode()


def test_rollback_returns_to_the_parent(admin, trainer, trainer_user, admin_user):
    base, candidate, _ = versions_with_a_round(trainer_user)
    versions.promote(candidate, "better", admin_user)
    assert trainer.post("/training/models/rollback/").status_code == 403
    response = admin.post("/training/models/rollback/")
    assert response.status_code == 302
    base.refresh_from_db()
    candidate.refresh_from_db()
    assert base.is_active and base.status == "active" and candidate.status == "retired"
    assert base.reason == f"rolled back from {candidate.name} by ada"
    response = admin.post("/training/models/rollback/")
    assert response.status_code == 400 and "has no parent to roll back to" in response.content.decode()
