"""EvalConfig: every setting of an evaluation with the LLM judge, with its help text and the paper's
default, defined once. The `gad-studio evaluate` command's flags, the studio's evaluation API schema
and its Evaluate page all read their defaults and help texts from here, as RunConfig does for runs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gad.data.resources import EVAL_SETS

BUILTIN_SETS: tuple[str, ...] = tuple(EVAL_SETS)  # the paper's four test sets, by name


class EvalConfig(BaseModel):
    """How responses are generated and judged (which models, and the judge endpoint, are given apart)."""
    model_config = ConfigDict(extra="forbid")

    sets: list[str] = Field(default_factory=lambda: list(BUILTIN_SETS), min_length=1,
                            description=f"Prompt sets: built-in names ({', '.join(BUILTIN_SETS)}) or prompt files.")
    limit: int | None = Field(None, gt=0, description="At most this many prompts per set (the first N).")
    max_new_tokens: int = Field(1536, gt=0, le=32768, description="Longest generated response, in tokens.")
    temperature: float = Field(0.8, ge=0.0, le=2.0, description="Sampling temperature of the judged models' "
                                                                "responses (the paper's 0.8).")
    greedy: bool = Field(False, description="Greedy decoding instead of sampling at the temperature.")
    both_orders: bool = Field(False, description="Judge each pair in both presentation orders and report how "
                                                 "often the verdict flips (position bias).")
    teacher: str | None = Field(None, description="Name of the model whose responses are the teacher's (for "
                                                  "overlap and checkpoint selection).")
    seed: int = Field(0, description="Seed for sampling the models' responses.")
    use_vllm: bool = Field(False, description="Generate with vLLM (needs the vllm extra and a GPU).")

    def run_kwargs(self) -> dict:
        """Keyword arguments of gad.llm.evaluate.evaluate besides the sets."""
        return self.model_dump(exclude={"sets"})


def default(name: str):
    """An EvalConfig field's default (for callers that take it as a plain keyword argument)."""
    return EvalConfig.model_fields[name].get_default(call_default_factory=True)
