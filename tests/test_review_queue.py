"""The review queue's rules: each reviewer's own queue, progress, agreement, bulk verdicts with the
same permission checks as one review, attempts, and guidelines only admins edit."""
import pytest
from django.contrib.auth.models import User

from tests.support import user_with_roles
from webapp.puzzles import review_queue
from webapp.puzzles.models import Attempt, Puzzle, ReviewGuidelines
from webapp.puzzles.reviews import add_review
from webapp.refusals import Invalid, NotAllowed

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_seed_puzzles():
    Puzzle.objects.all().delete()  # the migrations' seed puzzles would be in every queue


def puzzles(n: int) -> list[Puzzle]:
    return [Puzzle.objects.create(name=f"q{i}", sat=f"def sat(x: int):\n    return x == {i}", fingerprint=f"f{i}",
                                  source="user") for i in range(n)]


def test_each_reviewer_walks_their_own_queue_and_agreement_is_counted():
    p = puzzles(4)
    alice, bob = user_with_roles("alice", "reviewer"), user_with_roles("bob", "reviewer")
    assert review_queue.next_item(alice) == p[0]
    add_review(alice, p[0], "approve")
    add_review(alice, p[1], "reject")
    assert review_queue.next_item(alice) == p[2] and review_queue.next_item(bob) == p[0]
    assert review_queue.next_item(alice, after=p[2].pk) == p[3]  # a skip moves past one
    assert review_queue.next_item(alice, after=p[3].pk) == p[2]  # and wraps around
    add_review(bob, p[0], "approve")
    add_review(bob, p[1], "flag")
    add_review(bob, p[1], "reject")  # the latest verdict counts
    add_review(bob, p[2], "approve")
    progress = review_queue.progress(alice)
    assert (progress.total, progress.mine, progress.anyone, progress.mine_percent) == (4, 2, 3, 50)
    assert progress.by_reviewer == [("bob", 3), ("alice", 2)]
    agreement = review_queue.agreement()
    assert (agreement.puzzles, agreement.agreed, agreement.percent) == (2, 2, 100)
    add_review(alice, p[2], "reject")
    assert review_queue.agreement().agreed == 2 and review_queue.agreement().puzzles == 3
    assert review_queue.agreement_of(review_queue.latest_verdicts(p[2])) is False
    assert review_queue.agreement_of(review_queue.latest_verdicts(p[3])) is None


def test_bulk_verdicts_check_like_one_review():
    p = puzzles(3)
    reviewer, plain = user_with_roles("rita", "reviewer"), User.objects.create_user("pat", password="x")
    with pytest.raises(NotAllowed):
        review_queue.bulk_review(plain, [str(x.pk) for x in p], "reject")
    with pytest.raises(Invalid, match="select at least one"):
        review_queue.bulk_review(reviewer, ["x"], "reject")
    with pytest.raises(Invalid, match="unknown verdict"):
        review_queue.bulk_review(reviewer, [str(p[0].pk)], "delete")
    Puzzle.objects.filter(pk=p[2].pk).update(is_current=False)
    with pytest.raises(Invalid, match="old versions"):
        review_queue.bulk_review(reviewer, [str(x.pk) for x in p], "reject")
    assert not Puzzle.objects.exclude(review_state="").exists()  # all or nothing
    assert review_queue.bulk_review(reviewer, [str(p[0].pk), str(p[1].pk)], "reject") == 2
    assert set(Puzzle.objects.filter(pk__in=[p[0].pk, p[1].pk]).values_list("review_state", flat=True)) == {"reject"}


def test_verified_attempts_have_their_own_queue():
    p = puzzles(1)[0]
    passed = Attempt.objects.create(puzzle=p, code="def sol():\n    return 0", status="passed")
    Attempt.objects.create(puzzle=p, code="def sol():\n    return 1", status="failed")
    reviewer = user_with_roles("rita", "reviewer")
    assert review_queue.next_item(reviewer, "attempts") == passed
    add_review(reviewer, p, "reject", attempt=passed)
    assert review_queue.next_item(reviewer, "attempts") is None
    assert review_queue.progress(reviewer, "attempts").mine == 1
    assert review_queue.next_item(reviewer, "puzzles") == p  # an attempt's review is not the puzzle's


def test_only_admins_edit_the_guidelines():
    assert "Approve" in ReviewGuidelines.current().text  # a default until an admin writes some
    with pytest.raises(NotAllowed):
        review_queue.save_guidelines(user_with_roles("rita", "reviewer"), "anything")
    admin = User.objects.create_user("root", password="x", is_staff=True)
    review_queue.save_guidelines(admin, "Be strict.\r\n")
    assert ReviewGuidelines.current().text == "Be strict." and ReviewGuidelines.current().updated_by == admin
