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


def metrics_table() -> str:
    """One row per metric of the registry: its name, label, unit, whether it is a headline figure
    (and which way ranks better), and its one-line definition."""
    from ntrader_pipeline.core.metric_registry import METRICS

    rows = ["| metric | label | unit | headline | ranks | definition |", "|---|---|---|---|---|---|"]
    for m in METRICS:
        ranks = f"{m.better} is better" if m.better else ""
        rows.append(
            f"| `{m.name}` | {m.label} | {m.unit} | {'yes' if m.headline else ''} | {ranks} | {m.definition} |"
        )
    return "\n".join(rows)


def _tables() -> dict[str, str]:
    from ntrader_pipeline.adapters.ibkr.settings import IbkrSettings
    from ntrader_pipeline.settings import Settings

    return {
        "settings": settings_table(Settings),
        "ibkr-settings": settings_table(IbkrSettings),
        "metrics": metrics_table(),
    }


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
