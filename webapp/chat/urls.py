from django.urls import path

from webapp.chat import views

app_name = "chat"
urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.new, name="new"),
    path("export.jsonl", views.export, name="export"),
    path("<int:conversation_id>/", views.conversation_page, name="conversation"),
    path("<int:conversation_id>/body/", views.body, name="body"),
    path("<int:conversation_id>/send/", views.send, name="send"),
    path("<int:conversation_id>/feedback/", views.feedback, name="feedback"),
    path("<int:conversation_id>/rename/", views.rename, name="rename"),
    path("<int:conversation_id>/model/", views.change_model, name="model"),
    path("<int:conversation_id>/delete/", views.delete, name="delete"),
    path("messages/<int:message_id>/stop/", views.stop, name="stop"),
    path("messages/<int:message_id>/regenerate/", views.regenerate, name="regenerate"),
    path("messages/<int:message_id>/edit/", views.edit, name="edit"),
    path("messages/<int:message_id>/show/", views.show_branch, name="show"),
    path("messages/<int:message_id>/run-tests/", views.run_tests, name="run-tests"),
    path("messages/<int:message_id>/rate/", views.rate, name="rate"),
]
