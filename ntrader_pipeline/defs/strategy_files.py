"""The strategy file a run executes: the one it names in strategy_configs, or the text its run
config carries (a run may execute on any worker, where the client's path does not exist)."""

from dagster import Config
from pydantic import Field

from ntrader_pipeline.core.strategy_specs import StrategySpec, load_spec, spec_from_text
from ntrader_pipeline.defs.resources import PipelineStores


class StrategyFile(Config):
    """A strategy file carried in the run config."""

    name: str = Field(description="The file's name without .yaml: names the strategy in the results.")
    yaml: str = Field(description="The file's text.")


def load_strategy(name: str, spec_file: StrategyFile | None, stores: PipelineStores) -> StrategySpec:
    """The run config's strategy file when it carries one, else strategy ``name``'s own file."""
    if spec_file is not None:
        return spec_from_text(spec_file.name, spec_file.yaml)
    return load_spec(stores.strategy_file(name))
