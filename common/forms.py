"""What every portal page's form handling shares: where to go back to after a POST (never
another site's address), and a refusal shown next to the field it is about."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.http import url_has_allowed_host_and_scheme


def back_to(request, default: str) -> str:
    """The page a form asked to return to (`next`), if it is one of ours: an open redirect
    would let a link on our domain send people anywhere."""
    target = request.POST.get("next") or default
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


def show_error(form: forms.Form, error: Exception, fields: dict[str, str]):
    """Put a refusal next to its field: a model ValidationError per field, a DomainError by its
    `field` (model or API field names mapped to the form's by `fields`), else at the top of
    the form."""
    if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
        for name, errors in error.error_dict.items():
            field = fields.get(name, name)
            form.add_error(field if field in form.fields else None, errors)
        return
    if isinstance(error, ValidationError):
        form.add_error(None, error)
        return
    api_field = error.data.get("field")
    detail = error.detail
    if api_field and detail.startswith(f"{api_field}: "):
        detail = detail[len(api_field) + 2 :]
    name = fields.get(api_field, api_field)
    form.add_error(name if name in form.fields else None, detail)
