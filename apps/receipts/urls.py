"""Routes of the read-receipt endpoints, mounted under the app API base path."""

urlpatterns = []
