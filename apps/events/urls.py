"""Routes of the event feed, mounted under the app API base path."""

urlpatterns = []
