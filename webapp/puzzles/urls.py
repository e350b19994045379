from django.urls import path

from webapp.puzzles import review_views, views

app_name = "puzzles"
urlpatterns = [
    path("", views.puzzle_list, name="list"),
    path("<int:puzzle_id>/", views.puzzle_detail, name="detail"),
    path("<int:puzzle_id>/review/", views.review, name="review"),
    path("<int:puzzle_id>/edit/", views.edit, name="edit"),
    path("<int:puzzle_id>/solve/", views.solve, name="solve"),
    path("<int:puzzle_id>/discuss/", views.discuss, name="discuss"),
    path("queue/", review_views.queue, name="queue"),
    path("queue/review/", review_views.queue_review, name="queue-review"),
    path("bulk-review/", review_views.bulk_review, name="bulk-review"),
    path("guidelines/", review_views.guidelines, name="guidelines"),
    path("generate/", views.generate, name="generate"),
    *views.RUN_PAGES.urlpatterns(),
]
