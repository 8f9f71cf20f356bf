"""One declaration per contract: pydantic models validate each JSON request and write /api/openapi.json.

SpecTree reads the models from `@api(...)` on each view and the paths from the URL map. Why SpecTree: it
decorates plain Flask views (our app factory, blueprints and URL map stay as they are), speaks pydantic 2,
and lets us answer validation errors in our own error shape; flask-openapi3 would replace Flask's app and
blueprint classes, and apispec/flask-smorest are built on marshmallow.
"""
import copy
import typing

from flask import current_app, make_response
from pydantic import BaseModel, ValidationError as PydanticError
from spectree import Response, SecurityScheme, SecuritySchemeData, SpecTree
from spectree.plugins.base import Context
from spectree.plugins.flask_plugin import FlaskPlugin

from panel.errors import ValidationError
from panel.web import limits
from panel.web.schemas.base import Error, LegacyStatusError
from panel.web.wording import first_error

ERROR_REF = "#/components/schemas/Error"
OPTIONAL_BODY = set()  # views whose JSON body may be left out (every field has a default)
# Path parameters read by a converter of our own (urls.py), which SpecTree cannot describe.
RUN_ID = {"type": "string", "pattern": f"^(?!(export|per-minute|delete|cleanup|bulk)$)[^/{limits.UNSAFE_CLASS}]+$",
          "description": "a run's Celery task id (not one of the words /api/runs/ uses for itself)"}
DOC_EXTRAS = {}  # operation id -> what SpecTree cannot say (other media types, an optional body)


class PanelPlugin(FlaskPlugin):
    """SpecTree's Flask plugin with our rules: a body must be a JSON object, and answers are checked when asked."""

    def request_validation(self, req, query, json, form, headers, cookies):
        if query is form is headers is cookies is json is None:  # nothing declared: nothing to read (the polls)
            req.context = Context(None, None, None, None, None)
            return
        super().request_validation(req, query, None, form, headers, cookies)
        if json is not None:
            optional = (req.endpoint or "").rsplit(".", 1)[-1] in OPTIONAL_BODY
            try:
                req.context = req.context._replace(json=self.model_adapter.validate_obj(json, _body(req, optional)))
            except PydanticError as exc:  # named here, where the model is known: a nested field by its path
                raise ValidationError(*named(json, exc)) from None

    def validate_response(self, resp, resp_model, skip_validation, force_resp_serialize):
        """With API_CHECK_RESPONSES (the tests), a JSON answer that drifts from its model is a 500."""
        response = make_response(resp)
        if skip_validation or not current_app.config.get("API_CHECK_RESPONSES") or response.is_streamed:
            return response, None
        model = resp_model.find_model(response.status_code) if resp_model else None
        if model is None or not response.is_json:
            return response, None
        try:
            model.model_validate_json(response.get_data())
        except PydanticError as exc:
            drift = {"status": "error", "message": f"the answer does not match its declared model: {exc}"}
            return make_response(drift, 500), exc
        return response, None


def _body(req, optional):
    """The JSON object sent; an empty body is {} where the route allows leaving it out."""
    if not req.get_data():
        if optional:
            return {}
        raise ValidationError("body", "is required: a JSON object (Content-Type: application/json)")
    limits.check_body_depth(req.get_data())  # before parsing: Python's JSON parser dies of deep nesting (a 500)
    data = req.get_json(silent=True) if req.is_json else None
    if not isinstance(data, dict):
        raise ValidationError("body", "must be a JSON object (Content-Type: application/json)")
    return data


def _model_in(annotation):
    """The model a field holds (itself, or inside Optional, a union or Annotated), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_in, typing.get_args(annotation))), None)


def named(model, error):
    """(field, message) of the first problem, the field named by its path through nested objects: `filter.status`,
    also for a nested model's own rule (`filter.since`); a list's items are their list (`ids`, not `ids.3`)."""
    field, message = first_error(error)
    problem = error.errors(include_url=False)[0]
    loc, ours = problem["loc"], isinstance((problem.get("ctx") or {}).get("error"), ValidationError)
    path, current = [], model
    for key in loc:
        if isinstance(key, int) or current is None:  # an item of a list; past the last model (a union's tag)
            break
        inner = current.model_fields.get(key)
        inner = _model_in(inner.annotation) if inner is not None else None
        if ours and inner is None:  # the rule of the model we are in names its own field
            break
        path.append(str(key))
        current = inner
    return ".".join(path + ([field] if ours else [])) or field, message


def _refuse(req, resp, error, instance, adapter):
    """A request that fails its model is a 400 naming the first bad field, in our one error shape."""
    if error is not None:
        raise ValidationError(*first_error(error))


spec = SpecTree(
    "flask", backend=PanelPlugin, before=_refuse, validation_error_status=400, validation_error_model=Error,
    mode="strict", annotations=True, naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child, title="Celery Control Panel API", version="1.0.0",
    description="Every route needs a Bearer token (flask --app app tokens create USER) or a browser session; "
                "state changes need the operator role, a few the admin role.",
    security_schemes=[SecurityScheme(name="bearer", data=SecuritySchemeData(type="http", scheme="bearer"))],
    security={"bearer": []},
)


def api(ok=None, *errors, status=200, public=False, legacy_shape=False, content=None, optional_body=False, links=None):
    """Declare a JSON route: its answer `ok` (with `status`), the statuses it may refuse with, and more.

    An entry of `errors` is a status (answered in the error shape) or (status, model). Reads come from the
    view's own annotations: `query: SomeQuery`, `json: SomeBody`. `links` name the operations the answer
    feeds: {operation id: {parameter: "$response.body#/field"}} (OpenAPI links). `legacy_shape`: a legacy status
    route, whose errors also carry `success: false` (LegacyStatusError).
    """
    error_model = LegacyStatusError if legacy_shape else Error
    codes = {} if ok is None else {f"HTTP_{status}": ok}
    for entry in (*errors, *(() if public else (401, 403, 503))):
        code, model = entry if isinstance(entry, tuple) else (entry, error_model)
        codes.setdefault(f"HTTP_{code}", model)

    def declare(view):
        if {"query", "json"} & set(getattr(view, "__annotations__", {})):  # it reads input: it may refuse it
            codes.setdefault("HTTP_400", error_model)
        declared = {code.removeprefix("HTTP_") for code in codes} | ({"200"} if content else set())
        if optional_body:
            OPTIONAL_BODY.add(view.__name__)
        DOC_EXTRAS[view.__name__] = {"content": content, "optional_body": optional_body, "codes": declared,
                                     "links": (str(status), links or {})}
        tag = view.__module__.rsplit(".", 1)[-1]
        return spec.validate(resp=Response(**codes), tags=[tag], security={} if public else None,
                             operation_id=view.__name__)(view)
    return declare


def document(registered_task_types=()):
    """The OpenAPI document of this app: SpecTree's, plus what only the app knows (its task types)."""
    doc = copy.deepcopy(spec.spec)
    for path_item in doc["paths"].values():
        for operation in path_item.values():
            _apply_extras(operation, DOC_EXTRAS.get(operation["operationId"], {}))
    for model in ("ScheduleIn", "SchedulePatch"):  # a schedule names a task type this app registers
        schema = doc["components"]["schemas"].get(model, {}).get("properties", {}).get("task")
        if schema is not None and registered_task_types:
            (schema["anyOf"][0] if "anyOf" in schema else schema)["enum"] = sorted(registered_task_types)
    return doc


def _apply_extras(operation, extras):
    """Other media types, optional bodies, links, and only the statuses the route declared (SpecTree adds 400)."""
    status, links = extras.get("links", ("200", {}))
    if links:
        operation["responses"][status]["links"] = {
            target: {"operationId": target, "parameters": parameters} for target, parameters in links.items()}
    if extras.get("content"):
        operation["responses"]["200"] = {"description": "OK", "content": extras["content"]}
    if extras.get("optional_body") and "requestBody" in operation:
        operation["requestBody"]["required"] = False
    for code in set(operation["responses"]) - extras.get("codes", set(operation["responses"])):
        del operation["responses"][code]
    for parameter in operation["parameters"]:
        if parameter["in"] == "path" and parameter.get("schema") is None:
            parameter["schema"] = dict(RUN_ID)
        if (parameter["in"] == "path" and parameter["schema"].get("type") == "string"
                and "enum" not in parameter["schema"]):
            parameter["schema"].setdefault("pattern", limits.SAFE_TEXT)  # no control characters (errors.py)
            operation["responses"].setdefault("400", _refused("A path parameter holds a control character"))
    if any(p["in"] == "path" for p in operation["parameters"]) and "404" not in operation["responses"]:
        operation["responses"]["404"] = _refused("No such path: a path parameter names nothing")


def _refused(description):
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ERROR_REF}}}}


def parse(model, data):
    """`data` read by `model` outside a JSON route (the pages): bad input is our ValidationError, field named."""
    try:
        return model.model_validate(data)
    except PydanticError as exc:
        raise ValidationError(*named(model, exc)) from None
