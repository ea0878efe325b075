"""Records of the local Salesforce: external-id upserts, deletes, a small SOQL, and field
validation with Salesforce's error shapes.

A request-level problem (unknown field, a value of the wrong JSON type) is a `RequestError`:
the whole call is a 400 with `[{message, errorCode}]`, as Salesforce answers it. A
record-level problem is a list of `{statusCode, message, fields}` on that record's result;
with `allOrNone` every other record of the call is rolled back."""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from .schema import FieldDef, ObjectDef

JSON = dict[str, Any]
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class RequestError(Exception):
    """The whole request is refused: `status` with `[{message, errorCode}]`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> list[JSON]:
        return [{"message": self.message, "errorCode": self.code}]


def error(code: str, message: str, fields: list[str] | None = None) -> JSON:
    # Collections results carry `statusCode`; single-record answers carry `errorCode`.
    return {"statusCode": code, "message": message, "fields": fields or []}


def id18(id15: str) -> str:
    """Salesforce's case-safe suffix: one character per 5-character chunk, a bit per
    upper-case letter."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for i, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << i
        suffix += _ID_ALPHABET[bits]
    return id15 + suffix


@dataclass
class Store:
    objects: dict[str, ObjectDef]
    now: Any  # () -> float, wall-clock seconds
    records: dict[str, dict[str, JSON]] = field(default_factory=dict)  # object -> id -> rec
    locked: set[str] = field(default_factory=set)  # record ids under an approval lock
    # Indexes (a real org indexes external ids too): id (15 chars) -> object name, and
    # (object, external id field) -> value -> record ids.
    _objects_of: dict[str, str] = field(default_factory=dict)
    _by_key: dict[tuple[str, str], dict[str, list[str]]] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- lookup ----------------------------------------------------------------------------

    def obj(self, name: str) -> ObjectDef:
        for o in self.objects.values():
            if o.name.lower() == name.lower():
                return o
        raise RequestError(404, "NOT_FOUND", f"sObject type '{name}' is not supported.")

    def table(self, name: str) -> dict[str, JSON]:
        return self.records.setdefault(name, {})

    def find(self, obj: ObjectDef, fdef: FieldDef, value: str) -> list[JSON]:
        table = self.table(obj.name)
        if not fdef.external_id:
            return [r for r in table.values() if r.get(fdef.name) == value]
        ids = self._by_key.get((obj.name, fdef.name), {}).get(value, [])
        return [table[i] for i in ids if i in table]

    def by_id(self, record_id: str) -> tuple[ObjectDef, JSON] | None:
        name = self._objects_of.get(record_id[:15])
        if name is None:
            return None
        rec = self.table(name).get(id18(record_id[:15]))  # ids are stored in 18 characters
        return (self.obj(name), rec) if rec is not None else None

    def _index(self, obj: ObjectDef, rec: JSON, add: bool) -> None:
        rid = str(rec["Id"])
        if add:
            self._objects_of[rid[:15]] = obj.name
        else:
            self._objects_of.pop(rid[:15], None)
        for f in obj.fields.values():
            value = rec.get(f.name)
            if not f.external_id or value is None:
                continue
            ids = self._by_key.setdefault((obj.name, f.name), {}).setdefault(str(value), [])
            if add:
                ids.append(rid)
            elif rid in ids:
                ids.remove(rid)

    def insert(self, obj: ObjectDef, rec: JSON) -> None:
        self.table(obj.name)[str(rec["Id"])] = rec
        self._index(obj, rec, add=True)

    def _reindex(self) -> None:
        self._objects_of.clear()
        self._by_key.clear()
        for name, table in self.records.items():
            obj = self.obj(name)
            for rec in table.values():
                self._index(obj, rec, add=True)

    def clear(self) -> None:
        self.records.clear()
        self.locked.clear()
        self._reindex()

    def new_id(self, obj: ObjectDef) -> str:
        n = next(self._seq)
        digits = ""
        while n or len(digits) < 9:
            n, r = divmod(n, 62)
            digits = _BASE62[r] + digits
        return id18(obj.key_prefix + "000" + digits[-9:])

    def snapshot(self) -> dict[str, dict[str, JSON]]:
        return copy.deepcopy(self.records)

    def restore(self, snapshot: dict[str, dict[str, JSON]]) -> None:
        self.records = snapshot
        self._reindex()

    # -- values ----------------------------------------------------------------------------

    def _stamp(self) -> str:
        return datetime.fromtimestamp(self.now(), UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")

    def convert(self, obj: ObjectDef, fdef: FieldDef, value: Any) -> tuple[Any, JSON | None]:
        """(stored value, record error or None); raises RequestError for JSON type errors."""
        if value is None:
            return None, None
        kind = fdef.type
        if kind in ("string", "textarea", "picklist", "reference", "id"):
            if not isinstance(value, str):
                value = str(value)
            if kind in ("string", "textarea") and len(value) > fdef.length:
                return None, error(
                    "STRING_TOO_LONG",
                    f"{fdef.label or fdef.name}: data value too large: {value[:40]}... "
                    f"(max length={fdef.length})",
                    [fdef.name],
                )
            return value, None
        if kind in ("double", "currency", "int", "percent"):
            try:
                number = Decimal(str(value)) if not isinstance(value, bool) else None
            except InvalidOperation:
                number = None
            if number is None or not number.is_finite():
                raise RequestError(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize instance of {kind} from VALUE_STRING value "
                    f"{value} or request may be missing a required field",
                )
            quantum = Decimal(1).scaleb(-fdef.scale)
            rounded = number.quantize(quantum, rounding=ROUND_HALF_UP)
            if abs(rounded) >= Decimal(10) ** (fdef.precision - fdef.scale):
                return None, error(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    f"{fdef.label or fdef.name}: value outside of valid range on numeric "
                    f"field: {value}",
                    [fdef.name],
                )
            return format(rounded, "f"), None
        if kind == "date":
            try:
                date.fromisoformat(str(value))
            except ValueError:
                raise RequestError(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize instance of date from VALUE_STRING value {value}",
                ) from None
            return str(value), None
        if kind == "datetime":
            try:
                datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise RequestError(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize instance of datetime from VALUE_STRING value {value}",
                ) from None
            return str(value), None
        if kind == "boolean":
            return bool(value), None
        return value, None

    # -- writes ----------------------------------------------------------------------------

    def _fields_of(
        self, obj: ObjectDef, record: JSON, created: JSON | None
    ) -> tuple[JSON, list[JSON]]:
        """The record's fields converted and checked (unknown fields raise RequestError)."""
        values: JSON = {}
        errors: list[JSON] = []
        for name, value in record.items():
            if name == "attributes":
                continue
            rel = obj.relationship(name)
            if rel is not None and isinstance(value, dict):
                target_id, problem = self._resolve_parent(rel, value)
                if problem is not None:
                    errors.append(problem)
                else:
                    values[rel.name] = target_id
                continue
            fdef = obj.field_named(name)
            if fdef is None or fdef.name in ("Id", "CreatedDate", "LastModifiedDate"):
                raise RequestError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{name}' on sobject of type {obj.name}",
                )
            stored, problem = self.convert(obj, fdef, value)
            if problem is not None:
                errors.append(problem)
                continue
            if fdef.type == "reference" and stored is not None:
                problem = self._check_reference(fdef, stored)
                if problem is not None:
                    errors.append(problem)
                    continue
            values[fdef.name] = stored
        return values, errors

    def _resolve_parent(self, rel: FieldDef, value: JSON) -> tuple[str | None, JSON | None]:
        target = self.obj(rel.reference_to[0])
        keys = [k for k in value if k != "attributes"]
        if len(keys) != 1:
            raise RequestError(
                400,
                "INVALID_FIELD",
                f"{rel.relationship_name}: a parent reference names exactly one external id",
            )
        ext = target.field_named(keys[0])
        if ext is None or not ext.external_id:
            raise RequestError(
                400,
                "INVALID_FIELD",
                f"Field {keys[0]} is not an external id field on {target.name}",
            )
        wanted = str(value[keys[0]])
        found = self.find(target, ext, wanted)
        if not found:
            return None, error(
                "INVALID_FIELD",
                f"Foreign key external ID: {wanted} not found for field {ext.name} in "
                f"entity {target.name}",
            )
        if len(found) > 1:
            return None, error(
                "DUPLICATE_EXTERNAL_ID",
                f"Foreign key external ID: {wanted} matches more than one {target.name}",
            )
        return str(found[0]["Id"]), None

    def _check_reference(self, fdef: FieldDef, value: str) -> JSON | None:
        if not _ID_RE.match(value):
            return error(
                "MALFORMED_ID",
                f"{fdef.label or fdef.name}: id value of incorrect type: {value}",
                [fdef.name],
            )
        hit = self.by_id(value)
        if hit is None or hit[0].name not in fdef.reference_to:
            return error(
                "INVALID_CROSS_REFERENCE_KEY",
                f"invalid cross reference id: {value}",
                [fdef.name],
            )
        return None

    def upsert(
        self, obj: ObjectDef, ext: FieldDef, record: JSON, rules: list[JSON]
    ) -> tuple[JSON, bool]:
        """One record: (result, committed)."""
        key = record.get(ext.name)
        if key is None or key == "":
            return {
                "success": False,
                "errors": [error("MISSING_ARGUMENT", f"{ext.name} not specified", [ext.name])],
            }, False
        key = str(key)
        values, errors = self._fields_of(obj, record, None)
        matches = self.find(obj, ext, key)
        if len(matches) > 1:
            ids = ", ".join(str(m["Id"]) for m in matches)
            errors.append(
                error(
                    "DUPLICATE_EXTERNAL_ID",
                    f"{ext.name}: more than one record found for external id field: [{ids}]",
                    [ext.name],
                )
            )
        existing = matches[0] if len(matches) == 1 else None
        if existing is None and not errors:
            missing = [
                f.name
                for f in obj.fields.values()
                if f.required and values.get(f.name) in (None, "")
            ]
            if missing:
                errors.append(
                    error(
                        "REQUIRED_FIELD_MISSING",
                        f"Required fields are missing: [{', '.join(missing)}]",
                        missing,
                    )
                )
        if not errors:
            merged = {**(existing or {}), **values}
            errors.extend(_rule_errors(obj, merged, rules))
        if not errors and self._is_locked(obj, existing, values):
            errors.append(
                error(
                    "ENTITY_IS_LOCKED",
                    "This record is locked. If you need to edit it, contact your admin",
                )
            )
        if errors:
            return {"success": False, "errors": errors}, False
        stamp = self._stamp()
        if existing is None:
            rid = self.new_id(obj)
            self.insert(obj, {"Id": rid, "CreatedDate": stamp, "LastModifiedDate": stamp, **values})
            return {"id": rid, "success": True, "errors": [], "created": True}, True
        self._index(obj, existing, add=False)
        existing.update(values)
        existing["LastModifiedDate"] = stamp
        self._index(obj, existing, add=True)
        return {"id": existing["Id"], "success": True, "errors": [], "created": False}, True

    def _is_locked(self, obj: ObjectDef, existing: JSON | None, values: JSON) -> bool:
        if existing is not None and existing["Id"] in self.locked:
            return True
        # A master-detail child (a required lookup) is locked with its master.
        for fdef in obj.fields.values():
            if fdef.type == "reference" and fdef.required:
                parent = values.get(fdef.name) or (existing or {}).get(fdef.name)
                if parent in self.locked:
                    return True
        return False

    def delete(self, record_id: str) -> JSON:
        if not _ID_RE.match(record_id):
            return {
                "id": record_id,
                "success": False,
                "errors": [error("MALFORMED_ID", f"malformed id {record_id}")],
            }
        hit = self.by_id(record_id)
        if hit is None:
            return {
                "id": record_id,
                "success": False,
                "errors": [error("ENTITY_IS_DELETED", "entity is deleted")],
            }
        obj, rec = hit
        self._index(obj, rec, add=False)
        del self.table(obj.name)[rec["Id"]]
        return {"id": rec["Id"], "success": True, "errors": []}

    # -- SOQL (the subset the sink uses) ---------------------------------------------------

    def query(self, soql: str) -> list[JSON]:
        parsed = _parse_soql(soql)
        obj = self.obj(parsed.object)
        rows = []
        for rec in self.table(obj.name).values():
            if all(self._matches(obj, rec, c) for c in parsed.where):
                row: JSON = {
                    "attributes": {
                        "type": obj.name,
                        "url": f"/services/data/v67.0/sobjects/{obj.name}/{rec['Id']}",
                    }
                }
                for path in parsed.fields:
                    _put(row, path, self._path_value(obj, rec, path))
                rows.append(row)
        if parsed.order_by:
            rows.sort(key=lambda r: str(_get(r, parsed.order_by or "")))
        if parsed.limit is not None:
            rows = rows[: parsed.limit]
        return rows

    def _path_value(self, obj: ObjectDef, rec: JSON, path: str) -> Any:
        head, _, rest = path.partition(".")
        if not rest:
            fdef = obj.field_named(head)
            if fdef is None:
                raise RequestError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{head}' on entity '{obj.name}'.",
                )
            return rec.get(fdef.name)
        rel = obj.relationship(head)
        if rel is None:
            raise RequestError(
                400,
                "INVALID_FIELD",
                f"Didn't understand relationship '{head}' in field path.",
            )
        parent_id = rec.get(rel.name)
        hit = self.by_id(parent_id) if isinstance(parent_id, str) else None
        if hit is None:
            return None
        return self._path_value(hit[0], hit[1], rest)

    def _matches(self, obj: ObjectDef, rec: JSON, cond: _Condition) -> bool:
        value = self._path_value(obj, rec, cond.path)
        if cond.op == "=":
            return bool(value == cond.values[0])
        if cond.op == "!=":
            return bool(value != cond.values[0])
        if cond.op == "IN":
            return value in cond.values
        return value not in cond.values


def _rule_errors(obj: ObjectDef, record: JSON, rules: list[JSON]) -> list[JSON]:
    """Validation rules an admin set up (configured per test): a record whose field equals
    the value fails with FIELD_CUSTOM_VALIDATION_EXCEPTION."""
    out = []
    for rule in rules:
        if rule.get("object") != obj.name:
            continue
        if record.get(rule["field"]) == rule["equals"]:
            out.append(
                error(
                    "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                    rule.get("message", "rejected by a validation rule"),
                    [rule["field"]],
                )
            )
    return out


@dataclass(frozen=True)
class _Condition:
    path: str
    op: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class _Soql:
    fields: tuple[str, ...]
    object: str
    where: tuple[_Condition, ...]
    order_by: str | None
    limit: int | None


_SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+ORDER\s+BY\s+(?P<order>[\w.]+))?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_COND = re.compile(
    r"^\s*(?P<path>[\w.]+)\s*(?P<op>=|!=|NOT\s+IN|IN)\s*(?P<value>'(?:[^'\\]|\\.)*'|\(.*\))\s*$",
    re.IGNORECASE | re.DOTALL,
)
_STRING = re.compile(r"'((?:[^'\\]|\\.)*)'")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _parse_soql(soql: str) -> _Soql:
    match = _SOQL.match(soql)
    if match is None:
        raise RequestError(400, "MALFORMED_QUERY", "unexpected token in query")
    where: list[_Condition] = []
    if match["where"]:
        for part in re.split(r"\s+AND\s+", match["where"], flags=re.IGNORECASE):
            cond = _COND.match(part)
            if cond is None:
                raise RequestError(400, "MALFORMED_QUERY", f"unexpected token: {part.strip()}")
            op = " ".join(cond["op"].upper().split())
            values = tuple(_unquote(v) for v in _STRING.findall(cond["value"]))
            where.append(_Condition(cond["path"], op, values))
    return _Soql(
        tuple(f.strip() for f in match["fields"].split(",")),
        match["object"],
        tuple(where),
        match["order"],
        int(match["limit"]) if match["limit"] else None,
    )


def _put(row: JSON, path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if not rest:
        row[head] = value
        return
    child = row.setdefault(head, {})
    if isinstance(child, dict):
        _put(child, rest, value)


def _get(row: JSON, path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
