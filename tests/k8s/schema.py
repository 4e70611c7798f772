"""Structural-schema handling for custom resources: defaulting, pruning and validation.

Follows the openAPIV3Schema of the CRD version being written:
- `default` values fill absent fields (recursively, also inside array items and maps);
- unknown fields are pruned unless `x-kubernetes-preserve-unknown-fields: true`
  (apiVersion/kind/metadata at the root and in `x-kubernetes-embedded-resource` are kept);
- validation: type (with `nullable` and `x-kubernetes-int-or-string`), required, enum,
  minimum/maximum (and exclusive forms), minLength/maxLength, pattern, minItems/maxItems,
  uniqueItems, minProperties/maxProperties.
Not done: CEL `x-kubernetes-validations` (ignored), `format` checks, oneOf/anyOf/allOf/not,
`x-kubernetes-list-type` map/set uniqueness, ratcheting of unchanged invalid fields.
"""

import copy
import re

_META_KEYS = ("apiVersion", "kind", "metadata")


def apply_defaults(value, schema):
    """Fills `default`s into `value` in place and returns it."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and isinstance(sub, dict) and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                apply_defaults(value[key], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])
    return value


def prune(value, schema, root=False):
    """Drops fields the schema does not declare (in place)."""
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return value
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        keep_meta = root or schema.get("x-kubernetes-embedded-resource")
        if props is not None and not extra:
            for key in list(value):
                if key not in props and not (keep_meta and key in _META_KEYS):
                    del value[key]
        for key in list(value):
            if props is not None and key in props:
                if not (root and key == "metadata"):
                    prune(value[key], props[key])
            elif isinstance(extra, dict):
                prune(value[key], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            prune(item, schema["items"])
    return value


def _type_ok(value, schema):
    kind = schema.get("type")
    if value is None:
        return bool(schema.get("nullable"))
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, (int, str)) and not isinstance(value, bool)
    if not kind:
        return True
    return {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer()),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    }.get(kind, lambda v: True)(value)


def validate(value, schema, path=""):
    """A list of causes {reason, message, field}; empty when `value` conforms."""
    causes = []
    if not isinstance(schema, dict):
        return causes

    def bad(reason, message):
        field = path or "<root>"
        causes.append({"reason": reason, "message": f"{field}: {message}", "field": field})

    if not _type_ok(value, schema):
        bad("FieldValueTypeInvalid", f"Invalid value: {_short(value)}: {path or '<root>'} in body "
            f"must be of type {schema.get('type')}")
        return causes
    if value is None:
        return causes
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(f'"{e}"' if isinstance(e, str) else str(e) for e in schema["enum"])
        bad("FieldValueNotSupported", f"Unsupported value: {_short(value)}: supported values: {allowed}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema:
            lo, excl = schema["minimum"], schema.get("exclusiveMinimum")
            if value < lo or (excl and value == lo):
                bad("FieldValueInvalid", f"Invalid value: {value}: {path} in body should be greater "
                    f"than {'' if excl else 'or equal to '}{lo}")
        if "maximum" in schema:
            hi, excl = schema["maximum"], schema.get("exclusiveMaximum")
            if value > hi or (excl and value == hi):
                bad("FieldValueInvalid", f"Invalid value: {value}: {path} in body should be less "
                    f"than {'' if excl else 'or equal to '}{hi}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            bad("FieldValueInvalid", f"Invalid value: {_short(value)}: {path} in body should be at "
                f"least {schema['minLength']} chars long")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            bad("FieldValueTooLong", f"Too long: may not be more than {schema['maxLength']} bytes")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            bad("FieldValueInvalid", f"Invalid value: {_short(value)}: {path} in body should "
                f"match '{schema['pattern']}'")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            bad("FieldValueInvalid", f"Invalid value: {len(value)}: {path} in body should have at "
                f"least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            bad("FieldValueTooMany", f"Too many: {len(value)}: must have at most "
                f"{schema['maxItems']} items")
        if schema.get("uniqueItems") and len({repr(v) for v in value}) != len(value):
            bad("FieldValueDuplicate", "Duplicate value: items must be unique")
        for i, item in enumerate(value):
            causes += validate(item, schema.get("items"), f"{path}[{i}]")
    if isinstance(value, dict):
        for key in schema.get("required") or []:
            if key not in value:
                causes.append({"reason": "FieldValueRequired", "message": f"{_join(path, key)}: "
                               "Required value", "field": _join(path, key)})
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            bad("FieldValueInvalid", f"{path} in body should have at least "
                f"{schema['minProperties']} properties")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            bad("FieldValueTooMany", f"must have at most {schema['maxProperties']} properties")
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                if path == "" and key == "metadata":
                    continue
                causes += validate(item, props[key], _join(path, key))
            elif isinstance(extra, dict):
                causes += validate(item, extra, _join(path, key))
    return causes


def _join(path, key):
    return f"{path}.{key}" if path else key


def _short(value):
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) < 60 else text[:57] + "..."
