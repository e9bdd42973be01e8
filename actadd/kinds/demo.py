"""Experiment kind: steered vs unsteered completions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actadd.experiments import register
from actadd.runinfo import env_info, write_json, write_table


@register("demo", "steered vs unsteered completions for one pair, side by side")
class DemoKind:
    @staticmethod
    def run(config: dict[str, Any], out: Path, resume: bool) -> None:
        import actadd

        model = actadd.load_model(config.get("model"))
        v = actadd.SteeringVector.from_pair(
            model,
            config["positive"],
            config["negative"],
            int(config["layer"]),
            float(config["coeff"]),
        )
        df = actadd.compare(
            model,
            config["prompts"],
            v,
            config.get("align", "front"),
            n_samples=int(config.get("n_samples", 3)),
            max_new_tokens=int(config.get("max_new_tokens", 40)),
            seed=int(config.get("seed", 0)),
        )
        write_json(out / "config.json", config)
        write_json(out / "env.json", env_info(model))
        write_table(out / "completions.csv", df)
        for _, row in df.iterrows():
            print(f"\n[{v.describe()}] {row.prompt!r} (sample {row['sample']})")
            print(f"  unsteered: {row.unsteered.strip()!r}")
            print(f"  steered:   {row.steered.strip()!r}")

    @staticmethod
    def figures(out: Path) -> list[Path]:
        return []
