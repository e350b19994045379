"""The review queue's pages: one item at a time with buttons and keys, progress, agreement and the
guidelines beside it; bulk verdicts from the list; the guidelines form for admins. Thin: the
decisions are in review_queue and reviews."""
from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from webapp.accounts.roles import is_reviewer
from webapp.chat.rendering import render_markdown
from webapp.core.refusal_responses import refusal_response
from webapp.puzzles import review_queue, reviews
from webapp.puzzles.models import Attempt, Puzzle, ReviewGuidelines
from webapp.refusals import Invalid, NotAllowed, Refused

BACK = ("puzzles:queue", "Back to the review queue")


def _kind(request) -> str:
    kind = request.GET.get("kind") or request.POST.get("kind") or "puzzles"
    return kind if kind in review_queue.KINDS else "puzzles"


def _after(value) -> int:
    return int(value) if str(value or "").isdigit() else 0


@require_GET
def queue(request):
    kind = _kind(request)
    item = review_queue.next_item(request.user, kind, _after(request.GET.get("after")))
    guidelines = ReviewGuidelines.current()
    context = {
        "kind": kind, "item": item, "reviewer": is_reviewer(request.user),
        "puzzle": item.puzzle if isinstance(item, Attempt) else item,
        "progress": review_queue.progress(request.user, kind), "agreement": review_queue.agreement(),
        "guidelines": guidelines, "guidelines_html": render_markdown(guidelines.text),
        "can_edit_guidelines": request.user.is_staff,
    }
    return render(request, "puzzles/queue.html", context)


@require_POST
def queue_review(request):
    """A verdict on the item on screen, then the next one (a plain form post: works without JS)."""
    kind = _kind(request)
    item_id = _after(request.POST.get("item"))
    try:
        if not is_reviewer(request.user):  # before the item: a refusal says who may, not what is missing
            raise NotAllowed("only reviewers can review puzzles")
        if kind == "attempts":
            attempt = get_object_or_404(Attempt.objects.select_related("puzzle"), pk=item_id)
            reviews.add_review(request.user, attempt.puzzle, request.POST.get("verdict", ""),
                               request.POST.get("comment", ""), attempt)
        else:
            puzzle = get_object_or_404(Puzzle, pk=item_id)
            if not puzzle.is_current:
                raise Invalid("this puzzle was edited meanwhile; the queue shows the current version")
            reviews.add_review(request.user, puzzle, request.POST.get("verdict", ""), request.POST.get("comment", ""))
    except Refused as exc:
        return refusal_response(request, exc, back=BACK)
    return redirect(f"{reverse('puzzles:queue')}?kind={kind}&after={item_id}")


@require_POST
def bulk_review(request):
    """The same verdict on every selected puzzle of the list; back to the list as it was filtered."""
    try:
        count = review_queue.bulk_review(request.user, request.POST.getlist("puzzle"), request.POST.get("verdict", ""),
                                         request.POST.get("comment", ""))
    except Refused as exc:
        return refusal_response(request, exc, back=("puzzles:list", "Back to the puzzles"))
    done = {"approve": "Approved", "reject": "Rejected", "flag": "Flagged"}[request.POST["verdict"]]
    messages.success(request, f"{done} {count} puzzle{'s' if count != 1 else ''}.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()) or not back.startswith("/"):
        back = reverse("puzzles:list")
    return redirect(back)


@require_POST
def guidelines(request):
    try:
        review_queue.save_guidelines(request.user, request.POST.get("text", ""))
    except Refused as exc:
        return refusal_response(request, exc, back=BACK)
    messages.success(request, "The review guidelines are saved.")
    return redirect(f"{reverse('puzzles:queue')}?kind={_kind(request)}")
