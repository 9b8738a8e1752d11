"""The view decorators of the portal, one per role (the roles themselves are named once, on
`Person`: `runs_facility`, `runs_labs`, `is_tenant_admin`). Each signs the visitor in first,
then answers 403 to anyone without the role."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied


def _role_required(has_role):
    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not has_role(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


facility_required = _role_required(lambda person: person.runs_facility)
labs_required = _role_required(lambda person: person.runs_labs)
tenant_admin_required = _role_required(
    lambda person: person.is_active and person.is_tenant_admin and person.tenant_id is not None
)
