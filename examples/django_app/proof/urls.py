from django.urls import path

from . import views

urlpatterns = [path("start", views.start), path("incr", views.incr), path("get", views.get)]
