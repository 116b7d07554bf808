"""MkDocs hooks: reference tables generated from the code, so the docs cannot drift from it.

A page writes ``<!-- generated: NAME -->`` on a line of its own; the hook puts the table there.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings


def settings_table(model: type[BaseSettings]) -> str:
    """One row per setting: the environment variable, its default and what it means."""
    prefix = model.model_config.get("env_prefix", "")
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "" if default in (None, "", []) else f"`{default}`"
        rows.append(f"| `{prefix}{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)


def _tables() -> dict[str, str]:
    from ntrader_pipeline.adapters.ibkr.settings import IbkrSettings
    from ntrader_pipeline.settings import Settings

    return {"settings": settings_table(Settings), "ibkr-settings": settings_table(IbkrSettings)}


def on_page_markdown(markdown: str, **_kwargs) -> str:
    if "<!-- generated:" not in markdown:
        return markdown
    tables = _tables()
    lines = []
    for line in markdown.splitlines():
        marker = line.strip()
        if marker.startswith("<!-- generated:") and marker.endswith("-->"):
            name = marker.removeprefix("<!-- generated:").removesuffix("-->").strip()
            if name not in tables:
                raise ValueError(f"unknown generated table {name!r}; known: {', '.join(sorted(tables))}")
            lines.append(tables[name])
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"
