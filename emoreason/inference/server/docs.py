"""``GET /docs``: the API described from its OpenAPI spec, on one self-contained page.

FastAPI's default ``/docs`` loads Swagger UI's scripts from a public CDN and is blank offline.
The one pip package that bundles Swagger UI for plain Python use (``swagger-ui-bundle`` 1.1.0)
ships Swagger UI 4.15, which cannot render the OpenAPI 3.1 spec FastAPI writes, so the server
renders the spec itself: every route with its summary, parameters, request body and responses,
each schema once, and a link to the raw ``/openapi.json`` (import it into any OpenAPI tool).
No script, no stylesheet from elsewhere.
"""
from __future__ import annotations

import html
import json
from typing import Any

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.route { border: 1px solid #ddd; border-radius: 6px; margin: 1rem 0; padding: .6rem .9rem; }
.method { font-weight: 700; display: inline-block; min-width: 4.5rem; }
.get { color: #0a6; } .post { color: #06c; }
code, pre { font-family: ui-monospace, monospace; font-size: 13px; }
pre { background: #f6f6f6; padding: .5rem; overflow-x: auto; white-space: pre-wrap; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: .2rem .5rem; text-align: left; vertical-align: top; }
"""


def _ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else None


def _type_of(schema: dict[str, Any]) -> str:
    """A short human type: ``string``, ``integer``, ``ChatRequest``, ``array of ...``, ``a | b``."""
    if name := _ref_name(schema):
        return f'<a href="#schema-{html.escape(name)}">{html.escape(name)}</a>'
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_type_of(s) for s in schema[key])
    if schema.get("type") == "array":
        return f"array of {_type_of(schema.get('items', {}))}"
    if "const" in schema:
        return html.escape(json.dumps(schema["const"]))
    if "enum" in schema:
        return " | ".join(html.escape(json.dumps(v)) for v in schema["enum"])
    return html.escape(str(schema.get("type", "any")))


def _body_schema(op: dict[str, Any]) -> list[str]:
    out = []
    for mime, spec in op.get("requestBody", {}).get("content", {}).items():
        out.append(f"<p>Body (<code>{html.escape(mime)}</code>): {_type_of(spec.get('schema', {}))}</p>")
    return out


def _route(path: str, method: str, op: dict[str, Any]) -> str:
    rows = [f'<div class="route" id="{html.escape(method + path)}"><span class="method {method}">{method.upper()}</span>'
            f"<code>{html.escape(path)}</code> {html.escape(op.get('summary', ''))}"]
    if op.get("description"):
        rows.append(f"<pre>{html.escape(op['description'])}</pre>")
    params = op.get("parameters", [])
    if params:
        rows.append("<table><tr><th>parameter</th><th>in</th><th>type</th></tr>" + "".join(
            f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{html.escape(p.get('in', ''))}</td>"
            f"<td>{_type_of(p.get('schema', {}))}</td></tr>" for p in params) + "</table>")
    rows += _body_schema(op)
    responses = op.get("responses", {})
    rows.append("<p>Responses: " + ", ".join(
        f"<b>{html.escape(code)}</b> {html.escape(r.get('description', ''))}" for code, r in responses.items()) + "</p>")
    return "".join(rows) + "</div>"


def _schema(name: str, schema: dict[str, Any]) -> str:
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    rows = [f'<div class="route" id="schema-{html.escape(name)}"><b>{html.escape(name)}</b>']
    if schema.get("description"):
        rows.append(f"<p>{html.escape(schema['description'])}</p>")
    if props:
        rows.append("<table><tr><th>field</th><th>type</th><th>required</th><th>about</th></tr>" + "".join(
            f"<tr><td><code>{html.escape(key)}</code></td><td>{_type_of(value)}</td><td>{'yes' if key in required else ''}</td>"
            f"<td>{html.escape(value.get('description', ''))}</td></tr>" for key, value in props.items()) + "</table>")
    return "".join(rows) + "</div>"


def render_docs(spec: dict[str, Any]) -> str:
    """The HTML page for an OpenAPI ``spec`` (a dict as ``app.openapi()`` returns it)."""
    info = spec.get("info", {})
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(info.get('title', 'API'))} API</title>"
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(info.get('title', 'API'))} {html.escape(str(info.get('version', '')))}</h1>",
             f"<p>{html.escape(info.get('description', ''))}</p>",
             '<p>The machine-readable spec: <a href="openapi.json"><code>/openapi.json</code></a> (OpenAPI '
             f"{html.escape(str(spec.get('openapi', '')))}). Errors on every route: "
             '<code>{"error": {"message", "type", "param", "code"}}</code>.</p>', "<h2>Routes</h2>"]
    for path, ops in spec.get("paths", {}).items():
        for method, op in ops.items():
            parts.append(_route(path, method, op))
    parts.append("<h2>Schemas</h2>")
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        parts.append(_schema(name, schema))
    parts.append("</body></html>")
    return "\n".join(parts)
